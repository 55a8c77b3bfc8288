"""One error hierarchy: every failure vtok expects is a `VtokError`.

Each subclass also inherits the builtin that fits, so callers may catch either. An error may name
the `option`, the library keyword it concerns (`force`, `threshold`, ...); the command line turns
that into its own flag, so library messages never name flags. The CLI prints a `VtokError` as one
line on stderr and exits with code 1, or 2 for a `UsageError`.

What vtok does without failing but the caller should know (an input changed on the way in) goes to
a `warn` callable that library functions take, one sentence per call; by default each becomes a
`VtokWarning` (`default_warn`). The CLI prints them as one line each on stderr.
"""

import warnings
from collections.abc import Callable

__all__ = [
    "VtokError", "UsageError", "ContainerError", "MediaError", "ModelError", "OutputError", "VtokWarning", "Warn",
    "default_warn",
]  # fmt: skip

Warn = Callable[[str], None]


class VtokError(Exception):
    """Base class of all errors that vtok raises on purpose."""

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option


class UsageError(VtokError, ValueError):
    """An argument is out of its range or does not fit the others."""


class ContainerError(VtokError, ValueError):
    """A `.vtok` file is truncated, corrupted, or of an unknown version."""


class MediaError(VtokError, ValueError):
    """An input is missing, is not a video, or cannot be decoded."""


class ModelError(VtokError, LookupError):
    """A model is unknown, or its weights are missing or do not match the manifest."""


class OutputError(VtokError, OSError):
    """An output cannot be written, already exists, or would overwrite the input."""


class VtokWarning(UserWarning):
    """Something vtok changed or left out without failing, said in one sentence."""


def default_warn(message: str) -> None:
    """Issue `message` as a VtokWarning, attributed to the caller of the library function."""
    warnings.warn(message, VtokWarning, stacklevel=3)

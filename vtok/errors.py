"""One error hierarchy: every failure vtok expects is a `VtokError`.

Each subclass also inherits the builtin that fits, so callers may catch either.
The CLI prints a `VtokError` as one line on stderr and exits with code 1.
"""

__all__ = ["VtokError", "ContainerError", "MediaError", "ModelError", "OutputError"]


class VtokError(Exception):
    """Base class of all errors that vtok raises on purpose."""


class ContainerError(VtokError, ValueError):
    """A `.vtok` file is truncated, corrupted, or of an unknown version."""


class MediaError(VtokError, ValueError):
    """An input is missing, is not a video, or cannot be decoded."""


class ModelError(VtokError, LookupError):
    """A model is unknown, or its weights are missing or do not match the manifest."""


class OutputError(VtokError, OSError):
    """An output cannot be written, already exists, or would overwrite the input."""

"""Rules every command follows before it writes a file."""

import os
from pathlib import Path

from vtok.errors import OutputError

__all__ = ["check_output"]


def check_output(src: Path, dst: Path, force: bool) -> None:
    """Refuse to overwrite the input, an existing file without `force`, or to write where we cannot."""
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise OutputError(f"{dst}: output would overwrite the input")
    if dst.is_dir():
        raise OutputError(f"{dst}: is a directory")
    if dst.exists() and not force:
        raise OutputError(f"{dst}: already exists (use --force to overwrite)")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: no such directory")
    if not os.access(dst.parent, os.W_OK):
        raise OutputError(f"{dst.parent}: not writable")

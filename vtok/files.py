"""Writing files safely: refuse to clobber what should not be clobbered, and never leave half a file."""

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vtok.errors import MediaError, OutputError

__all__ = ["check_input", "check_output", "atomic_path", "write_text", "write_json", "sha256_of"]


def check_input(path: Path, *, folder_ok: bool = False) -> None:
    """Raise a MediaError if `path` is missing, or is a folder where a file is wanted. Cheap: the
    command line calls it before importing torch, so a typo fails at once."""
    if not path.exists():
        raise MediaError(f"{path}: no such file" + (" or folder" if folder_ok else ""))
    if path.is_dir() and not folder_ok:
        raise MediaError(f"{path}: is a folder, not a file")


def check_output(src: Path | None, dst: Path, force: bool) -> None:
    """Refuse to overwrite the input, an existing file without `force`, or to write where we cannot."""
    if src is not None and dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise OutputError(f"{dst}: output would overwrite the input")
    if dst.is_dir():
        raise OutputError(f"{dst}: is a directory")
    if dst.exists() and not force:
        raise OutputError(f"{dst}: already exists", option="force")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: no such directory")
    if not os.access(dst.parent, os.W_OK):
        raise OutputError(f"{dst.parent}: not writable")


@contextlib.contextmanager
def atomic_path(dst: Path) -> Iterator[Path]:
    """A temporary path beside `dst` to write to: it replaces `dst` when the block ends normally and
    is removed when it raises, so an interrupted write never leaves a partial file under `dst`.

    The name keeps `dst`'s extension (tools that pick a format by it still work) and the process id
    (runs side by side do not collide).
    """
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part{dst.suffix}")
    try:
        yield tmp
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(dst: Path, text: str) -> None:
    """Write `text` to `dst` atomically."""
    with atomic_path(dst) as tmp:
        tmp.write_text(text)


def write_json(dst: Path, data: object) -> None:
    """Write `data` as indented JSON (keys sorted, a final newline) to `dst` atomically."""
    write_text(dst, json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, hex, read in 1 MiB pieces (weights and videos need not fit in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    return h.hexdigest()

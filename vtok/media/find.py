"""Finding videos and images in folders, by their file extension. Needs no PyAV."""

import os
from pathlib import Path

from vtok.errors import Warn, default_warn

__all__ = ["VIDEO_SUFFIXES", "IMAGE_SUFFIXES", "find_media", "walk_files"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def walk_files(root: Path, warn: Warn | None = None) -> list[Path]:
    """Every file under the folder `root`, recursively, sorted, as paths under `root` (links not resolved).

    Symlinked folders are followed, each real folder once, after the real tree (so a file is listed
    under its real path where it has one): a link back to a folder already walked (a symlink loop, or a
    second link to the same folder) is left out with one `warn` sentence, and so are broken links and
    folders that cannot be listed. Nothing here can loop forever.
    """
    warn = warn or default_warn
    seen: dict[tuple[int, int], Path] = {}
    files: list[Path] = []
    stack, links = [Path(root)], []
    while stack or links:
        folder = stack.pop() if stack else links.pop(0)
        st = folder.stat()
        if (key := (st.st_dev, st.st_ino)) in seen:
            first = seen[key]
            why = "a symlink loop" if folder.is_relative_to(first) else "a second link to it"
            warn(f"{folder}: leads back to {first}, already walked ({why}); skipped")
            continue
        seen[key] = folder
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)  # popped in name order
        except OSError as e:
            warn(f"{folder}: cannot list this folder ({e.strerror}); skipped")
            continue
        for entry in entries:
            path = folder / entry.name
            try:  # both follow links, so a linked folder is walked too; a looping link raises ELOOP
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                (links if entry.is_symlink() else stack).append(path)
            elif is_file:
                files.append(path)
            elif entry.is_symlink():
                warn(f"{path}: a broken or looping symlink; skipped")
    return sorted(files)


def find_media(paths: list[Path], warn: Warn | None = None) -> tuple[list[Path], list[Path]]:
    """The videos and the images among `paths`, folders walked recursively (`walk_files`), each list sorted.

    A file named directly counts by its extension too; a path that does not exist is left out.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files += walk_files(p, warn) if p.is_dir() else [p] if p.is_file() else []
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    return videos, images

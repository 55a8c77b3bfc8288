"""Finding videos and images in folders, by their file extension. Needs no PyAV."""

from pathlib import Path

__all__ = ["VIDEO_SUFFIXES", "IMAGE_SUFFIXES", "find_media"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def find_media(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The videos and the images among `paths`, folders walked recursively, each list sorted.

    A file named directly counts by its extension too; a path that does not exist is left out.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    return videos, images

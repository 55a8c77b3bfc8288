"""Encoding whole folders of videos: a mirrored tree of `.vtok` files and a resumable manifest, on this
machine (a process pool) or on a Ray cluster. docs/dataset.md describes both and the manifest.

The manifest needs only the standard library, so readers (vtok.data) import it without torch; the
encoders load on first use."""

from vtok.folder.manifest import MANIFEST_NAME, Record, read_manifest

__all__ = ["encode_folder", "encode_dataset", "FolderResult", "Record", "read_manifest", "MANIFEST_NAME"]


def __getattr__(name: str):
    if name in ("encode_folder", "FolderResult"):
        from vtok.folder import run

        return getattr(run, name)
    if name == "encode_dataset":
        from vtok.folder.ray_encode import encode_dataset  # imports Ray only when called

        return encode_dataset
    raise AttributeError(f"module 'vtok.folder' has no attribute {name!r}")

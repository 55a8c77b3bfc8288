"""Encoding whole folders of videos: a mirrored tree of `.vtok` files and a resumable manifest, on this
machine (a process pool) or on a Ray cluster. docs/dataset.md describes both and the manifest."""

from vtok.folder.manifest import MANIFEST_NAME, Record, read_manifest
from vtok.folder.ray_encode import encode_dataset  # imports Ray only when called
from vtok.folder.run import FolderResult, encode_folder

__all__ = ["encode_folder", "encode_dataset", "FolderResult", "Record", "read_manifest", "MANIFEST_NAME"]

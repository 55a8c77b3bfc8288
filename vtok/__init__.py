"""vtok: video to discrete tokens and back.

Reading a `.vtok` file needs only numpy and zstandard:

    import vtok
    with vtok.open("clip.vtok") as f:
        print(f.header.frames, f.header.grid)
        for block in f.states():  # one per block of f.header.block_frames frames
            codes, keep = block.indices, block.keep  # int64, bool (rows, cols); False: infill
            ...
        window = f[8:16]  # the tokens of frames 8..15 alone, through the seek index (vtok.format.access)

Training loaders over folders of `.vtok` files are in vtok.data.
"""

from pathlib import Path

from vtok.errors import ContainerError, MediaError, ModelError, OutputError, VtokError, VtokWarning
from vtok.format import Block, Header, TokenWindow, VtokReader, VtokWriter

__all__ = [
    "open",
    "Header",
    "Block",
    "TokenWindow",
    "VtokReader",
    "VtokWriter",
    "VtokError",
    "ContainerError",
    "MediaError",
    "ModelError",
    "OutputError",
    "VtokWarning",
]
__version__ = "0.1.0"


def open(path: "str | Path", mode: str = "r", *, header: Header | None = None) -> "VtokReader | VtokWriter":
    """Open a `.vtok` file: mode "r" returns a VtokReader; mode "w" (with `header`) a VtokWriter.

    Both are context managers. A writer's file appears under `path` only when it is closed.
    """
    if mode == "r":
        return VtokReader(Path(path))
    if mode == "w":
        if header is None:
            raise ValueError("vtok.open(path, 'w') needs a header")
        return VtokWriter(Path(path), header)
    raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")

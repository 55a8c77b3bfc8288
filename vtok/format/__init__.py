"""The `.vtok` file format: token layout, header, blocks and the container's bytes. Never torch or av."""

from vtok.format.access import TokenWindow
from vtok.format.blocks import FLAG_MISSED_THRESHOLD, Block, BlockState, stored_positions
from vtok.format.container import MAGIC, VERSION, VtokReader
from vtok.format.header import Header
from vtok.format.writer import VtokWriter

__all__ = [
    "Header",
    "Block",
    "BlockState",
    "TokenWindow",
    "VtokReader",
    "VtokWriter",
    "stored_positions",
    "FLAG_MISSED_THRESHOLD",
    "MAGIC",
    "VERSION",
]

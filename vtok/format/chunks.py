"""The byte-level pieces a `.vtok` reader and writer share (docs/FORMAT.md): magics, limits,
struct layouts, and the chunk checksum."""

import struct
import zlib

import numpy as np

__all__ = [
    "MAGIC",
    "END_MAGIC",
    "VERSION",
    "MAX_HEADER",
    "MAX_CHUNK",
    "PREAMBLE",
    "CHUNK_HEAD",
    "TRAILER",
    "BLKS_HEAD",
    "RECORD",
    "INDEX_ENTRY",
    "chunk_crc",
    "pack_chunk",
]

MAGIC = b"\x89VTOK\r\n\x1a"
END_MAGIC = b"VTOKEND\x00"
VERSION = 3  # the newest this package writes; it reads 2 and 3

MAX_HEADER = 1 << 20
MAX_CHUNK = 256 << 20

PREAMBLE = struct.Struct("<8sHHI")
CHUNK_HEAD = struct.Struct("<4sIQ")
TRAILER = struct.Struct("<Q8s")
BLKS_HEAD = struct.Struct("<II")
RECORD = np.dtype([("n_codes", "<u4"), ("frames", "u1"), ("flags", "u1"), ("reserved", "<u2")])
INDEX_ENTRY = np.dtype([("offset", "<u8"), ("first_block", "<u4"), ("n_blocks", "<u4")])


def chunk_crc(kind: bytes, payload: bytes) -> int:
    """CRC-32 over the type and the payload, so a damaged type is caught too."""
    return zlib.crc32(payload, zlib.crc32(kind))


def pack_chunk(kind: bytes, payload: bytes) -> bytes:
    """A whole chunk: its 16-byte head, then the payload."""
    return CHUNK_HEAD.pack(kind, chunk_crc(kind, payload), len(payload)) + payload

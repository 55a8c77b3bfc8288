"""The byte-level pieces a `.vtok` reader and writer share (docs/FORMAT.md): magics, versions,
limits, struct layouts, the chunk checksum, and how a chunk's codes are laid out."""

import struct
import zlib

import numpy as np

__all__ = [
    "MAGIC",
    "END_MAGIC",
    "VERSION",
    "READABLE",
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
    "file_version",
    "codes_to_bytes",
    "codes_from_bytes",
]

MAGIC = b"\x89VTOK\r\n\x1a"
END_MAGIC = b"VTOKEND\x00"
VERSION = 4  # the newest this package writes; it reads 2, 3 and 4
READABLE = (2, 3, VERSION)

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


def file_version(header_version: int) -> int:
    """The version a writer gives a file whose header needs `header_version` (Header.version): the
    first layout stays version 2, byte for byte; the others are written as the newest."""
    return 2 if header_version == 2 else VERSION


def codes_to_bytes(codes: np.ndarray, planes: bool) -> bytes:
    """A chunk's codes (unsigned ints, one dimension) as stored: little-endian, and from version 4 in
    byte planes (every code's lowest byte, then every code's next byte, ...), which zstd compresses
    better because the high bytes of codes mostly repeat."""
    little = codes.astype(codes.dtype.newbyteorder("<"), copy=False)
    if not planes:
        return little.tobytes()
    return little.view(np.uint8).reshape(-1, little.itemsize).T.tobytes()


def codes_from_bytes(raw: bytes, dtype: np.dtype, count: int, offset: int, planes: bool) -> np.ndarray:
    """The inverse of `codes_to_bytes`: `count` codes of `dtype` from `raw` at `offset`."""
    little = np.dtype(dtype).newbyteorder("<")
    if not planes:
        return np.frombuffer(raw, little, count=count, offset=offset)
    stored = np.frombuffer(raw, np.uint8, count=count * little.itemsize, offset=offset)
    return np.ascontiguousarray(stored.reshape(little.itemsize, count).T).view(little).reshape(count)

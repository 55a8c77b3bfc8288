"""Read `.vtok` files, versions 2, 3 and 4 (docs/FORMAT.md): the bytes on disk.

A file is a preamble, the header (vtok.format.header), chunks of blocks (vtok.format.blocks), an
optional audio chunk, a seek index and a trailer. The writer is vtok.format.writer. Needs numpy
and zstandard only.
"""

import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import zstandard

from vtok.errors import ContainerError
from vtok.format.access import TokenWindow, read_window
from vtok.format.blocks import Block, BlockState
from vtok.format.chunks import (
    BLKS_HEAD,
    CHUNK_HEAD,
    END_MAGIC,
    INDEX_ENTRY,
    MAGIC,
    MAX_CHUNK,
    MAX_HEADER,
    PREAMBLE,
    READABLE,
    RECORD,
    TRAILER,
    VERSION,
    chunk_crc,
    codes_from_bytes,
)
from vtok.format.header import MAX_BLOCKS_PER_CHUNK, Header
from vtok.format.writer import VtokWriter

__all__ = ["VtokReader", "VtokWriter", "MAGIC", "VERSION"]

CACHED_CHUNKS = 2  # decompressed block chunks a reader keeps for `block` and `tokens`


def _kind_name(kind: bytes) -> str:
    """A chunk type for an error message: its letters, or its escaped bytes when a damaged file
    holds others (which a terminal might otherwise act on)."""
    return kind.decode() if kind.isalnum() else repr(kind)


class VtokReader:
    """Read a `.vtok` file lazily: the header and index up front, block chunks on demand.

    source: a path, or a binary file object that can seek (an open file, io.BytesIO); the reader
    closes only files it opened. Every chunk's CRC is checked when it is read; `verify` checks them
    all without decompressing. Use as a context manager.

    `reader.tokens(a, b)` or `reader[a:b]` reads the tokens of frames [a, b) (vtok.format.access).
    chunks_read: the block chunks decompressed so far, a measure of the work reading did.
    format_version: the file's format version (2, 3 or 4), from its preamble.
    """

    def __init__(self, source: "str | os.PathLike | BinaryIO"):
        if hasattr(source, "read"):
            self.path = None
            self._name = Path(str(getattr(source, "name", "") or "stream")).name
            self._f, self._owned = source, False
        else:
            self.path = Path(source)
            self._name = self.path.name
            self._f, self._owned = self._open(self.path), True
        self._dctx = None  # made on the first decompression: opening and verify never need it
        self.chunks_read = 0
        self._cache: dict[int, list[Block]] = {}  # chunk number: its blocks, least recently used first
        self._last_state: tuple[int, BlockState] | None = None  # the last block `tokens` resolved, and its state
        try:
            self._size = self._f.seek(0, io.SEEK_END)
            self.header = self._read_header()
            self._index, self._audio_at = self._read_index()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open(path: Path) -> BinaryIO:
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise ContainerError(f"{path}: no such file") from None
        except OSError as e:
            raise ContainerError(f"{path}: cannot read ({e.strerror})") from None

    def _fail(self, what: str) -> ContainerError:
        return ContainerError(f"{self._name}: {what}")

    def _read_exact(self, offset: int, n: int, what: str) -> bytes:
        if offset + n > self._size:
            raise self._fail(f"truncated: {what} runs past the end of the file")
        self._f.seek(offset)
        data = self._f.read(n)
        if len(data) != n:
            raise self._fail(f"truncated: {what} runs past the end of the file")
        return data

    def _read_header(self) -> Header:
        if self._size < PREAMBLE.size:
            raise self._fail("not a .vtok file (too short)")
        magic, version, reserved, n = PREAMBLE.unpack(self._read_exact(0, PREAMBLE.size, "preamble"))
        if magic != MAGIC:
            raise self._fail("not a .vtok file (bad magic bytes)")
        if reserved != 0:
            raise self._fail("corrupted preamble (reserved field is not zero)")
        if version not in READABLE:
            known = ", ".join(map(str, READABLE))
            raise self._fail(f"format version {version} is not supported (this reader knows {known})")
        if n > MAX_HEADER:
            raise self._fail(f"header length {n} exceeds the {MAX_HEADER}-byte limit")
        raw = self._read_exact(PREAMBLE.size, n + 4, "header")
        if zlib.crc32(raw[:n]) != struct.unpack("<I", raw[n:])[0]:
            raise self._fail("header checksum mismatch (corrupted)")
        header = Header.from_bytes(raw[:n])
        if (header.version == 2) != (version == 2):  # versions 3 and 4 differ only in how codes are laid out
            raise self._fail(f"a version-{version} file holds a header of version {header.version}")
        self._chunks_at = PREAMBLE.size + n + 4
        self.format_version = version
        return header

    def _read_chunk(self, offset: int, label: str | None = None) -> tuple[bytes, bytes]:
        """The chunk at `offset`, checksum checked: (type, payload). `label` names it in errors."""
        kind, crc, length = CHUNK_HEAD.unpack(self._read_exact(offset, CHUNK_HEAD.size, "chunk head"))
        label = label or f"{_kind_name(kind)} chunk at {offset}"
        if length > MAX_CHUNK:
            raise self._fail(f"{label} claims {length} bytes, over the {MAX_CHUNK}-byte limit")
        payload = self._read_exact(offset + CHUNK_HEAD.size, length, label)
        if chunk_crc(kind, payload) != crc:
            raise self._fail(f"checksum mismatch in {label} (corrupted)")
        return kind, payload

    def _read_index(self) -> tuple[np.ndarray, int | None]:
        if self._size < self._chunks_at + TRAILER.size:
            raise self._fail("truncated: no trailer")
        index_at, end = TRAILER.unpack(self._read_exact(self._size - TRAILER.size, TRAILER.size, "trailer"))
        if end != END_MAGIC:
            raise self._fail("truncated or corrupted: bad end magic")
        if not self._chunks_at <= index_at <= self._size - TRAILER.size - CHUNK_HEAD.size:
            raise self._fail(f"index offset {index_at} is outside the file")
        kind, payload = self._read_chunk(index_at)
        if kind != b"INDX" or len(payload) < 4:
            raise self._fail("trailer does not point at an index chunk")
        (n,) = struct.unpack("<I", payload[:4])
        if len(payload) != 4 + n * INDEX_ENTRY.itemsize:
            raise self._fail(f"index of {n} entries has {len(payload)} bytes")
        index = np.frombuffer(payload, INDEX_ENTRY, count=n, offset=4)
        self._index_at = index_at
        self._check_index(index, index_at)
        audio_at = self._find_audio(index, index_at)
        return index, audio_at

    def _check_index(self, index: np.ndarray, index_at: int) -> None:
        expected = 0
        for entry in index:
            if entry["first_block"] != expected or not 1 <= entry["n_blocks"] <= MAX_BLOCKS_PER_CHUNK:
                raise self._fail("index entries are not consecutive block runs")
            if not self._chunks_at <= entry["offset"] < index_at:
                raise self._fail("index points outside the chunk area")
            expected += int(entry["n_blocks"])
        if expected != self.header.blocks:
            raise self._fail(f"index covers {expected} blocks, header says {self.header.blocks}")

    def _find_audio(self, index: np.ndarray, index_at: int) -> int | None:
        """The offset of the AUDI chunk, if any: it sits between the last BLKS chunk and the index."""
        audio_at = None
        pos = self._chunks_at
        if len(index):
            last = int(index[-1]["offset"])
            _, _, length = CHUNK_HEAD.unpack(self._read_exact(last, CHUNK_HEAD.size, "chunk head"))
            pos = last + CHUNK_HEAD.size + length
        while pos < index_at:
            kind, _, length = CHUNK_HEAD.unpack(self._read_exact(pos, CHUNK_HEAD.size, "chunk head"))
            if kind == b"AUDI":
                audio_at = pos
            else:
                self._read_chunk(pos)  # a damaged known type would look unknown: its checksum tells
            pos += CHUNK_HEAD.size + length  # unknown chunk types are skipped
        if pos != index_at:
            raise self._fail("chunks do not line up with the index")
        return audio_at

    @property
    def chunks(self) -> int:
        return len(self._index)

    def verify(self) -> int:
        """Check every chunk's checksum and that the seek index agrees with the block chunks, without
        decompressing any block. Returns the number of chunks, the index included.

        Walks the chunks from the header to the index: the n-th BLKS chunk must sit where index
        entry n says, and its zstd frame head must state a size its blocks can take; every index
        entry must be met. Raises ContainerError naming the first chunk that fails.
        """
        entries = {int(e["offset"]): i for i, e in enumerate(self._index)}
        pos, met, count = self._chunks_at, 0, 1  # the index chunk was read (and checked) on opening
        while pos < self._index_at:
            kind = self._read_exact(pos, 4, "chunk head")
            label = self._entry_label(entries[pos]) if kind == b"BLKS" and pos in entries else None
            kind, payload = self._read_chunk(pos, label)
            if kind == b"BLKS":
                if met >= len(self._index):
                    raise self._fail(f"BLKS chunk at {pos} is not in the index ({met} entries)")
                if int(self._index[met]["offset"]) != pos:
                    target = int(self._index[met]["offset"])
                    raise self._fail(f"BLKS chunk at {pos} is not where index entry {met} points ({target})")
                self._stated_size(met, payload)
                met += 1
            elif kind == b"INDX" or (kind == b"AUDI" and pos != self._audio_at):
                raise self._fail(f"{_kind_name(kind)} chunk at {pos} is out of place (one, after the block chunks)")
            pos += CHUNK_HEAD.size + len(payload)
            count += 1
        if pos != self._index_at:
            raise self._fail(f"chunks do not line up with the index chunk at {self._index_at}")
        if met != len(self._index):
            entry = self._index[met]
            raise self._fail(
                f"index entry {met} (first block {int(entry['first_block'])}) points at {int(entry['offset'])}, "
                "where no BLKS chunk starts"
            )
        return count

    def _entry_label(self, i: int) -> str:
        entry = self._index[i]
        return f"BLKS chunk at {int(entry['offset'])} (index entry {i}, first block {int(entry['first_block'])})"

    def _stated_size(self, i: int, payload: bytes) -> int:
        """The decompressed size the zstd frame head of block chunk i states, checked against what its
        blocks can take: from their records, masks and tile levels alone up to every position coded.
        Reads no compressed data."""
        h, n = self.header, int(self._index[i]["n_blocks"])
        rows, cols = h.grid
        least = BLKS_HEAD.size + n * (RECORD.itemsize + (rows * cols + 7) // 8 + h.tiles[0] * h.tiles[1])
        most = least + n * rows * cols * h.code_dtype.itemsize
        try:
            size = zstandard.frame_content_size(payload)
        except zstandard.ZstdError:
            raise self._fail(f"{self._entry_label(i)} is not a zstd frame") from None
        if size < 0:
            raise self._fail(f"{self._entry_label(i)} does not state its decompressed size")
        if not least <= size <= most:
            raise self._fail(f"{self._entry_label(i)} states {size} bytes; its {n} blocks take {least} to {most}")
        return size

    def _inflate(self, i: int, payload: bytes, size: int) -> bytes:
        """Decompress block chunk i's frame of `size` bytes. Memory grows with the bytes actually
        produced, never with the stated size: a few hundred bytes could claim gigabytes."""
        if self._dctx is None:
            self._dctx = zstandard.ZstdDecompressor()
        out = bytearray()
        try:
            with self._dctx.stream_reader(payload, read_across_frames=False) as r:
                while piece := r.read(min(1 << 20, size + 1 - len(out))):
                    out += piece
        except zstandard.ZstdError as e:
            raise self._fail(f"{self._entry_label(i)} does not decompress ({e})") from None
        if len(out) != size:
            raise self._fail(f"{self._entry_label(i)} decompresses to other than the {size} bytes it states")
        return bytes(out)

    def _decompress_chunk(self, i: int) -> tuple[bytes, np.ndarray]:
        """Block chunk i, decompressed and checked against the index: (raw bytes, its records)."""
        entry = self._index[i]
        self.chunks_read += 1
        kind, payload = self._read_chunk(int(entry["offset"]), self._entry_label(i))
        if kind != b"BLKS":
            raise self._fail(f"index entry {i} does not point at a block chunk")
        raw = self._inflate(i, payload, self._stated_size(i, payload))
        h = self.header
        rows, cols = h.grid
        n = int(entry["n_blocks"])
        first, count = BLKS_HEAD.unpack_from(raw)  # the stated size is at least the head and records
        if first != entry["first_block"] or count != n:
            raise self._fail(
                f"block chunk {i} holds blocks {first}+{count}, index says {int(entry['first_block'])}+{n}"
            )
        records = np.frombuffer(raw, RECORD, count=n, offset=BLKS_HEAD.size)
        if (records["n_codes"] > rows * cols).any():
            raise self._fail(f"block chunk {i} claims more codes than the grid has positions")
        per_block = RECORD.itemsize + (rows * cols + 7) // 8 + h.tiles[0] * h.tiles[1]
        codes_bytes = int(records["n_codes"].sum()) * h.code_dtype.itemsize
        if len(raw) != BLKS_HEAD.size + n * per_block + codes_bytes:
            raise self._fail(f"block chunk {i} size disagrees with its records")
        return raw, records

    def _chunk_blocks(self, i: int) -> list[Block]:
        raw, records = self._decompress_chunk(i)
        h = self.header
        rows, cols = h.grid
        mask_bytes, n_tiles, n = (rows * cols + 7) // 8, h.tiles[0] * h.tiles[1], len(records)
        masks_at = BLKS_HEAD.size + n * RECORD.itemsize
        levels_at = masks_at + n * mask_bytes
        codes_at = levels_at + n * n_tiles
        first = int(self._index[i]["first_block"])
        total = int(records["n_codes"].sum())
        all_codes = codes_from_bytes(raw, h.code_dtype, total, codes_at, planes=self.format_version >= 4)
        at = 0
        blocks = []
        for j, rec in enumerate(records):
            bits = np.frombuffer(raw, np.uint8, count=mask_bytes, offset=masks_at + j * mask_bytes)
            mask = np.unpackbits(bits, count=rows * cols).astype(bool).reshape(rows, cols)
            levels = np.frombuffer(raw, np.int8, count=n_tiles, offset=levels_at + j * n_tiles).reshape(h.tiles)
            codes = all_codes[at : at + int(rec["n_codes"])]
            at += codes.size
            block = Block(first + j, int(rec["frames"]), int(rec["flags"]), mask, levels, codes, h.levels)
            self._check_block(block, int(rec["reserved"]))
            blocks.append(block)
        return blocks

    def _check_block(self, block: Block, reserved: int) -> None:
        """Raise ContainerError unless the block agrees with the header and with itself."""
        h, index = self.header, block.index
        if block.tile_levels.min() < 0 or block.tile_levels.max() > h.levels - 1:
            raise self._fail(f"block {index} has tile levels outside 0..{h.levels - 1}")
        if block.frames != h.block_length(index) or reserved != 0:
            raise self._fail(f"block {index} record is inconsistent with the header")
        stored = int(block.fresh_keep().sum())
        if block.codes.size != stored:
            raise self._fail(f"block {index} has {block.codes.size} codes for {stored} positions")
        if h.is_keyframe(index) and block.run_mask.any():
            raise self._fail(f"block {index} is a keyframe but continues runs")
        if block.codes.size and int(block.codes.max()) >= h.codebook_size:
            raise self._fail(f"block {index} has codes outside the codebook")

    def blocks(self) -> Iterator[Block]:
        """Every block in order, reading one chunk at a time."""
        for i in range(len(self._index)):
            yield from self._chunk_blocks(i)

    def block(self, index: int) -> Block:
        """One block by number, through the seek index. The last CACHED_CHUNKS chunks read stay decompressed."""
        if not 0 <= index < self.header.blocks:
            raise IndexError(f"block {index} is outside 0..{self.header.blocks - 1}")
        i = int(np.searchsorted(self._index["first_block"], index, side="right")) - 1
        blocks = self._cache.pop(i, None) or self._chunk_blocks(i)
        self._cache[i] = blocks
        while len(self._cache) > CACHED_CHUNKS:
            del self._cache[next(iter(self._cache))]
        return blocks[index - int(self._index[i]["first_block"])]

    def tokens(self, start: int, stop: int) -> TokenWindow:
        """The tokens of frames [start, stop), 0 <= start <= stop <= header.frames: the blocks that
        overlap them, runs resolved (vtok.format.access). Raises IndexError outside the file."""
        return read_window(self, start, stop)

    __iter__ = None  # reader[t] indexes frames, which would make a reader iterable one frame at a time: use blocks()

    def __getitem__(self, frames: "int | slice") -> TokenWindow:
        """`reader[a:b]`: the tokens of frames [a, b), as `tokens(a, b)` after Python's slice rules
        (negative numbers count from the end; the step must be 1). `reader[t]`: frame t alone."""
        n = self.header.frames
        if isinstance(frames, slice):
            start, stop, step = frames.indices(n)
            if step != 1:
                raise ValueError(f"frame slices take no step other than 1, not {step}")
            return read_window(self, start, max(start, stop))
        t = frames + n if frames < 0 else frames
        if not 0 <= t < n:
            raise IndexError(f"frame {frames} is outside 0..{n - 1}")
        return read_window(self, t, t + 1)

    def states(self) -> Iterator[BlockState]:
        """Each block's decoder input, runs resolved: indices int64 (rows, cols), keep bool (rows, cols)."""
        previous = None
        for block in self.blocks():
            previous = block.state(previous)
            yield previous

    def audio(self) -> bytes | None:
        """The AUDI chunk's Matroska audio, or None."""
        if self._audio_at is None:
            return None
        return self._read_chunk(self._audio_at)[1]

    def close(self) -> None:
        """Close the file if the reader opened it (a file object passed in stays open)."""
        if self._owned:
            self._f.close()

    def __enter__(self) -> "VtokReader":
        return self

    def __exit__(self, *_) -> None:
        self.close()

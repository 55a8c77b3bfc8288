"""Read and write `.vtok` files, versions 2 and 3 (docs/FORMAT.md): the bytes on disk.

A file is a preamble, the header (vtok.format.header), chunks of blocks (vtok.format.blocks), an
optional audio chunk, a seek index and a trailer. Needs numpy and zstandard only.
"""

import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import zstandard

from vtok.errors import ContainerError, OutputError
from vtok.files import atomic_path
from vtok.format.blocks import Block, BlockState, ordered_positions, stored_positions
from vtok.format.header import MAX_BLOCKS_PER_CHUNK, Header

__all__ = ["VtokReader", "VtokWriter", "MAGIC", "VERSION"]

MAGIC = b"\x89VTOK\r\n\x1a"
END_MAGIC = b"VTOKEND\x00"
VERSION = 3  # the newest this module writes; it reads 2 and 3

MAX_HEADER = 1 << 20
MAX_CHUNK = 256 << 20

_PREAMBLE = struct.Struct("<8sHHI")
_CHUNK_HEAD = struct.Struct("<4sIQ")
_TRAILER = struct.Struct("<Q8s")
_BLKS_HEAD = struct.Struct("<II")
_RECORD = np.dtype([("n_codes", "<u4"), ("frames", "u1"), ("flags", "u1"), ("reserved", "<u2")])
_INDEX_ENTRY = np.dtype([("offset", "<u8"), ("first_block", "<u4"), ("n_blocks", "<u4")])


def _chunk_crc(kind: bytes, payload: bytes) -> int:
    """CRC-32 over the type and the payload, so a damaged type is caught too."""
    return zlib.crc32(payload, zlib.crc32(kind))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return _CHUNK_HEAD.pack(kind, _chunk_crc(kind, payload), len(payload)) + payload


class VtokWriter:
    """Write a `.vtok` file atomically: blocks go to a spool, and `close` assembles the final file
    (the header needs the frame count, known only at the end) under a temporary name, then renames it.

    Use as a context manager; an exception leaves no file under the final name.
    """

    def __init__(self, path: Path, header: Header, *, blocks_per_chunk: int = 16, level: int = 3):
        header.check()
        self.path = Path(path)
        self.header = header
        k = header.keyframe_interval
        self._per_chunk = blocks_per_chunk if k == 0 else k * max(1, blocks_per_chunk // k)  # chunks start at keyframes
        self._zstd = zstandard.ZstdCompressor(level=level, write_checksum=False, write_content_size=True)
        try:
            self._spool = tempfile.TemporaryFile(dir=self.path.parent, prefix=".vtok-spool-")
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write here ({e.strerror})") from None
        self._pending: list[Block] = []
        self._index: list[tuple[int, int, int]] = []
        self._audio: bytes | None = None
        self._next_block = 0

    def write_block(
        self,
        indices: np.ndarray,
        *,
        frames: int,
        run_mask: np.ndarray | None = None,
        tile_levels: np.ndarray | None = None,
        flags: int = 0,
    ) -> int:
        """Append one block; returns the number of codes it stores.

        indices: int (rows, cols), the block's full code grid; only the stored positions are kept.
        run_mask: bool (rows, cols), positions that continue a run (default none).
        tile_levels: int (tile rows, tile cols) in 0..levels-1 (default levels-1: the full budget).
        """
        h = self.header
        rows, cols = h.grid
        mask = np.zeros((rows, cols), bool) if run_mask is None else np.asarray(run_mask, bool)
        levels = np.full(h.tiles, h.levels - 1, np.int8) if tile_levels is None else np.asarray(tile_levels, np.int8)
        indices = np.asarray(indices)
        if indices.shape != (rows, cols) or mask.shape != (rows, cols) or levels.shape != self.header.tiles:
            raise ValueError(f"block {self._next_block}: grids must be {rows}x{cols} and tiles {self.header.tiles}")
        if levels.min() < 0 or levels.max() > h.levels - 1:
            raise ValueError(f"block {self._next_block}: tile levels outside 0..{h.levels - 1}")
        if h.is_keyframe(self._next_block) and mask.any():
            raise ValueError(f"block {self._next_block} is a keyframe and cannot continue runs")
        codes = indices.reshape(-1)[ordered_positions(stored_positions(mask, levels, h.levels), h.levels)]
        if codes.size and (codes.min() < 0 or codes.max() >= self.header.codebook_size):
            raise ValueError(f"block {self._next_block}: codes outside [0, {self.header.codebook_size})")
        block = Block(self._next_block, frames, flags, mask, levels, codes.astype(h.code_dtype), h.levels)
        self._pending.append(block)
        self._next_block += 1
        if len(self._pending) >= self._per_chunk:
            self._flush()
        return int(codes.size)

    def add_audio(self, blob: bytes) -> None:
        self._audio = blob

    def _flush(self) -> None:
        if not self._pending:
            return
        blocks, self._pending = self._pending, []
        records = np.zeros(len(blocks), _RECORD)
        records["n_codes"] = [b.codes.size for b in blocks]
        records["frames"] = [b.frames for b in blocks]
        records["flags"] = [b.flags for b in blocks]
        parts = [_BLKS_HEAD.pack(blocks[0].index, len(blocks)), records.tobytes()]
        parts += [np.packbits(b.run_mask.reshape(-1)).tobytes() for b in blocks]
        parts += [b.tile_levels.astype(np.int8).tobytes() for b in blocks]
        parts += [b.codes.tobytes() for b in blocks]
        self._index.append((self._spool.tell(), blocks[0].index, len(blocks)))
        self._write(self._spool, _chunk(b"BLKS", self._zstd.compress(b"".join(parts))))

    def _write(self, f, data: bytes) -> None:
        try:
            f.write(data)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write ({e.strerror})") from None

    def close(self, **changes) -> None:
        """Finish the file. `changes` set header fields known only at the end: the exact `frames`, and
        what reading the source found (`rotation`, `source_notes`).

        Closing twice does nothing the second time.
        """
        if self._spool.closed:
            return
        try:
            self._flush()
            header = replace(self.header, **changes)
            header.check()
            if header.blocks != self._next_block:
                raise ValueError(
                    f"{self._next_block} blocks written for {header.frames} frames ({header.blocks} blocks)"
                )
            with atomic_path(self.path) as tmp, open(tmp, "wb") as out:
                self._assemble(out, header)
        finally:
            self._spool.close()

    def _assemble(self, out, header: Header) -> None:
        head = header.to_bytes()
        start = _PREAMBLE.size + len(head) + 4
        self._write(
            out, _PREAMBLE.pack(MAGIC, header.version, 0, len(head)) + head + struct.pack("<I", zlib.crc32(head))
        )
        self._spool.seek(0)
        while data := self._spool.read(1 << 20):
            self._write(out, data)
        if self._audio is not None:
            self._write(out, _chunk(b"AUDI", self._audio))
        index_at = out.tell()
        entries = np.array([(start + o, b, n) for o, b, n in self._index], _INDEX_ENTRY)
        self._write(out, _chunk(b"INDX", struct.pack("<I", len(entries)) + entries.tobytes()))
        self._write(out, _TRAILER.pack(index_at, END_MAGIC))

    def abort(self) -> None:
        """Drop everything written so far: no file appears."""
        self._spool.close()

    def __enter__(self) -> "VtokWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        """A normal exit finishes the file (as `close` would); an exception leaves none."""
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VtokReader:
    """Read a `.vtok` file lazily: the header and index up front, block chunks on demand.

    Every chunk's CRC is checked when it is read. Use as a context manager.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise ContainerError(f"{self.path}: no such file") from None
        except OSError as e:
            raise ContainerError(f"{self.path}: cannot read ({e.strerror})") from None
        try:
            self._size = os.fstat(self._f.fileno()).st_size
            self.header = self._read_header()
            self._index, self._audio_at = self._read_index()
        except BaseException:
            self._f.close()
            raise
        self._dctx = zstandard.ZstdDecompressor()

    def _fail(self, what: str) -> ContainerError:
        return ContainerError(f"{self.path.name}: {what}")

    def _read_exact(self, offset: int, n: int, what: str) -> bytes:
        if offset + n > self._size:
            raise self._fail(f"truncated: {what} runs past the end of the file")
        self._f.seek(offset)
        data = self._f.read(n)
        if len(data) != n:
            raise self._fail(f"truncated: {what} runs past the end of the file")
        return data

    def _read_header(self) -> Header:
        if self._size < _PREAMBLE.size:
            raise self._fail("not a .vtok file (too short)")
        magic, version, reserved, n = _PREAMBLE.unpack(self._read_exact(0, _PREAMBLE.size, "preamble"))
        if magic != MAGIC:
            raise self._fail("not a .vtok file (bad magic bytes)")
        if reserved != 0:
            raise self._fail("corrupted preamble (reserved field is not zero)")
        if version not in (2, VERSION):
            raise self._fail(f"format version {version} is not supported (this reader knows 2 and {VERSION})")
        if n > MAX_HEADER:
            raise self._fail(f"header length {n} exceeds the {MAX_HEADER}-byte limit")
        raw = self._read_exact(_PREAMBLE.size, n + 4, "header")
        if zlib.crc32(raw[:n]) != struct.unpack("<I", raw[n:])[0]:
            raise self._fail("header checksum mismatch (corrupted)")
        header = Header.from_bytes(raw[:n])
        if header.version != version:
            raise self._fail(f"a version-{version} file holds a header of version {header.version}")
        self._chunks_at = _PREAMBLE.size + n + 4
        return header

    def _read_chunk(self, offset: int) -> tuple[bytes, bytes]:
        kind, crc, length = _CHUNK_HEAD.unpack(self._read_exact(offset, _CHUNK_HEAD.size, "chunk head"))
        if length > MAX_CHUNK:
            raise self._fail(f"chunk at {offset} claims {length} bytes, over the {MAX_CHUNK}-byte limit")
        payload = self._read_exact(offset + _CHUNK_HEAD.size, length, f"{kind!r} chunk at {offset}")
        if _chunk_crc(kind, payload) != crc:
            raise self._fail(f"checksum mismatch in {kind.decode('ascii', 'replace')} chunk at {offset} (corrupted)")
        return kind, payload

    def _read_index(self) -> tuple[np.ndarray, int | None]:
        if self._size < self._chunks_at + _TRAILER.size:
            raise self._fail("truncated: no trailer")
        index_at, end = _TRAILER.unpack(self._read_exact(self._size - _TRAILER.size, _TRAILER.size, "trailer"))
        if end != END_MAGIC:
            raise self._fail("truncated or corrupted: bad end magic")
        if not self._chunks_at <= index_at <= self._size - _TRAILER.size - _CHUNK_HEAD.size:
            raise self._fail(f"index offset {index_at} is outside the file")
        kind, payload = self._read_chunk(index_at)
        if kind != b"INDX" or len(payload) < 4:
            raise self._fail("trailer does not point at an index chunk")
        (n,) = struct.unpack("<I", payload[:4])
        if len(payload) != 4 + n * _INDEX_ENTRY.itemsize:
            raise self._fail(f"index of {n} entries has {len(payload)} bytes")
        index = np.frombuffer(payload, _INDEX_ENTRY, count=n, offset=4)
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
            _, _, length = _CHUNK_HEAD.unpack(self._read_exact(last, _CHUNK_HEAD.size, "chunk head"))
            pos = last + _CHUNK_HEAD.size + length
        while pos < index_at:
            kind, _, length = _CHUNK_HEAD.unpack(self._read_exact(pos, _CHUNK_HEAD.size, "chunk head"))
            if kind == b"AUDI":
                audio_at = pos
            else:
                self._read_chunk(pos)  # a damaged known type would look unknown: its checksum tells
            pos += _CHUNK_HEAD.size + length  # unknown chunk types are skipped
        if pos != index_at:
            raise self._fail("chunks do not line up with the index")
        return audio_at

    @property
    def chunks(self) -> int:
        return len(self._index)

    def _decompress_chunk(self, i: int) -> tuple[bytes, np.ndarray]:
        """Block chunk i, decompressed and checked against the index: (raw bytes, its records)."""
        entry = self._index[i]
        kind, payload = self._read_chunk(int(entry["offset"]))
        if kind != b"BLKS":
            raise self._fail(f"index entry {i} does not point at a block chunk")
        h = self.header
        rows, cols = h.grid
        n = int(entry["n_blocks"])
        per_block = _RECORD.itemsize + (rows * cols + 7) // 8 + h.tiles[0] * h.tiles[1]
        limit = _BLKS_HEAD.size + n * (per_block + rows * cols * h.code_dtype.itemsize)
        try:
            raw = self._dctx.decompress(payload, max_output_size=limit)
        except zstandard.ZstdError as e:
            raise self._fail(f"block chunk {i} does not decompress ({e})") from None
        if len(raw) < _BLKS_HEAD.size + n * _RECORD.itemsize:
            raise self._fail(f"block chunk {i} is too short for its records")
        first, count = _BLKS_HEAD.unpack_from(raw)
        if first != entry["first_block"] or count != n:
            raise self._fail(
                f"block chunk {i} holds blocks {first}+{count}, index says {int(entry['first_block'])}+{n}"
            )
        records = np.frombuffer(raw, _RECORD, count=n, offset=_BLKS_HEAD.size)
        if (records["n_codes"] > rows * cols).any():
            raise self._fail(f"block chunk {i} claims more codes than the grid has positions")
        codes_bytes = int(records["n_codes"].sum()) * h.code_dtype.itemsize
        if len(raw) != _BLKS_HEAD.size + n * per_block + codes_bytes:
            raise self._fail(f"block chunk {i} size disagrees with its records")
        return raw, records

    def _chunk_blocks(self, i: int) -> list[Block]:
        raw, records = self._decompress_chunk(i)
        h = self.header
        rows, cols = h.grid
        mask_bytes, n_tiles, n = (rows * cols + 7) // 8, h.tiles[0] * h.tiles[1], len(records)
        masks_at = _BLKS_HEAD.size + n * _RECORD.itemsize
        levels_at = masks_at + n * mask_bytes
        codes_at = levels_at + n * n_tiles
        first = int(self._index[i]["first_block"])
        blocks = []
        for j, rec in enumerate(records):
            bits = np.frombuffer(raw, np.uint8, count=mask_bytes, offset=masks_at + j * mask_bytes)
            mask = np.unpackbits(bits, count=rows * cols).astype(bool).reshape(rows, cols)
            levels = np.frombuffer(raw, np.int8, count=n_tiles, offset=levels_at + j * n_tiles).reshape(h.tiles)
            codes = np.frombuffer(raw, h.code_dtype, count=int(rec["n_codes"]), offset=codes_at)
            codes_at += codes.nbytes
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
        """One block by number, through the seek index."""
        if not 0 <= index < self.header.blocks:
            raise IndexError(f"block {index} is outside 0..{self.header.blocks - 1}")
        i = int(np.searchsorted(self._index["first_block"], index, side="right")) - 1
        return self._chunk_blocks(i)[index - int(self._index[i]["first_block"])]

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
        self._f.close()

    def __enter__(self) -> "VtokReader":
        return self

    def __exit__(self, *_) -> None:
        self.close()

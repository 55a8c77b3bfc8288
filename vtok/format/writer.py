"""Write `.vtok` files, versions 2 and 4 (docs/FORMAT.md): blocks are spooled, and the file is
assembled under a temporary name when it is closed. Needs numpy and zstandard only."""

import struct
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import zstandard

from vtok.errors import OutputError
from vtok.files import atomic_path
from vtok.format.blocks import Block, ordered_positions, stored_positions
from vtok.format.chunks import (
    BLKS_HEAD,
    END_MAGIC,
    INDEX_ENTRY,
    MAGIC,
    PREAMBLE,
    RECORD,
    TRAILER,
    codes_to_bytes,
    file_version,
    pack_chunk,
)
from vtok.format.header import Header

__all__ = ["VtokWriter"]


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
        records = np.zeros(len(blocks), RECORD)
        records["n_codes"] = [b.codes.size for b in blocks]
        records["frames"] = [b.frames for b in blocks]
        records["flags"] = [b.flags for b in blocks]
        parts = [BLKS_HEAD.pack(blocks[0].index, len(blocks)), records.tobytes()]
        parts += [np.packbits(b.run_mask.reshape(-1)).tobytes() for b in blocks]
        parts += [b.tile_levels.astype(np.int8).tobytes() for b in blocks]
        codes = np.concatenate([b.codes for b in blocks])
        parts.append(codes_to_bytes(codes, planes=file_version(self.header.version) >= 4))
        self._index.append((self._spool.tell(), blocks[0].index, len(blocks)))
        self._write(self._spool, pack_chunk(b"BLKS", self._zstd.compress(b"".join(parts))))

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
        start = PREAMBLE.size + len(head) + 4
        preamble = PREAMBLE.pack(MAGIC, file_version(header.version), 0, len(head))
        self._write(out, preamble + head + struct.pack("<I", zlib.crc32(head)))
        self._spool.seek(0)
        while data := self._spool.read(1 << 20):
            self._write(out, data)
        if self._audio is not None:
            self._write(out, pack_chunk(b"AUDI", self._audio))
        index_at = out.tell()
        entries = np.array([(start + o, b, n) for o, b, n in self._index], INDEX_ENTRY)
        self._write(out, pack_chunk(b"INDX", struct.pack("<I", len(entries)) + entries.tobytes()))
        self._write(out, TRAILER.pack(index_at, END_MAGIC))

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

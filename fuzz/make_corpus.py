"""Write the fuzzer's seed corpus, fuzz/corpus/: small real `.vtok` files of both layouts.

    PYTHONPATH=. python fuzz/make_corpus.py

Both layouts (stride 8 with 3 levels: version 2; stride 4 with 4 levels and keyframes: version 4),
with and without audio, with runs, every code width, an empty video, an unknown chunk type, and
the test suite's golden files (with one of version 3, whose codes are not in byte planes). The
`raw-` files store their block chunks as zstd frames of raw (uncompressed) blocks, as valid as any
other: a mutation of those bytes changes the decompressed data directly instead of breaking the
compression. Deterministic: the same files every time.
"""

import shutil
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from vtok.format import Header, VtokWriter

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
GOLDENS = [HERE.parent / "tests" / "data" / f"golden_v{v}.vtok" for v in (2, 3)]

_RAW_BLOCK = 128 << 10  # the largest zstd block


class RawFrames:
    """Stands in for the writer's zstandard compressor: one zstd frame of raw blocks, content size set."""

    def compress(self, data: bytes) -> bytes:
        # Frame header: magic, descriptor 0xA0 (single segment, 4-byte content size), content size.
        out = [struct.pack("<IBI", 0xFD2FB528, 0xA0, len(data))]
        pieces = [data[i : i + _RAW_BLOCK] for i in range(0, len(data), _RAW_BLOCK)] or [b""]
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            out.append((len(piece) << 3 | last).to_bytes(3, "little") + piece)  # block type 0: raw
        return b"".join(out)


def header(**changes) -> Header:
    fields = dict(
        model="fuzz",
        model_sha256="ab" * 32,
        model_config={"frames": 4},
        quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]},
        codebook_size=64000,
        block_frames=4,
        width=40,
        height=20,
        frames=10,
        rate=Fraction(30000, 1001),
        threshold=0.003,
        rlt_threshold=6 / 255,
        source="clip.mp4",
        source_duration_s=0.3,
    )
    return Header(**(fields | changes))


def write(name: str, h: Header, *, audio: bytes | None = None, per_chunk: int = 2, raw: bool = False) -> None:
    """Blocks of random codes and budgets; every block but the keyframes continues a few runs."""
    rng = np.random.default_rng(len(name))
    rows, cols = h.grid
    with VtokWriter(CORPUS / name, h, blocks_per_chunk=per_chunk) as w:
        if raw:
            w._zstd = RawFrames()  # a corpus tool may reach in: the writer has no such option, on purpose
        for b in range(h.blocks):
            runs = None if h.is_keyframe(b) else rng.random((rows, cols)) < 0.3
            levels = rng.integers(0, h.levels, h.tiles)
            flags = int(b == h.blocks - 1)
            w.write_block(
                rng.integers(0, h.codebook_size, (rows, cols)),
                frames=h.block_length(b),
                run_mask=runs,
                tile_levels=levels,
                flags=flags,
            )
        if audio is not None:
            w.add_audio(audio)


def add_unknown_chunk(name: str, source: str) -> None:
    """A copy of `source` with an unknown chunk type before the index, as a later version might write."""
    data = (CORPUS / source).read_bytes()
    index_at = struct.unpack("<Q", data[-16:-8])[0]
    payload = b"a later version's data"
    extra = struct.pack("<4sIQ", b"XTRA", zlib.crc32(payload, zlib.crc32(b"XTRA")), len(payload)) + payload
    grown = data[:index_at] + extra + data[index_at:-16] + struct.pack("<Q", index_at + len(extra)) + data[-8:]
    (CORPUS / name).write_bytes(grown)


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    fine = dict(token_stride=4, levels=4, keyframe_interval=2)
    audio = b"\x1aE\xdf\xa3 not really matroska"
    write("v2-audio.vtok", header(), audio=audio)
    write("v2-one-chunk.vtok", header(frames=7, quantizer={"kind": "lfq", "bits": 16}, codebook_size=1 << 16))
    write("v2-uint8.vtok", header(width=9, height=30, frames=13, block_frames=3, codebook_size=200), per_chunk=3)
    write("v2-empty.vtok", header(frames=0))
    write("v4-audio.vtok", header(width=70, height=36, frames=21, **fine), audio=audio)
    write("v4-uint32.vtok", header(width=24, height=24, frames=8, codebook_size=1 << 20, **fine), per_chunk=4)
    write("v4-every-block-a-keyframe.vtok", header(frames=9, token_stride=4, levels=4, keyframe_interval=1))
    write("raw-v2-audio.vtok", header(), audio=audio, raw=True)
    write("raw-v4.vtok", header(width=40, height=36, frames=14, **fine), raw=True)
    add_unknown_chunk("v2-unknown-chunk.vtok", "v2-audio.vtok")
    for golden in GOLDENS:
        shutil.copy(golden, CORPUS / golden.name)
    total = sum(p.stat().st_size for p in CORPUS.iterdir())
    print(f"{CORPUS}: {len(list(CORPUS.iterdir()))} files, {total} bytes")


if __name__ == "__main__":
    main()

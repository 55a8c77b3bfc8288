import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, GENERATE

from vtok import ContainerError
from vtok.container import FLAG_MISSED_THRESHOLD, MAGIC, Header, VtokReader, VtokWriter

GOLDEN = DATA / "golden_v1.vtok"


def small_header(**changes) -> Header:
    fields = dict(
        model="test-model",
        model_sha256="ab" * 32,
        model_config={"frames": 4},
        quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]},
        codebook_size=64000,
        block_frames=4,
        width=20,
        height=17,
        frames=9,
        rate=Fraction(30000, 1001),
        threshold=0.003,
        source="clip.mp4",
        source_duration_s=0.3,
    )
    fields.update(changes)
    return Header(**fields)


def write_small(path: Path, audio: bytes | None = b"not really matroska") -> list[dict]:
    """Three blocks over two chunks: a full block, one with runs, and a short flagged last block."""
    h = small_header()
    rows, cols = h.grid
    codes = np.arange(rows * cols, dtype=np.int64) * 7001 % 64000
    mask = np.zeros((rows, cols), bool)
    mask[1, :2] = True
    blocks = [
        dict(codes=codes, frames=4, run_mask=None, flags=0),
        dict(codes=codes[: rows * cols - 2][::-1].copy(), frames=4, run_mask=mask, flags=0),
        dict(codes=codes, frames=1, run_mask=None, flags=FLAG_MISSED_THRESHOLD),
    ]
    with VtokWriter(path, h, blocks_per_chunk=2) as w:
        for b in blocks:
            w.write_block(**b)
        if audio is not None:
            w.add_audio(audio)
        w.close()
    return blocks


def test_golden_bytes(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    if GENERATE:
        GOLDEN.write_bytes(path.read_bytes())
    assert path.read_bytes() == GOLDEN.read_bytes()


def test_writing_twice_gives_identical_bytes(tmp_path):
    write_small(tmp_path / "a.vtok")
    write_small(tmp_path / "b.vtok")
    assert (tmp_path / "a.vtok").read_bytes() == (tmp_path / "b.vtok").read_bytes()


def test_round_trip(tmp_path):
    path = tmp_path / "a.vtok"
    blocks = write_small(path)
    with VtokReader(path) as r:
        assert r.header == small_header()
        assert r.header.grid == (3, 3) and r.header.blocks == 3
        assert r.audio() == b"not really matroska"
        got = list(r.blocks())
        grids = list(r.grids())
        assert r.block(2).missed_threshold and not r.block(0).missed_threshold
    assert [b.frames for b in got] == [4, 4, 1]
    for want, have in zip(blocks, got, strict=True):
        assert np.array_equal(want["codes"], have.codes)
        assert have.codes.dtype == np.dtype("<u2")
    # run positions take the previous block's codes
    assert np.array_equal(grids[1][1, :2], grids[0][1, :2])
    assert np.array_equal(grids[1][~got[1].run_mask], blocks[1]["codes"])


def test_file_starts_with_magic_and_version(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = path.read_bytes()
    assert data[:8] == MAGIC and struct.unpack("<H", data[8:10])[0] == 1
    assert data[-8:] == b"VTOKEND\x00"


def test_no_audio_chunk_reads_as_none(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path, audio=None)
    with VtokReader(path) as r:
        assert r.audio() is None


def read_all(path: Path) -> None:
    with VtokReader(path) as r:
        list(r.blocks())
        r.audio()


def test_every_truncation_gives_a_clean_error(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.vtok"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(ContainerError):
            read_all(cut)


def test_every_single_byte_corruption_is_detected(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.vtok"
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x41
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ContainerError):
            read_all(bad)


def test_random_garbage_is_rejected(tmp_path):
    rng = np.random.default_rng(1)
    bad = tmp_path / "bad.vtok"
    for n in [0, 1, 15, 16, 100, 5000]:
        bad.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        with pytest.raises(ContainerError):
            read_all(bad)
        bad.write_bytes(MAGIC + rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        with pytest.raises(ContainerError):
            read_all(bad)


def test_header_limits_are_checked_before_allocation(tmp_path):
    for changes in [
        dict(width=100_000),
        dict(height=0),
        dict(frames=-1),
        dict(block_frames=0),
        dict(rate=Fraction(0, 1)),
    ]:
        with pytest.raises(ContainerError):
            small_header(**changes).check()


def test_unknown_version_is_refused(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = bytearray(path.read_bytes())
    data[8:10] = struct.pack("<H", 2)
    path.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="version 2"):
        read_all(path)


def test_writer_rejects_bad_blocks_and_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "a.vtok"
    h = small_header()
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros(4, np.int64), frames=4)  # grid has 9 positions
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.full(9, 64000), frames=4)  # outside the codebook
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros(9, np.int64), frames=4)
            w.close()  # 9 frames need 3 blocks
    assert list(tmp_path.iterdir()) == []


def test_reading_needs_neither_torch_nor_pyav(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "a.vtok"
    write_small(path)
    code = (
        "import sys, vtok\n"
        f"with vtok.open({str(path)!r}) as f:\n"
        "    grids = list(f.grids())\n"
        "assert len(grids) == 3 and f.header.frames == 9\n"
        "assert 'torch' not in sys.modules and 'av' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

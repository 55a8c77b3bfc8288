import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, GENERATE

from vtok import ContainerError
from vtok.format import FLAG_MISSED_THRESHOLD, MAGIC, Header, VtokReader, VtokWriter
from vtok.format.chunks import INDEX_ENTRY as _INDEX_ENTRY
from vtok.format.layout import tile_keep

GOLDEN = DATA / "golden_v2.vtok"  # the first layout: version-2 bytes
GOLDEN_V3 = DATA / "golden_v3.vtok"  # write_fine's file as version 3 wrote it: each code's bytes together
GOLDEN_V4 = DATA / "golden_v4.vtok"  # write_fine's file as version 4 writes it: codes in byte planes


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
        rlt_threshold=6 / 255,
        source="clip.mp4",
        source_duration_s=0.3,
    )
    fields.update(changes)
    return Header(**fields)


def write_small(path: Path, audio: bytes | None = b"not really matroska") -> list[dict]:
    """Three blocks over two chunks: a full block, one with runs at a lower budget, and a short flagged
    last block at the lowest budget."""
    h = small_header()
    rows, cols = h.grid
    grid = (np.arange(rows * cols, dtype=np.int64) * 7001 % 64000).reshape(rows, cols)
    mask = np.zeros((rows, cols), bool)
    mask[1, :2] = True
    blocks = [
        dict(indices=grid, frames=4, run_mask=None, tile_levels=np.array([[2]]), flags=0),
        dict(indices=grid[::-1, ::-1].copy(), frames=4, run_mask=mask, tile_levels=np.array([[1]]), flags=0),
        dict(indices=grid + 1, frames=1, run_mask=None, tile_levels=np.array([[0]]), flags=FLAG_MISSED_THRESHOLD),
    ]
    with VtokWriter(path, h, blocks_per_chunk=2) as w:
        for b in blocks:
            w.write_block(**b)
        if audio is not None:
            w.add_audio(audio)
        w.close()
    return blocks


def write_fine(path: Path) -> None:
    """Three blocks of the fine layout with 18-bit codes, a keyframe every 2 blocks, over two chunks:
    a full block, one with runs at random tile levels, and a short keyframe."""
    h = small_header(
        width=70, height=40, frames=9, token_stride=4, levels=4, keyframe_interval=2,
        quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5, 4]}, codebook_size=256000,
    )  # fmt: skip
    rows, cols = h.grid
    rng = np.random.default_rng(3)
    run = np.zeros((rows, cols), bool)
    run[2:6, 3:9] = True
    with VtokWriter(path, h) as w:
        w.write_block(rng.integers(0, 256000, (rows, cols)), frames=4)
        codes, levels = rng.integers(0, 256000, (rows, cols)), rng.integers(0, 4, h.tiles)
        w.write_block(codes, frames=4, run_mask=run, tile_levels=levels)
        w.write_block(rng.integers(0, 256000, (rows, cols)), frames=1, tile_levels=np.full(h.tiles, 2))


def test_golden_bytes_of_the_fine_layout_in_byte_planes(tmp_path):
    path = tmp_path / "fine.vtok"
    write_fine(path)
    if GENERATE:
        GOLDEN_V4.write_bytes(path.read_bytes())
    assert path.read_bytes() == GOLDEN_V4.read_bytes() and path.read_bytes()[8:10] == struct.pack("<H", 4)


def test_version_3_files_read_as_they_were_written():
    """GOLDEN_V3 was written by the version-3 writer (each code's bytes together) from write_fine's
    blocks: it reads back to the same header and blocks as version 4's byte planes."""
    assert GOLDEN_V3.read_bytes()[8:10] == struct.pack("<H", 3)
    with VtokReader(GOLDEN_V3) as old, VtokReader(GOLDEN_V4) as new:
        assert old.header == new.header and old.header.code_dtype == np.uint32
        pairs = list(zip(old.blocks(), new.blocks(), strict=True))
    assert len(pairs) == 3 and sum(a.codes.size for a, _ in pairs) > 200
    for a, b in pairs:
        assert np.array_equal(a.codes, b.codes) and a.codes.max() > 1 << 16  # the high bytes are there
        assert np.array_equal(a.run_mask, b.run_mask) and np.array_equal(a.tile_levels, b.tile_levels)


def test_byte_planes_round_trip_every_code_type():
    from vtok.format.chunks import codes_from_bytes, codes_to_bytes

    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.uint32):
        codes = rng.integers(0, np.iinfo(dtype).max, 37, endpoint=True).astype(dtype)
        for planes in (False, True):
            raw = b"xyz" + codes_to_bytes(codes, planes)
            assert np.array_equal(codes_from_bytes(raw, np.dtype(dtype), 37, 3, planes), codes)
        planar = codes_to_bytes(codes, True)
        assert planar[:37] == (codes & 0xFF).astype(np.uint8).tobytes()  # the lowest bytes come first
        assert codes_to_bytes(codes[:0], True) == b""


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
        assert r.header.grid == (3, 3) and r.header.blocks == 3 and r.header.tiles == (1, 1)
        assert r.audio() == b"not really matroska"
        got = list(r.blocks())
        states = list(r.states())
        assert r.block(2).missed_threshold and not r.block(0).missed_threshold
    assert [b.frames for b in got] == [4, 4, 1]
    assert [b.codes.size for b in got] == [9, 4, 1]  # tile levels 2, 1 (four positions of level <= 1), 0
    assert got[0].codes.dtype == np.dtype("<u2")
    # block 0 stores everything, in coarse-to-fine order
    assert np.array_equal(states[0].indices, blocks[0]["indices"]) and states[0].keep.all()
    # block 1: runs carry block 0's codes and keep; fresh positions keep up to level 1
    s1 = states[1]
    assert np.array_equal(s1.indices[1, :2], blocks[0]["indices"][1, :2]) and s1.keep[1, :2].all()
    fresh = got[1].fresh_keep()
    assert np.array_equal(s1.indices[fresh], blocks[1]["indices"][fresh])
    assert s1.keep.sum() == 2 + 4  # the two run positions, kept in block 0, and the four stored
    # block 2: only the level-0 position
    assert states[2].keep.sum() == 1 and states[2].indices[0, 0] == blocks[2]["indices"][0, 0]


def test_file_starts_with_magic_and_version(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = path.read_bytes()
    assert data[:8] == MAGIC and struct.unpack("<H", data[8:10])[0] == 2
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
    data[8:10] = struct.pack("<H", 5)
    path.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="version 5 is not supported"):
        read_all(path)
    for version in (3, 4):  # known versions, but the header is of the first layout: version 2
        data[8:10] = struct.pack("<H", version)
        path.write_bytes(bytes(data))
        with pytest.raises(ContainerError, match=f"version-{version} file holds a header of version 2"):
            read_all(path)
    fine = bytearray(GOLDEN_V4.read_bytes())
    fine[8:10] = struct.pack("<H", 2)  # and a fine layout's header in a version-2 file
    path.write_bytes(bytes(fine))
    with pytest.raises(ContainerError, match="version-2 file holds a header of version 3"):
        read_all(path)


def test_writer_refuses_a_keyframe_interval_longer_than_a_chunk(tmp_path):
    with pytest.raises(ContainerError, match="keyframe interval"):
        VtokWriter(tmp_path / "k.vtok", small_header(token_stride=4, levels=4, keyframe_interval=5000))


def test_writer_rejects_bad_blocks_and_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "a.vtok"
    h = small_header()
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros((2, 2), np.int64), frames=4)  # grid is 3x3
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.full((3, 3), 64000), frames=4)  # outside the codebook
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros((3, 3), np.int64), frames=4, tile_levels=np.array([[3]]))
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros((3, 3), np.int64), frames=4, run_mask=np.ones((3, 3), bool))  # block 0
    with pytest.raises(ValueError):
        with VtokWriter(path, h) as w:
            w.write_block(np.zeros((3, 3), np.int64), frames=4)
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
        "    states = list(f.states())\n"
        "assert len(states) == 3 and f.header.frames == 9\n"
        "assert 'torch' not in sys.modules and 'av' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_chunk_types_are_skipped(tmp_path):
    import zlib

    path = tmp_path / "a.vtok"
    write_small(path)
    data = path.read_bytes()
    index_at = struct.unpack("<Q", data[-16:-8])[0]
    payload = b"a later version's data"
    extra = struct.pack("<4sIQ", b"XTRA", zlib.crc32(payload, zlib.crc32(b"XTRA")), len(payload)) + payload
    grown = data[:index_at] + extra + data[index_at:-16] + struct.pack("<Q", index_at + len(extra)) + data[-8:]
    path.write_bytes(grown)
    with VtokReader(path) as r:
        assert len(list(r.blocks())) == 3 and r.audio() == b"not really matroska"
    damaged = bytearray(grown)
    damaged[index_at + 20] ^= 1  # inside the unknown chunk's payload: its checksum still catches it
    path.write_bytes(bytes(damaged))
    with pytest.raises(ContainerError):
        read_all(path)


def test_fine_layout_with_keyframes_round_trips_and_chunks_start_at_keyframes(tmp_path):
    h = small_header(width=70, height=40, frames=21, token_stride=4, levels=4, keyframe_interval=2)
    rows, cols = h.grid
    assert (rows, cols) == (10, 18) and h.tiles == (2, 3) and h.tokens_per_block == 180
    rng = np.random.default_rng(0)
    run = np.zeros((rows, cols), bool)
    run[:4, :4] = True
    path = tmp_path / "fine.vtok"
    written = []
    with VtokWriter(path, h, blocks_per_chunk=3) as w:  # rounded down to whole keyframe intervals: 2
        for b in range(h.blocks):
            if h.is_keyframe(b):
                with pytest.raises(ValueError, match="keyframe"):
                    w.write_block(np.zeros((rows, cols), np.int64), frames=4, run_mask=run)
            levels = rng.integers(0, 4, h.tiles)
            indices = rng.integers(0, 64000, (rows, cols))
            mask = None if h.is_keyframe(b) else run
            w.write_block(indices, frames=min(4, 21 - 4 * b), run_mask=mask, tile_levels=levels)
            written.append((indices, mask, levels))
        w.close()
    assert path.read_bytes()[8:10] == struct.pack("<H", 4)  # a layout other than the first: version 4
    with VtokReader(path) as r:
        assert r.header == h and r.header.keyframe_interval == 2
        assert all(int(e["first_block"]) % 2 == 0 for e in r._index)
        previous = None
        for block, (indices, mask, levels) in zip(r.blocks(), written, strict=True):
            assert (block.tile_levels == levels).all()
            stored = (mask is None or ~mask) & tile_keep(levels, rows, cols, 4)
            assert block.codes.size == int(stored.sum())
            previous = block.state(previous)
            assert (previous.indices[stored] == indices[stored]).all()


def test_first_layout_headers_keep_their_keys():
    raw = small_header().to_bytes()
    assert b"token_stride" not in raw and b"keyframe" not in raw
    fine = small_header(token_stride=4, levels=4, keyframe_interval=8)
    assert Header.from_bytes(fine.to_bytes()) == fine and b'"token_order":"levels-8x8"' in fine.to_bytes()
    assert small_header().version == 2 and fine.version == 3
    with pytest.raises(ContainerError, match="layout"):
        small_header(token_stride=4, levels=3).check()


def test_rotation_and_source_notes_are_written_only_when_they_say_something(tmp_path):
    plain = small_header().to_bytes()
    assert b"rotation" not in plain and b"source_notes" not in plain
    assert small_header(rotation=0, source_notes=()).to_bytes() == plain
    h = small_header(rotation=270, source_notes=("alpha channel dropped", "variable frame rate"))
    raw = h.to_bytes()
    assert raw.endswith(b',"rotation":270,"source_notes":["alpha channel dropped","variable frame rate"]}')
    assert Header.from_bytes(raw) == h and h.version == 2  # old readers ignore the keys they do not know
    assert Header.from_bytes(plain).rotation == 0 and Header.from_bytes(plain).source_notes == ()
    # the encoder learns both only at the end, from the frames: close() sets them
    path = tmp_path / "a.vtok"
    with VtokWriter(path, small_header(frames=0)) as w:
        w.write_block(np.zeros(h.grid, np.int64), frames=4)
        w.close(frames=4, rotation=90, source_notes=("note",))
    with VtokReader(path) as r:
        assert (r.header.frames, r.header.rotation, r.header.source_notes) == (4, 90, ("note",))


def test_bad_rotation_or_source_notes_are_refused():
    for changes in [
        dict(rotation=45),
        dict(rotation=-90),
        dict(source_notes=("x" * 401,)),
        dict(source_notes=("n",) * 17),
    ]:
        with pytest.raises(ContainerError):
            small_header(**changes).check()
    raw = small_header(source_notes=("a",)).to_bytes()
    for bad in (b'"source_notes":"a"', b'"source_notes":[1]'):
        with pytest.raises(ContainerError, match="malformed"):
            Header.from_bytes(raw.replace(b'"source_notes":["a"]', bad))
    with pytest.raises(ContainerError, match="rotation"):
        Header.from_bytes(small_header(rotation=90).to_bytes().replace(b'"rotation":90', b'"rotation":91'))


def test_a_with_block_finishes_the_file_and_an_exception_leaves_none(tmp_path):
    import vtok

    h = small_header(frames=4)
    grid = np.zeros(h.grid, np.int64)
    with vtok.open(tmp_path / "a.vtok", "w", header=h) as w:  # no close(): the with-exit finishes it
        w.write_block(grid, frames=4)
    with vtok.open(tmp_path / "a.vtok") as r:
        assert r.header.frames == 4 and [b.frames for b in r.blocks()] == [4]
    with pytest.raises(RuntimeError), vtok.open(tmp_path / "b.vtok", "w", header=h) as w:
        w.write_block(grid, frames=4)
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vtok"]


def test_verify_passes_good_files_of_both_layouts(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    with VtokReader(path) as r:
        assert r.verify() == 4  # two block chunks, the audio and the index
    for seed in sorted((Path(__file__).parent.parent / "fuzz" / "corpus").glob("*.vtok")):
        with VtokReader(seed) as r:
            assert r.verify() == r.chunks + (r.audio() is not None) + 1 + (b"XTRA" in seed.read_bytes()), seed


def _index(data: bytes) -> tuple[int, np.ndarray]:
    index_at = struct.unpack("<Q", data[-16:-8])[0]
    return index_at, np.frombuffer(data, _INDEX_ENTRY, count=struct.unpack_from("<I", data, index_at + 16)[0],
                                   offset=index_at + 20).copy()  # fmt: skip


def test_verify_names_the_block_chunk_whose_checksum_fails(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = bytearray(path.read_bytes())
    _, index = _index(bytes(data))
    at = int(index[1]["offset"])
    data[at + 16 + 5] ^= 0x10  # inside the payload of the second block chunk
    path.write_bytes(bytes(data))
    with VtokReader(path) as r:  # opening reads the index, not the blocks
        with pytest.raises(
            ContainerError, match=rf"checksum mismatch in BLKS chunk at {at} \(index entry 1, first block 2\)"
        ):
            r.verify()


def test_verify_catches_an_index_entry_that_points_elsewhere(tmp_path):
    import zlib

    path = tmp_path / "a.vtok"
    write_small(path)
    data = path.read_bytes()
    index_at, index = _index(data)
    real = int(index[0]["offset"])
    index[0]["offset"] = real + 16  # inside the chunk area, so opening accepts it (the last entry locates the audio)
    payload = struct.pack("<I", len(index)) + index.tobytes()
    chunk = struct.pack("<4sIQ", b"INDX", zlib.crc32(payload, zlib.crc32(b"INDX")), len(payload)) + payload
    path.write_bytes(data[:index_at] + chunk + data[index_at + len(chunk) :])
    with VtokReader(path) as r:
        with pytest.raises(
            ContainerError, match=rf"BLKS chunk at {real} is not where index entry 0 points \({real + 16}\)"
        ):
            r.verify()


def test_verify_checks_the_audio_that_opening_only_locates(tmp_path):
    path = tmp_path / "a.vtok"
    write_small(path)
    data = bytearray(path.read_bytes())
    index_at, _ = _index(bytes(data))
    data[index_at - 3] ^= 1  # the audio chunk's last byte
    path.write_bytes(bytes(data))
    with VtokReader(path) as r, pytest.raises(ContainerError, match="checksum mismatch in AUDI chunk"):
        r.verify()


def test_verify_decompresses_nothing(tmp_path, monkeypatch):
    import zstandard

    def refuse(*_, **__):
        raise AssertionError("verify must not decompress")

    path = tmp_path / "a.vtok"
    write_small(path)
    monkeypatch.setattr(zstandard, "ZstdDecompressor", refuse)
    with VtokReader(path) as r:
        assert r.verify() == 4
        with pytest.raises(AssertionError, match="must not decompress"):  # the patch does bite
            list(r.blocks())


def test_a_reader_reads_from_a_file_object_and_leaves_it_open(tmp_path):
    import io

    path = tmp_path / "a.vtok"
    write_small(path)
    stream = io.BytesIO(path.read_bytes())
    with VtokReader(stream) as r:
        assert r.header == small_header() and len(list(r.states())) == 3 and r.verify() == 4
    assert not stream.closed
    with pytest.raises(ContainerError, match="^stream: "):
        VtokReader(io.BytesIO(b"\x00" * 40))
    with open(path, "rb") as f, VtokReader(f) as r:
        assert r.audio() == b"not really matroska"

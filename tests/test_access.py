"""Random access to the tokens of a frame range (vtok.format.access): it equals a sequential read,
and it reads the chunks it needs, never from block 0."""

import functools
from fractions import Fraction

import numpy as np
import pytest
import torch

import vtok
from vtok.format import Header, VtokWriter
from vtok.media.video import VideoWriter
from vtok.model.architectures import ModelConfig
from vtok.model.tokenizer import Tokenizer
from vtok.train import TrainResult, export

FRAMES, BLOCKS_PER_CHUNK = 96, 4  # 24 blocks of 4 frames, in 6 chunks
CONTEXT = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)


def _source(path, frames=FRAMES, refresh=24):
    """A lossless 64x48 clip: a noise background redrawn every `refresh` frames (so runs end there),
    and a bright square that moves across it."""
    rng = np.random.default_rng(0)
    with VideoWriter(path, width=64, height=48, rate=Fraction(24), lossless=True) as out:
        for i in range(frames):
            if i % refresh == 0:
                background = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            frame = background.copy()
            x = 3 * i % 48
            frame[16:32, x : x + 16] = 255
            out.write(frame)
    return path


def _encode(tmp, name, model, monkeypatch, **kwargs):
    from vtok.codec import encode_file

    # small chunks, so that a short clip has several
    monkeypatch.setattr(
        "vtok.codec.encode.VtokWriter", functools.partial(VtokWriter, blocks_per_chunk=BLOCKS_PER_CHUNK)
    )
    out = tmp / f"{name}.vtok"
    encode_file(src=_source(tmp / f"{name}.mkv"), dst=out, model=model, device="cpu", **kwargs)
    return out


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """Three real encodes of the same clip: with keyframes every 2 blocks (a tiny model with context),
    the shipped model with keyframes (where its runs restart) every 4 blocks, and without keyframes
    (as files written before they existed: runs may reach back across chunks)."""
    tmp = tmp_path_factory.mktemp("access")
    torch.manual_seed(0)
    state = {k: v.detach() for k, v in Tokenizer(CONTEXT).state_dict().items()}
    export(TrainResult(0, 0, {}, state), name="tiny", config=CONTEXT, out_dir=tmp / "w", data=[])
    with pytest.MonkeyPatch.context() as mp:  # thresholds that give this clip a mix of budgets
        mp.setattr("vtok.codec.encode.KEYFRAME_INTERVAL", 2)
        mp.setattr("vtok.codec.encode.RUN_KEYFRAME_INTERVAL", 4)  # one chunk
        keyframes = _encode(tmp, "keyframes", f"{tmp / 'w'}#tiny", mp, threshold=0.6)
        restarts = _encode(tmp, "restarts", "vtok-fsq", mp, threshold=0.4)  # runs restart at keyframes
        mp.setattr("vtok.codec.encode.RUN_KEYFRAME_INTERVAL", 0)  # as files before keyframes without context
        plain = _encode(tmp, "plain", "vtok-fsq", mp, threshold=0.4)
    return {"keyframes": keyframes, "plain": plain, "restarts": restarts}


def _sequential(path):
    with vtok.open(path) as f:
        return f.header, list(f.blocks()), list(f.states())


def _chunk_of(block):
    return block // BLOCKS_PER_CHUNK


@pytest.mark.parametrize("kind", ["keyframes", "plain", "restarts"])
def test_random_reads_equal_a_sequential_read(encoded, kind):
    h, blocks, states = _sequential(encoded[kind])
    assert h.frames == FRAMES and h.blocks == 24
    assert any(b.run_mask.any() for b in blocks) and any((b.tile_levels < h.levels - 1).any() for b in blocks)
    rng = np.random.default_rng(1)
    ranges = [(0, FRAMES), (0, 1), (FRAMES - 1, FRAMES), (17, 18), (15, 33)]
    ranges += [tuple(sorted(rng.integers(0, FRAMES + 1, 2))) for _ in range(40)]
    with vtok.open(encoded[kind]) as f:  # one reader for all: its chunk cache must not change answers
        for a, b in ranges:
            w = f.tokens(int(a), int(b))
            first = a // h.block_frames
            assert (w.start, w.stop, w.first_block, w.offset) == (a, b, first, a - first * h.block_frames)
            assert len(w) == (-(-b // h.block_frames) - first if b > a else 0)
            for j in range(len(w)):
                block, state = blocks[first + j], states[first + j]
                assert np.array_equal(w.indices[j], state.indices) and np.array_equal(w.keep[j], state.keep)
                assert np.array_equal(w.run[j], block.run_mask)
                assert np.array_equal(w.tile_levels[j], block.tile_levels)
                assert w.frames[j] == block.frames and w.keyframes[j] == h.is_keyframe(block.index)
            assert w.indices.dtype == np.int64 and w.keep.dtype == bool and w.tile_levels.dtype == np.int8


@pytest.mark.parametrize(("kind", "interval"), [("keyframes", 2), ("restarts", 4)])
def test_a_file_with_keyframes_reads_only_the_chunks_a_range_overlaps(encoded, kind, interval):
    h = _sequential(encoded[kind])[0]
    assert h.keyframe_interval == interval
    for a in range(0, FRAMES, 3):
        b = min(a + 8, FRAMES)
        with vtok.open(encoded[kind]) as f:
            f.tokens(a, b)
            overlapped = _chunk_of((b - 1) // h.block_frames) - _chunk_of(a // h.block_frames) + 1
            assert f.chunks_read == overlapped, (a, b)


def test_a_file_without_keyframes_walks_back_only_as_far_as_its_runs(encoded):
    """Runs end where the clip's background was redrawn (every 6 blocks): a read reaches back at most
    to that block's chunk, and the last chunks never need chunk 0."""
    h, blocks, _ = _sequential(encoded["plain"])
    assert h.keyframe_interval == 0
    crossing = 0
    for first in range(h.blocks):
        start = first - first % 6  # where the runs of block `first` started
        assert not blocks[start].run_mask.any()
        with vtok.open(encoded["plain"]) as f:
            w = f[first * 4 : first * 4 + 4]
            assert w.first_block == first
            needed = _chunk_of(first) - _chunk_of(start) + 1 if blocks[first].run_mask.any() else 1
            assert f.chunks_read == needed, first
        crossing += needed > 1
    assert crossing, "no run crosses a chunk boundary: the test clip does not test the walk back"


def test_slices_follow_python_rules_and_bad_ranges_are_index_errors(encoded):
    with vtok.open(encoded["plain"]) as f:
        assert (f[-8:].start, f[-8:].stop) == (FRAMES - 8, FRAMES)
        assert (f[90:200].start, f[90:200].stop) == (90, FRAMES)
        assert len(f[10:10]) == 0 and f[10:5].indices.shape == (0, *f.header.grid)
        assert (f[-1].start, f[-1].stop) == (FRAMES - 1, FRAMES)
        with pytest.raises(IndexError):
            f[FRAMES]
        with pytest.raises(IndexError):
            f.tokens(0, FRAMES + 1)
        with pytest.raises(ValueError):
            f[0:8:2]
        with pytest.raises(TypeError):
            iter(f)


def test_sequence_lists_each_blocks_kept_codes_coarse_to_fine(encoded):
    from vtok.format.layout import prefix_order

    with vtok.open(encoded["plain"]) as f:
        w = f[8:24]
        rows, cols = f.header.grid
    tokens, lengths = w.sequence()
    assert lengths.tolist() == w.keep.sum((1, 2)).tolist() and len(tokens) == lengths.sum()
    order = prefix_order(rows, cols, w.levels)
    expected = [ind.reshape(-1)[order][keep.reshape(-1)[order]] for ind, keep in zip(w.indices, w.keep, strict=True)]
    assert np.array_equal(tokens, np.concatenate(expected))


def _synthetic(path, *, keyframe_interval, blocks=40, seed=0):
    """A file written directly, with runs of every length (some from block 0 to the end)."""
    rng = np.random.default_rng(seed)
    h = Header(model="t", model_sha256="0" * 64, model_config={}, quantizer={}, codebook_size=50, block_frames=2,
               width=40, height=24, frames=2 * blocks - 1, rate=Fraction(24), token_stride=4, levels=4,
               keyframe_interval=keyframe_interval)  # fmt: skip
    forever = np.zeros(h.grid, bool)
    forever[0, :3] = True  # these positions continue one run from block 0 on, where there are no keyframes
    with VtokWriter(path, h, blocks_per_chunk=4) as w:
        for i in range(blocks):
            run = np.zeros(h.grid, bool) if h.is_keyframe(i) else (rng.random(h.grid) < 0.7) | forever
            w.write_block(rng.integers(0, 50, h.grid), frames=h.block_length(i), run_mask=run,
                          tile_levels=rng.integers(0, 4, h.tiles))  # fmt: skip
    return path


@pytest.mark.parametrize("keyframe_interval", [0, 4])
def test_runs_of_every_length_resolve_as_a_sequential_read_does(tmp_path, keyframe_interval):
    path = _synthetic(tmp_path / "s.vtok", keyframe_interval=keyframe_interval)
    h, _, states = _sequential(path)
    for a in range(0, h.frames, 5):
        with vtok.open(path) as f:
            w = f[a : a + 7]
            if keyframe_interval:
                assert f.chunks_read <= 2  # a and a + 6 lie at most one chunk apart
        for j in range(len(w)):
            assert np.array_equal(w.indices[j], states[w.first_block + j].indices)
            assert np.array_equal(w.keep[j], states[w.first_block + j].keep)


def test_reads_that_go_on_from_the_last_one_do_not_walk_back(tmp_path):
    path = _synthetic(tmp_path / "s.vtok", keyframe_interval=0)  # runs from block 0 to the end
    h, _, states = _sequential(path)
    with vtok.open(path) as f:
        assert f[70:72].first_block == 35 and f.chunks_read == 9  # a random read walks back to block 0
    with vtok.open(path) as f:
        f[60:62]
        before = f.chunks_read
        assert f[70:72].first_block == 35 and f.chunks_read - before == 2  # back to block 30 only
    with vtok.open(path) as f:
        windows = [f[a : a + 8] for a in range(0, h.frames, 8)]  # 4 blocks a read, one chunk
        assert f.chunks_read == f.chunks
    for w in windows:
        for j in range(len(w)):
            assert np.array_equal(w.indices[j], states[w.first_block + j].indices)


def test_the_shipped_models_files_have_keyframes_where_runs_restart():
    from vtok.codec.encode import KEYFRAME_INTERVAL, RUN_KEYFRAME_INTERVAL, header_for
    from vtok.model.registry import load

    model = load("vtok-fsq", "cpu")
    h = header_for(model, width=64, height=48, rate=Fraction(24))
    assert h.keyframe_interval == RUN_KEYFRAME_INTERVAL > KEYFRAME_INTERVAL

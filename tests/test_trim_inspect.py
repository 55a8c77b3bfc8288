"""`vtok trim` honours --max-tokens in every block, a short last block included, or refuses in one
line; `vtok inspect` figures a short last block, a long flagged list and a 1x1 video truthfully.
The files are written directly (no model), except the 1x1 video, which is encoded."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, make_clip
from typer.testing import CliRunner

from vtok.cli.commands import app
from vtok.codec import trim_file
from vtok.errors import UsageError
from vtok.format import FLAG_MISSED_THRESHOLD, Header, VtokReader, VtokWriter

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def header(**changes) -> Header:
    """64x48 at stride 4: a grid of 12x16 positions, 2x2 tiles of 8x8, 192 tokens a block; 10 frames
    in blocks of 4, so the last block holds 2."""
    fields = dict(
        model="test-model", model_sha256="ab" * 32, model_config={"frames": 4},
        quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]}, codebook_size=64000, block_frames=4,
        width=64, height=48, frames=10, rate=Fraction(24), source="clip.mp4", source_duration_s=10 / 24,
        token_stride=4, levels=4,
    )  # fmt: skip
    fields.update(changes)
    return Header(**fields)


def write_full(path: Path, h: Header, runs: dict[int, np.ndarray] | None = None, flags: int = 0) -> Path:
    """Every block at the full budget, seeded codes; runs: block index -> run mask."""
    rng = np.random.default_rng(0)
    with VtokWriter(path, h) as w:
        for b in range(h.blocks):
            codes = rng.integers(0, h.codebook_size, h.grid)
            w.write_block(codes, frames=h.block_length(b), run_mask=(runs or {}).get(b), flags=flags)
    return path


def per_frame(path: Path) -> list[float]:
    """Tokens per frame of each block: its codes over the frames it holds."""
    with VtokReader(path) as r:
        return [b.codes.size / b.frames for b in r.blocks()]


@pytest.mark.parametrize("n", [2, 2.5, 5, 10, 47.5, 100])
def test_trim_honours_max_tokens_in_every_block_including_a_short_last_one(tmp_path, n):
    src = write_full(tmp_path / "full.vtok", header())
    dst = tmp_path / "trim.vtok"
    r = run("trim", src, "-o", dst, "--max-tokens", n)
    assert r.exit_code == 0, r.output
    got = per_frame(dst)
    assert len(got) == 3 and max(got) <= n, got  # the last block holds 2 frames: at most 2n tokens
    s = json.loads(run("inspect", dst, "--json").stdout)
    assert s["tokens_per_frame"]["max"] <= n


def test_trim_refuses_an_unreachable_budget_in_one_line_naming_the_least(tmp_path):
    h = header()
    run_mask = np.zeros(h.grid, bool)
    run_mask[:8, :8] = True  # block 1 continues a run over the whole first tile: 3 tiles store tokens
    src = write_full(tmp_path / "full.vtok", h, runs={1: run_mask})
    dst = tmp_path / "trim.vtok"
    for n in (0, 1, 1.99):
        r = run("trim", src, "-o", dst, "--max-tokens", n)
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.output
        # 4 tiles over the last block's 2 frames; 4 over 4 frames in block 0, 3 over 4 in block 1
        assert "at least 2 tokens per frame in this file (block 2, of 2 frames; 1 in its blocks of 4 frames)" in (
            r.stderr
        )
        assert "see --max-tokens" in r.stderr and not dst.exists()
    assert run("trim", src, "-o", dst, "--max-tokens", 2).exit_code == 0  # the least named is reachable
    got = per_frame(dst)
    assert max(got) <= 2 and got[-1] == 2.0, got


def test_trim_names_a_floor_that_a_rounded_figure_reaches(tmp_path):
    h = header(frames=11)  # the last block holds 3 frames: 4 tiles over 3 frames, 1.333... per frame
    src = write_full(tmp_path / "full.vtok", h)
    with pytest.raises(UsageError, match=r"at least 1\.34 tokens per frame"):
        trim_file(src=src, dst=tmp_path / "t.vtok", max_tokens_per_frame=1.3)
    trim_file(src=src, dst=tmp_path / "t.vtok", max_tokens_per_frame=1.34)
    assert max(per_frame(tmp_path / "t.vtok")) <= 1.34
    one = write_full(tmp_path / "one.vtok", header(frames=2))  # a single, short block
    with pytest.raises(UsageError, match=r"at least 2 tokens per frame in this file \(block 0, of 2 frames\)$"):
        trim_file(src=one, dst=tmp_path / "u.vtok", max_tokens_per_frame=1)


def test_trimmed_blocks_keep_the_original_codes_where_they_keep_positions(tmp_path):
    """So decoding the trimmed file is decoding the original's codes at the trimmed budget."""
    h = header(keyframe_interval=0)
    run_mask = np.zeros(h.grid, bool)
    run_mask[2:9, 3:12] = True
    src = write_full(tmp_path / "full.vtok", h, runs={1: run_mask, 2: run_mask})
    dst = tmp_path / "trim.vtok"
    trim_file(src=src, dst=dst, max_tokens_per_frame=6)
    with VtokReader(src) as a, VtokReader(dst) as b:
        for full, trimmed in zip(a.states(), b.states(), strict=True):
            assert not (trimmed.keep & ~full.keep).any() and trimmed.keep.sum() < full.keep.sum()
            assert (trimmed.indices[trimmed.keep] == full.indices[trimmed.keep]).all()


def test_inspect_gives_a_short_last_block_its_own_full_budget(tmp_path):
    src = write_full(tmp_path / "full.vtok", header())
    s = json.loads(run("inspect", src, "--json").stdout)
    tpf = s["tokens_per_frame"]
    assert s["tokens_per_frame_by_block"] == [48.0, 48.0, 96.0]  # 192 tokens over 4, 4 and 2 frames
    assert (tpf["full_budget"], tpf["full_budget_last_block"], tpf["max"]) == (48.0, 96.0, 96.0)
    text = run("inspect", src).stdout
    assert "per frame  ███ (full budget 48; 96 in the last block, of 2 frames)" in text


def test_inspect_lists_20_flagged_blocks_and_says_how_many_more(tmp_path):
    src = write_full(tmp_path / "flagged.vtok", header(frames=100), flags=FLAG_MISSED_THRESHOLD)
    text = run("inspect", src).stdout
    listed = ", ".join(str(b) for b in range(20))
    assert f"flagged    25 blocks miss the threshold even at the full budget: {listed} … and 5 more\n" in text
    assert json.loads(run("inspect", src, "--json").stdout)["flagged_blocks"] == list(range(25))


@pytest.mark.parametrize("version", [2, 3, 4])
def test_inspect_says_which_format_version_a_file_is(version):
    src = DATA / f"golden_v{version}.vtok"
    assert json.loads(run("inspect", src, "--json").stdout)["format_version"] == version
    assert f"(format version {version}, " in run("inspect", src).stdout


def test_inspect_of_a_1x1_video_shows_its_real_full_budget(tmp_path):
    src = make_clip(tmp_path / "dot.mkv", width=1, height=1, frames=6, codec="ffv1", pix_fmt="yuv444p")
    vt = tmp_path / "dot.vtok"
    assert run("encode", src, "-o", vt, "--device", "cpu").exit_code == 0
    s = json.loads(run("inspect", vt, "--json").stdout)
    assert s["grid"] == [1, 1] and s["tokens_per_frame"]["full_budget"] == 0.25  # one token for 4 frames
    text = run("inspect", vt).stdout
    assert "(full budget 0.25; 0.5 in the last block, of 2 frames)" in text
    assert f"{s['compression_ratio']:.2g}:1 against raw RGB" in text  # under 1:1, yet not "0:1"

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vtok.bench.runner import Run, bd_rate, elastic_gain, ssim
from vtok.cli.commands import app


def test_ssim_and_bd_rate_basics():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 32)
    a = np.broadcast_to((ramp[:, None] + ramp[None, :]) / 2, (2, 3, 32, 32)).transpose(0, 2, 3, 1).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < 0.9
    anchor = [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0), (0.8, 39.0)]
    half = [(r / 2, p) for r, p in anchor]
    assert bd_rate(anchor, half) == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(anchor, [(r, p + 20) for r, p in anchor]) is None  # no overlap
    near_twins = half + [(0.4001, 39.0001), (0.41, 39.001)]  # elastic settings that all hit the full budget
    assert bd_rate(anchor, near_twins) == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(anchor, [(0.05, 30.0), (0.06, 30.005)]) is None  # one distinct point


def test_elastic_gain_compares_clip_by_clip_at_equal_tokens():
    def run(clip, setting, tokens, psnr):
        return Run(clip, "m", setting, 0.01, psnr, 0.5, tokens, 1.0, 1.0)

    runs = []
    for clip, base, step in (("easy", 30.0, 0.0), ("hard", 20.0, 1.0)):
        runs += [run(clip, f"fixed={s}%", 2.56 * s, base + s / 25) for s in (25, 50, 75)]
        runs += [run(clip, "full", 256, base + 4)]
        elastic = [(64, base + 2 - step), (128, base + 3 - step), (192, base + 4 - step)]
        runs += [run(clip, f"T={i}", t, p) for i, (t, p) in enumerate(elastic)]
    gain, clips, ahead = elastic_gain(runs, "m")
    assert clips == 2 and ahead == 1 and gain == pytest.approx((1.0 + 0.0) / 2, abs=0.01)
    assert elastic_gain(runs, "other") == (None, 0, 0)


def test_bench_on_a_tiny_clip_writes_results_and_resumes(clip, tmp_path):
    out = tmp_path / "bench"
    args = [
        "bench",
        str(clip),
        "-o",
        str(out),
        "--frames",
        "8",
        "--size",
        "64",
        "--thresholds",
        "0.01",
        "--codecs",
        "libx264",
        "--models",
        "vtok-fsq",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert {(x["codec"], x["setting"]) for x in runs} == {
        ("vtok-fsq", "T=0.01"),
        ("vtok-fsq", "full"),
        *{("vtok-fsq", f"fixed={share}%") for share in (25, 50, 75)},
        *{("libx264", f"crf={c}") for c in (23, 30, 37, 44, 51)},
    }
    for x in runs:
        assert x["bits_per_pixel"] > 0 and 5 < x["psnr_db"] < 80 and 0 < x["ssim"] <= 1
    tokens = {x["setting"]: x["tokens_per_frame"] for x in runs if x["codec"] == "vtok-fsq"}
    assert tokens["fixed=25%"] < tokens["fixed=75%"] <= tokens["full"]
    pngs = ("psnr_vs_bpp.png", "psnr_vs_bpp_per_clip.png", "psnr_vs_tokens.png", "psnr_vs_tokens_per_clip.png")
    for name in ("results.csv", *pngs):
        assert (out / name).stat().st_size > 0
    again = CliRunner().invoke(app, args)  # resumable: nothing new is measured
    assert again.exit_code == 0 and json.loads((out / "results.json").read_text())["runs"] == runs
    assert "BD-rate" in r.stdout


def test_bench_rejects_unknown_codec(clip, tmp_path):
    r = CliRunner().invoke(app, ["bench", str(clip), "-o", str(tmp_path), "--codecs", "libnope"])
    assert r.exit_code == 1 and "unknown codec" in r.stderr
    for bad in ("abc", "0,0.01"):
        r = CliRunner().invoke(app, ["bench", str(clip), "-o", str(tmp_path), "--thresholds", bad])
        assert r.exit_code == 1 and "--thresholds" in r.stderr and "Traceback" not in r.output


@pytest.mark.slow
def test_full_bench_on_the_test_clips(tmp_path):
    from pathlib import Path

    clips = Path(__file__).parents[2] / "shared" / "data" / "videos" / "test"
    if not clips.is_dir():
        pytest.skip("no ../shared/data/videos/test here")
    r = CliRunner().invoke(app, ["bench", str(clips), "-o", str(tmp_path), "--frames", "64"])
    assert r.exit_code == 0, r.output

import json
from dataclasses import asdict
from fractions import Fraction

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vtok.bench import CLASSICAL, Classical, Run, bd_rate, elastic_gain, run_bench, summary
from vtok.bench.report import read_results
from vtok.cli.commands import app
from vtok.errors import UsageError
from vtok.metrics import ssim


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


def test_summary_means_and_medians_per_codec_and_setting():
    def run(clip, codec, setting, bpp, psnr, ssim, tokens, enc, dec):
        return Run(clip, codec, setting, bpp, psnr, ssim, tokens, enc, dec)

    runs = [
        run("a", "vtok-fsq", "T=0.01", 0.1, 30.0, 0.8, 100.0, 10.0, 20.0),
        run("b", "vtok-fsq", "T=0.01", 0.3, 34.0, 0.9, 300.0, 30.0, 40.0),
        run("c", "vtok-fsq", "T=0.01", 0.2, 35.0, 1.0, 200.0, 90.0, 60.0),
        run("a", "libx264", "crf=30", 0.05, 28.0, 0.7, None, 200.0, 500.0),
        run("b", "libx264", "crf=30", 0.15, 32.0, 0.9, None, 400.0, 700.0),
        run("a", "libx264", "crf=23", 0.4, 40.0, 0.95, None, 100.0, 300.0),
    ]
    rows = summary(runs)
    assert [(r["codec"], r["setting"]) for r in rows] == [
        ("libx264", "crf=23"),
        ("libx264", "crf=30"),
        ("vtok-fsq", "T=0.01"),
    ]
    x264, vtok = rows[1], rows[2]
    assert x264["bits_per_pixel"] == pytest.approx(0.1) and x264["psnr_db"] == pytest.approx(30.0)
    assert x264["ssim"] == pytest.approx(0.8) and x264["tokens_per_frame"] is None
    assert (x264["encode_fps"], x264["decode_fps"]) == (300.0, 600.0)  # median of two: their mean
    assert vtok["bits_per_pixel"] == pytest.approx(0.2) and vtok["psnr_db"] == pytest.approx(33.0)
    assert vtok["ssim"] == pytest.approx(0.9) and vtok["tokens_per_frame"] == pytest.approx(200.0)
    assert (vtok["encode_fps"], vtok["decode_fps"]) == (30.0, 40.0)  # medians, not the means 43.3 and 40


def test_classical_codec_writes_through_video_writer(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 48, 64, 3), dtype=np.uint8)
    for codec in (CLASSICAL["libx264"], Classical("libx264", (30,), container="matroska")):
        path = tmp_path / f"x{codec.suffix}"
        codec.encode(frames, Fraction(25), 30, path)
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 64, 48)
            assert stream.codec_context.pix_fmt == "yuv420p" and stream.average_rate == 25
            assert c.format.name.split(",")[0] == ("mov" if codec.suffix == ".mp4" else "matroska")
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
        assert len(decoded) == 7 and decoded[0].shape == (48, 64, 3)
        assert codec.decode(path).shape == frames.shape


def test_run_bench_rejects_bad_arguments_by_keyword(clip, tmp_path):
    common = dict(clips=[clip], out_dir=tmp_path, models=[], frames=2, size=32)
    with pytest.raises(UsageError) as e:
        run_bench(thresholds=[0.01, 0.0], codecs=[], **common)
    assert e.value.option == "thresholds" and "--" not in str(e.value)
    with pytest.raises(UsageError) as e:
        run_bench(thresholds=[0.01], codecs=["libnope"], **common)
    assert e.value.option == "codecs" and "--" not in str(e.value)
    assert not (tmp_path / "results.json").exists()


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
    assert [asdict(r) for r in read_results(out)] == runs
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert csv_rows[0] == ",".join(runs[0]) and len(csv_rows) == 1 + len(runs)
    assert not list(out.glob(".*part*"))  # atomic writes leave no temporary files behind
    again = CliRunner().invoke(app, args)  # resumable: nothing new is measured
    assert again.exit_code == 0 and json.loads((out / "results.json").read_text())["runs"] == runs
    assert "BD-rate" in r.stdout


def test_bench_rejects_unknown_codec(clip, tmp_path):
    r = CliRunner().invoke(app, ["bench", str(clip), "-o", str(tmp_path), "--codecs", "libnope"])
    assert r.exit_code == 2 and "unknown codec" in r.stderr
    for bad in ("abc", "0,0.01"):
        r = CliRunner().invoke(app, ["bench", str(clip), "-o", str(tmp_path), "--thresholds", bad])
        assert r.exit_code == 2 and "--thresholds" in r.stderr and "Traceback" not in r.output


@pytest.mark.slow
def test_full_bench_on_the_test_clips(tmp_path):
    from pathlib import Path

    clips = Path(__file__).parents[2] / "shared" / "data" / "videos" / "test"
    if not clips.is_dir():
        pytest.skip("no ../shared/data/videos/test here")
    r = CliRunner().invoke(app, ["bench", str(clips), "-o", str(tmp_path), "--frames", "64"])
    assert r.exit_code == 0, r.output

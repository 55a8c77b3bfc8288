"""The GPU training kit's dry run: the same script, on the CPU, with tiny sizes."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, load_script

from vtok.model.registry import resolve
from vtok.train import WindowSampler
from vtok.train.data import _decode_all, build_cache


def _dry_run_env(tmp_path: Path, out: Path, **settings: str) -> dict[str, str]:
    """The environment of a kit's CPU dry run: this Python, one thread, a cache and $OUT in tmp_path."""
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "OUT": str(out),
        "OMP_NUM_THREADS": "1",
        "CACHE": str(tmp_path / "cache"),
        **settings,
    }


def test_gpu_train_script_dry_run_writes_weights_and_log(clip, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clip, data)
    out = tmp_path / "out"
    env = _dry_run_env(tmp_path, out, DATA=str(data), BATCH="2", CROP="64", MINUTES="0.02", LOSS="log-mse",
                       RESUME=str(resolve("vtok-fsq").path))  # fmt: skip
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_train.sh"), "run"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gpu_train: torch" in r.stdout and (out / "train.log").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / manifest["models"]["vtok-fsq"]["file"]).exists()
    assert not (out / "vtok-fsq.checkpoint.safetensors").exists()


def test_gpu_train_script_checks_its_prerequisites_first(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(tmp_path / "none")}
    env["OUT"] = str(tmp_path / "out")
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_train.sh"), "run"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "no training data" in r.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"CROP": "100"}, "gpu_train: CROP: crop 100 is not"), ({"LOSS": "l1"}, "gpu_train: LOSS: unknown loss 'l1'")],
)
def test_gpu_train_script_checks_its_settings_first(clip, tmp_path, setting, message):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(clip.parent)}
    env |= {"OUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1", **setting}
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_train.sh"), "run"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr
    assert not (tmp_path / "out").exists()


def test_windows_cut_on_a_torch_device_match_the_numpy_ones(clip, tmp_path):
    videos, images = build_cache([clip], tmp_path)
    a = WindowSampler(videos, images, frames=4, size=64, seed=3).batch(5)
    b = WindowSampler(videos, images, frames=4, size=64, seed=3, device="cpu").batch(5)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.uint8
    assert np.array_equal(a, b.numpy())


def test_opencv_decodes_the_frames_pyav_does(clip):
    pytest.importorskip("cv2")
    from vtok.train.data import _decode_all_opencv

    a, b = _decode_all(clip), _decode_all_opencv(clip)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def _gpu_run(tmp_path: Path, **settings: str) -> tuple[subprocess.CompletedProcess, Path]:
    """benchmarks/gpu_run.sh run on the CPU with tiny sizes; (the finished process, $OUT)."""
    out = tmp_path / "out"
    tiny = {"SPEED_SIZES": "64 72x128", "SPEED_FRAMES": "8", "SPEED_REPEAT": "1", "TRAIN_OVERHEAD": "30"}
    env = _dry_run_env(tmp_path, out, **(tiny | settings))  # a test's settings win
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_run.sh"), "run"], env=env, capture_output=True, text=True)
    return r, out


def test_gpu_run_dry_run_records_every_step_and_figure(clip, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clip, data)
    r, out = _gpu_run(
        tmp_path, DATA=str(data), SPEED_CLIP=str(clip), BATCH="2", CROP="64", MINUTES="0.02",
        RESUME=str(resolve("vtok-fsq").path),
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((out / "gpu.json").read_text())
    keys = {"started", "seconds", "device", "versions", "problems", "notes", "settings", "steps", "wheels"}
    assert keys <= summary.keys()
    assert {"python", "torch", "cupy", "numpy", "zstandard", "pytest"} <= summary["versions"].keys()
    assert summary["problems"] == summary["notes"] == [] and summary["device"]["asked"] == "cpu"
    steps = summary["steps"]
    assert steps.keys() == {"pytest", "kernels", "speed", "train"}
    assert steps["pytest"]["status"] == steps["kernels"]["status"] == "skipped: no CUDA"
    assert steps["speed"]["status"] == "ok" and steps["train"]["status"] == "ok", steps
    runs = steps["speed"]["result"]["runs"]
    assert {(r["size"], r["threshold"], r["precision"]) for r in runs} == {
        (s, t, p) for s in ("64", "72x128") for t in (0.0, 0.003) for p in ("fp32", "bf16")
    }
    assert all(r["encode_fps"] > 0 and r["decode_fps"] > 0 and r["psnr_db"] > 20 for r in runs)
    assert all("safe" in r["vs_fp32"] for r in runs if r["precision"] == "bf16")
    assert steps["speed"]["result"]["source"] == clip.name
    assert steps["train"]["minutes"] == 0.02 and steps["train"]["result"]["steps"] > 0
    assert "psnr_db" in str(steps["train"]["result"]["metrics"])
    # what the device tool brings back: at most 8 files, none deeper than two folders
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in files), files
    assert {"gpu.json", "gpu_run.log", "train.log", "manifest.json", "vtok-fsq.safetensors"} <= {p.name for p in files}
    assert "| speed | ok |" in r.stdout


def test_gpu_run_records_a_failing_step_and_goes_on(tmp_path):
    r, out = _gpu_run(tmp_path, STEPS="speed kernels", SPEED_FRAMES="0", SPEED_CLIP="nothing.mp4")
    assert r.returncode == 1, r.stdout + r.stderr
    summary = json.loads((out / "gpu.json").read_text())
    assert "no nothing.mp4: the speed step codes a synthetic pattern" in summary["notes"]
    steps = summary["steps"]
    assert steps["speed"]["status"].startswith("failed (exit 2): ") and "--frames" in steps["speed"]["status"]
    assert steps["kernels"]["status"] == "skipped: no CUDA"
    assert steps["pytest"]["status"] == steps["train"]["status"] == "skipped: not in STEPS"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_run_checks_its_prerequisites_first(tmp_path):
    r, out = _gpu_run(tmp_path, DEVICE="cuda")
    assert r.returncode == 2 and "gpu_run: DEVICE=cuda, but CUDA is not available" in r.stderr
    summary = json.loads((out / "gpu.json").read_text())
    assert summary["problems"]
    assert {s["status"] for s in summary["steps"].values()} == {"skipped: prerequisites missing"}


def test_a_step_past_its_limit_is_stopped_with_its_children(tmp_path):
    gpu_run = load_script(ROOT / "benchmarks" / "gpu_run.py")
    run = gpu_run.Run.from_env({"OUT": str(tmp_path)})
    marker = tmp_path / "late"
    step = gpu_run.run_step(run, "slow", ["bash", "-c", f"(sleep 3; touch {marker}) & sleep 30"], timeout=1)
    assert step["status"] == "timeout after 1 s" and step["seconds"] < 10
    time.sleep(3.5)
    assert not marker.exists()  # the background child went with its parent

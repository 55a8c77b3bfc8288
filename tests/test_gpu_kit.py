"""The GPU training kit's dry run: the same script, on the CPU, with tiny sizes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vtok.model.registry import resolve
from vtok.train import WindowSampler
from vtok.train.data import _decode_all, build_cache

ROOT = Path(__file__).parent.parent


def test_gpu_train_script_dry_run_writes_weights_and_log(clip, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clip, data)
    out = tmp_path / "out"
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "DATA": str(data),
        "BATCH": "2",
        "CROP": "64",
        "MINUTES": "0.02",
        "CACHE": str(tmp_path / "cache"),
        "OUT": str(out),
        "OMP_NUM_THREADS": "1",
        "RESUME": str(resolve("vtok-fsq").path),
    }
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


def test_gpu_train_script_checks_its_settings_first(clip, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(clip.parent)}
    env |= {"OUT": str(tmp_path / "out"), "CROP": "100", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_train.sh"), "run"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "gpu_train: CROP: crop 100 is not" in r.stderr
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

"""A real install: `pip install .` (not editable) into a fresh venv outside the repository.

The models must ship inside the package, and the main job must work without the optional extras
(matplotlib, huggingface-hub). Takes about a minute: pip installs torch from its wheel cache and
the other dependencies from the package index.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


def _run(args: list, cwd: Path) -> str:
    p = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"{args}: {p.stderr[-2000:]}"
    return p.stdout


def test_a_non_editable_install_ships_the_models_and_encodes(tmp_path, clip):
    import torch

    source = tmp_path / "source"  # a copy, so pip's build leaves nothing in the repository
    ignore = shutil.ignore_patterns(".git", "runs", "build", "*.egg-info", "__pycache__", ".gpu-data", ".whl", "dog.*")
    shutil.copytree(ROOT, source, ignore=ignore)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    bin_ = venv / "bin"
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"  # the CPU wheel already on this machine
    _run([bin_ / "pip", "install", "-q", torch_pin, source], tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([bin_ / "python", "-c", "import vtok; print(vtok.__file__)"], work)
    assert str(venv) in where, where
    assert "vtok-fsq" in _run([bin_ / "vtok", "models", "--json"], work)
    _run([bin_ / "vtok", "encode", clip, "-o", work / "a.vtok", "--device", "cpu"], work)
    _run([bin_ / "vtok", "decode", work / "a.vtok", "-o", work / "a.mp4", "--device", "cpu"], work)
    assert (work / "a.mp4").stat().st_size > 0
    missing = _run([bin_ / "python", "-c", "import importlib.util as u; print(u.find_spec('matplotlib'))"], work)
    assert missing.strip() == "None"  # the extras stayed optional

"""benchmarks/mean_weights.py: the mean of runs' weights, as the shipped vtok-fsq is made."""

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, load_script
from safetensors.torch import load_file, save_file

from vtok.files import sha256_of


def mean_weights():
    return load_script(ROOT / "benchmarks" / "mean_weights.py")


def make_run(folder: Path, value: float, config: dict) -> None:
    folder.mkdir()
    weights = folder / "m.safetensors"
    save_file({"w": torch.full((2, 3), value, dtype=torch.float16), "n": torch.tensor([3])}, str(weights))
    entry = {"file": weights.name, "sha256": sha256_of(weights), "config": config, "training": {"steps": int(value)}}
    (folder / "manifest.json").write_text(json.dumps({"models": {"m": entry}}))


def test_the_mean_of_two_runs_keeps_their_dtypes_and_names_both(tmp_path):
    make_run(tmp_path / "a", 1.0, {"width": 8})
    make_run(tmp_path / "b", 4.0, {"width": 8})
    assert mean_weights().main([str(tmp_path / "out"), str(tmp_path / "a"), str(tmp_path / "b"), "--model", "m"]) == 0
    mean = load_file(str(tmp_path / "out" / "m.safetensors"))
    assert mean["w"].dtype == torch.float16 and torch.equal(mean["w"], torch.full((2, 3), 2.5, dtype=torch.float16))
    assert torch.equal(mean["n"], torch.tensor([3]))
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["models"]["m"]
    assert entry["config"] == {"width": 8} and [r["steps"] for r in entry["training"]["runs"]] == [1, 4]


def test_runs_of_different_configs_are_refused(tmp_path):
    make_run(tmp_path / "a", 1.0, {"width": 8})
    make_run(tmp_path / "b", 4.0, {"width": 16})
    with pytest.raises(SystemExit, match="different configs"):
        mean_weights().main([str(tmp_path / "out"), str(tmp_path / "a"), str(tmp_path / "b"), "--model", "m"])
    assert not (tmp_path / "out").exists()


def _replace_weights(run: Path) -> None:
    save_file({"w": torch.zeros((2, 3), dtype=torch.float16), "n": torch.tensor([3])}, str(run / "m.safetensors"))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (_replace_weights, "does not match its manifest sha256"),
        (lambda run: (run / "m.safetensors").unlink(), "is missing"),
        (lambda run: (run / "manifest.json").unlink(), "no manifest.json entry for m"),
    ],
    ids=["other weights", "no weights", "no manifest"],
)
def test_a_run_without_its_verified_weights_is_refused(tmp_path, spoil, message):
    make_run(tmp_path / "a", 1.0, {"width": 8})
    make_run(tmp_path / "b", 4.0, {"width": 8})
    spoil(tmp_path / "b")
    with pytest.raises(SystemExit, match=message):
        mean_weights().main([str(tmp_path / "out"), str(tmp_path / "a"), str(tmp_path / "b"), "--model", "m"])
    assert not (tmp_path / "out").exists()

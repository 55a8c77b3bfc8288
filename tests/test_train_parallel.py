"""Several processes training one model (vtok.train.parallel): averaged gradients, one run, named failures."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from vtok.errors import UsageError, VtokError
from vtok.train import TrainConfig, run_training
from vtok.train.parallel import Group, config_from_json, config_to_json, worker_processes

RANK_1 = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from vtok.train.parallel import Group
    group = Group(1, 2, Path(sys.argv[1]))
    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, 1.0); torch.nn.init.constant_(model.bias, 1.0)
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    group.average_gradients(model)
    assert all(torch.equal(p.grad, torch.full_like(p, 2.0)) for p in model.parameters())
    group.check_in_sync(model)
    group.close()
    """
)


def test_ranks_average_their_gradients_and_check_their_weights_agree(tmp_path):
    store = tmp_path / "store"
    other = subprocess.Popen([sys.executable, "-c", RANK_1, str(store)])
    group = Group(0, 2, store)
    try:
        model = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(model.weight, 1.0)
        torch.nn.init.constant_(model.bias, 1.0)
        for p in model.parameters():
            p.grad = torch.full_like(p, 1.0)
        group.average_gradients(model)
        assert all(torch.equal(p.grad, torch.full_like(p, 2.0)) for p in model.parameters())  # (1 + 3) / 2
        group.check_in_sync(model)
    finally:
        group.close()
    assert other.wait(timeout=60) == 0


def test_two_workers_train_one_model_on_more_windows(clip, tmp_path):
    common = dict(model="vtok-fsq-s8", steps=3, batch=2, crop=32, cache=tmp_path / "cache")
    logs = []
    two = run_training([clip], TrainConfig(**common, out_dir=tmp_path / "two", workers=2), log=logs.append)
    one = run_training([clip], TrainConfig(**common, out_dir=tmp_path / "one"), log=print)
    assert "training vtok-fsq-s8 on windows of 4 frames, 32x32, on cpu, 2 workers" in logs
    assert two["training"]["workers"] == 2 and one["training"]["workers"] == 1
    assert two["training"]["steps"] == one["training"]["steps"] == 3
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["models"]["vtok-fsq-s8"] == two
    a, b = load_file(str(tmp_path / "two" / two["file"])), load_file(str(tmp_path / "one" / one["file"]))
    # the same seed and first windows: only the second worker's gradients can set them apart
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_worker_is_named_and_stops_the_run(tmp_path, capfd):
    config = TrainConfig(model="vtok-fsq-s8", workers=2, cache=tmp_path / "cache")
    with pytest.raises(VtokError, match="training worker 1 failed"):
        with worker_processes([tmp_path / "missing"], config) as group:  # the worker finds no footage
            group.agree(0.5)
    assert "vtok: training worker 1: MediaError: no videos or images found" in capfd.readouterr().err


def test_several_workers_are_for_the_cpu_and_fresh_windows(clip, tmp_path):
    saved = tmp_path / "windows.safetensors"
    saved.write_bytes(b"")  # refused before it is read
    with pytest.raises(UsageError, match="several workers") as e:
        run_training([saved], TrainConfig(model="vtok-fsq-s8", out_dir=tmp_path / "out", workers=2))
    assert e.value.option == "workers" and not (tmp_path / "out").exists()


def test_a_config_survives_its_trip_to_a_worker(tmp_path):
    config = TrainConfig(model="vtok-lfq", out_dir=tmp_path, resume=tmp_path / "a.safetensors", workers=3, lr=3e-4)
    assert config_from_json(config_to_json(config)) == config

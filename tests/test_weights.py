import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vtok import ModelError
from vtok.model.registry import builtin_dir, list_models, load_model, resolve


def hub_layout(folder):
    """Copy the built-in default model into `folder` as a hub repository holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = resolve("vtok-fsq")
    shutil.copy(entry.path, folder / entry.path.name)
    manifest = json.loads((builtin_dir() / "manifest.json").read_text())
    manifest["models"] = {"vtok-fsq": manifest["models"]["vtok-fsq"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_builtin_default_loads_strictly_and_round_trips():
    entry = resolve("vtok-fsq")
    assert entry.origin == "builtin" and len(entry.sha256) == 64
    model = load_model(entry)
    x = torch.rand(1, 3, 4, 16, 24) * 2 - 1
    indices = model.encode(x)
    s = model.config.stride
    assert indices.shape == (1, 16 // s, 24 // s) and indices.max() < model.codebook_size
    assert model.decode(indices).shape == x.shape
    assert "vtok-fsq" in [e.name for e in list_models()]


def test_local_folder_laid_out_as_a_hub_repo(tmp_path):
    folder = hub_layout(tmp_path / "repo")
    entry = resolve(str(folder))
    assert entry.name == "vtok-fsq" and entry.origin == str(folder)
    assert resolve(f"{folder}#vtok-fsq").sha256 == entry.sha256
    load_model(entry)


def test_hf_spec_uses_the_hub_cache_offline(tmp_path, monkeypatch):
    # A cache as huggingface-hub lays it out: refs/main names the snapshot folder.
    repo = tmp_path / "cache" / "models--someone--vtok-weights"
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub_layout(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)  # it reads the environment at import
    try:
        entry = resolve("hf:someone/vtok-weights")
        assert entry.origin == "hf:someone/vtok-weights@main"
        load_model(entry)
        with pytest.raises(ModelError, match="cannot fetch"):
            resolve("hf:someone/not-cached")
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)


def test_sha256_mismatch_is_refused(tmp_path):
    folder = hub_layout(tmp_path / "repo")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["models"]["vtok-fsq"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="sha256"):
        load_model(resolve(str(folder)))


def test_loading_is_strict(tmp_path):
    folder = hub_layout(tmp_path / "repo")
    path = folder / "vtok-fsq.safetensors"
    state = load_file(str(path))
    state.pop(next(iter(state)))
    save_file(state, str(path))
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib

    manifest["models"]["vtok-fsq"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="do not fit"):
        load_model(resolve(str(folder)))


def test_unknown_models(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        resolve("vtok-nope")
    with pytest.raises(ModelError, match="no manifest"):
        resolve(str(tmp_path))

import numpy as np
import pytest
import torch

from vtok.model import ModelConfig
from vtok.train import _MaskSampler, export, train_model

TINY = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1)


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 1, 32, 32, 3), dtype=np.uint8)
    return np.repeat(base, 4, axis=1)


def test_training_lowers_the_loss_and_resumes_from_a_checkpoint(windows, tmp_path):
    ckpt = tmp_path / "tiny.checkpoint.safetensors"
    logs = []
    first = train_model(windows, config=TINY, steps=6, minutes=5, batch=4, crop=32, checkpoint=ckpt, log=logs.append)
    assert first.steps == 6 and ckpt.exists()
    from safetensors.torch import load_file

    state = load_file(str(ckpt))
    assert state["progress.step"].item() == 6
    assert any(k.startswith("optimizer.exp_avg.") for k in state)
    second = train_model(
        windows, config=TINY, steps=9, minutes=5, batch=4, crop=32, init=state, checkpoint=ckpt, log=logs.append
    )
    assert second.steps == 9
    assert any("resuming at step 6" in line for line in logs)
    entry = export(second, name="tiny", config=TINY, out_dir=tmp_path, data=["random"])
    assert set(entry["metrics"]) == {
        "heldout_windows_psnr_db",
        "heldout_windows_psnr_25pct_db",
        "heldout_windows_perplexity",
    }
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "tiny.safetensors").exists()


def test_mask_sampler_mixes_full_prefix_and_tile_masks():
    sampler = _MaskSampler(14, 14, "cpu")
    keep = sampler(300, torch.Generator().manual_seed(0))
    kept = keep.float().mean((1, 2))
    assert keep.shape == (300, 14, 14)
    assert (kept == 1).float().mean() > 0.25  # full budget about a third of the time
    assert kept.min() >= (196 // 16) / 196 - 1e-6 and (kept < 0.5).any()  # at least 1/16 of the tokens

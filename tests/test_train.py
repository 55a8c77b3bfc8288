import numpy as np
import pytest
import torch

from vtok.errors import VtokError
from vtok.model.tokenizer import ModelConfig
from vtok.train.data import WindowSampler, build_cache
from vtok.train.loop import FixedWindows, _MaskSampler, export, train_model

TINY = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1)
TINY_CONTEXT = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 1, 32, 32, 3), dtype=np.uint8)
    return np.repeat(base, 4, axis=1)


def test_training_lowers_the_loss_and_resumes_from_a_checkpoint(windows, tmp_path):
    ckpt = tmp_path / "tiny.checkpoint.safetensors"
    logs = []
    sampler = FixedWindows(windows, size=32)
    first = train_model(sampler, config=TINY, steps=6, minutes=5, batch=4, checkpoint=ckpt, log=logs.append)
    assert first.steps == 6 and ckpt.exists()
    from safetensors.torch import load_file

    state = load_file(str(ckpt))
    assert state["progress.step"].item() == 6
    assert any(k.startswith("optimizer.exp_avg.") for k in state)
    second = train_model(
        sampler, config=TINY, steps=9, minutes=5, batch=4, init=state, checkpoint=ckpt, log=logs.append
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


def test_context_model_trains_on_pairs_of_blocks_and_needs_them(windows):
    pairs = np.concatenate([windows, windows[::-1]], axis=1)  # 8 frames: two blocks
    result = train_model(FixedWindows(pairs, size=32), config=TINY_CONTEXT, steps=3, minutes=5, batch=2, log=print)
    assert result.steps == 3 and result.metrics["psnr_db"] > 0
    with pytest.raises(VtokError, match="do not fit"):
        train_model(FixedWindows(windows, size=32), config=TINY_CONTEXT, steps=1, minutes=5, batch=2, log=print)


def test_mask_sampler_with_four_levels_keeps_at_least_one_token_per_tile():
    keep = _MaskSampler(16, 16, "cpu", levels=4)(200, torch.Generator().manual_seed(0))
    per_tile = keep.reshape(200, 2, 8, 2, 8).sum((2, 4))
    assert (per_tile >= 1).all() and (keep.float().mean((1, 2)) == 1).any()


def test_window_sampler_draws_fresh_windows_and_holds_out_the_end(clip, tmp_path):
    videos, images = build_cache([clip], tmp_path / "cache")
    assert len(videos) == 1 and not images
    assert build_cache([clip], tmp_path / "cache") == (videos, images)  # cached: not decoded again
    train = WindowSampler(videos, images, frames=8, size=64, seed=0)
    a, b = train.batch(3), train.batch(3)
    assert a.shape == (3, 8, 64, 64, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    heldout = WindowSampler(videos, [], frames=8, size=64, part="heldout")
    assert len(heldout.videos[0]) >= 8 and len(heldout.videos[0]) + len(train.videos[0]) == len(np.load(videos[0]))


def test_a_checkpoint_of_a_related_architecture_starts_a_new_schedule(windows, tmp_path):
    from safetensors.torch import load_file

    plain = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4)
    ckpt = tmp_path / "plain.checkpoint.safetensors"
    train_model(FixedWindows(windows, size=32), config=plain, steps=2, minutes=5, batch=2, checkpoint=ckpt, log=print)
    pairs = np.concatenate([windows, windows], axis=1)
    logs = []
    result = train_model(
        FixedWindows(pairs, size=32),
        config=TINY_CONTEXT,
        steps=2,
        minutes=5,
        batch=2,
        init=load_file(str(ckpt)),
        log=logs.append,
    )  # the decoder's first layer takes more channels now: its moments cannot be reused
    assert result.steps == 2 and any("related architecture" in line for line in logs)

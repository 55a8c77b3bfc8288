import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vtok.errors import MediaError, OutputError, UsageError, VtokError
from vtok.model.architectures import ARCHITECTURES, ModelConfig
from vtok.model.registry import load_model, resolve
from vtok.model.tokenizer import Tokenizer
from vtok.train import MaskSampler, TrainConfig, WindowSampler, export, loop, run_training, train_model
from vtok.train.checkpoint import adapt
from vtok.train.data import _prune, build_cache
from vtok.train.windows import FixedWindows, load_windows

TINY = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1)
TINY_CONTEXT = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)


def schedule(**kw) -> TrainConfig:
    """A schedule that only `steps` ends: minutes far away."""
    return TrainConfig(**{"minutes": 60.0, **kw})


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 1, 32, 32, 3), dtype=np.uint8)
    return np.repeat(base, 4, axis=1)


def smooth_windows(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 4, 32, 32, 3): slow colour gradients drifting over the frames, easy to learn."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(4), np.arange(32), np.arange(32), indexing="ij")
    out = np.empty((n, 4, 32, 32, 3), np.uint8)
    for i in range(n):
        for c in range(3):
            fy, fx, phase = rng.uniform(0, 0.15), rng.uniform(0, 0.15), rng.uniform(0, 2 * np.pi)
            mid, amp = rng.uniform(60, 190), rng.uniform(30, 60)
            out[i, ..., c] = mid + amp * np.sin(fy * y + fx * (x + t) + phase)
    return out


@pytest.mark.parametrize("loss", ["mse", "log-mse"])
def test_training_lowers_the_heldout_error(loss):
    train, val = smooth_windows(64, seed=0), smooth_windows(8, seed=1)
    # steps=0: the same seeded initial model, evaluated untrained
    before = train_model(FixedWindows(train, size=32), TINY, schedule(steps=0), val=val, log=print)
    # a high peak rate: the warm-up (200 steps) keeps the first 40 at a tenth of it or less
    run = schedule(steps=40, batch=8, lr=3e-2, loss=loss)
    after = train_model(FixedWindows(train, size=32), TINY, run, val=val, log=print)
    assert before.steps == 0 and after.steps == 40
    assert after.metrics["psnr_db"] > before.metrics["psnr_db"] + 1, (before.metrics, after.metrics)  # +1.7 dB seen


def test_training_resumes_from_a_checkpoint(windows, tmp_path):
    ckpt = tmp_path / "tiny.checkpoint.safetensors"
    logs = []
    sampler = FixedWindows(windows, size=32)
    first = train_model(sampler, TINY, schedule(steps=6, batch=4), checkpoint=ckpt, log=logs.append)
    assert first.steps == 6 and ckpt.exists()
    state = load_file(str(ckpt))
    assert state["progress.step"].item() == 6
    assert any(k.startswith("optimizer.exp_avg.") for k in state)
    second = train_model(sampler, TINY, schedule(steps=9, batch=4), init=state, checkpoint=ckpt, log=logs.append)
    assert second.steps == 9
    assert any("resuming at step 6" in line for line in logs)
    entry = export(second, name="tiny", config=TINY, out_dir=tmp_path, data=["random"])
    assert set(entry["metrics"]) == {
        "heldout_windows_psnr_db",
        "heldout_windows_psnr_25pct_db",
        "heldout_windows_perplexity",
    }
    assert (tmp_path / "manifest.json").exists() and (tmp_path / "tiny.safetensors").exists()


def test_the_entropy_weight_reaches_an_lfq_models_loss(windows):
    tiny_lfq = ModelConfig(
        width=8, latent_width=16, encoder_depth=1, decoder_depth=1, quantizer={"kind": "lfq", "bits": 4}
    )

    def trained(**kw) -> dict:
        return train_model(FixedWindows(windows, size=32), tiny_lfq, schedule(steps=3, batch=4, **kw), log=print).state

    default, same, none, heavy = (
        trained(),
        trained(entropy_weight=0.01),
        trained(entropy_weight=0.0),
        trained(entropy_weight=1.0),
    )
    assert all(torch.equal(default[k], same[k]) for k in default)
    assert not all(torch.equal(none[k], heavy[k]) for k in none)


def test_log_mse_is_the_mean_log_error_of_each_window_and_block():
    x = torch.zeros(2, 3, 8, 4, 4)
    ys = [torch.full((2, 3, 4, 4, 4), 0.1), torch.zeros(2, 3, 4, 4, 4)]
    ys[1][1] = 0.3  # per window and block MSE: [[0.01, 0.01], [0, 0.09]]
    mse_loss, mse = loop._reconstruction_loss("mse", ys, x)
    log_loss, same = loop._reconstruction_loss("log-mse", ys, x)
    assert torch.isclose(mse, torch.tensor(0.0275)) and torch.equal(mse, mse_loss) and torch.equal(mse, same)
    errors = torch.tensor([0.01, 0.01, 0.0, 0.09]) + loop.LOG_MSE_FLOOR
    assert torch.isclose(log_loss, errors.log().mean())


def test_mask_sampler_mixes_full_prefix_and_tile_masks():
    sampler = MaskSampler(14, 14, "cpu")
    keep = sampler(300, torch.Generator().manual_seed(0))
    kept = keep.float().mean((1, 2))
    assert keep.shape == (300, 14, 14)
    assert (kept == 1).float().mean() > 0.25  # full budget about a third of the time
    assert kept.min() >= (196 // 16) / 196 - 1e-6 and (kept < 0.5).any()  # at least 1/16 of the tokens


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_mask_sampler_keeps_every_token_in_its_full_share(share):
    keep = MaskSampler(14, 14, "cpu", full_share=share)(2000, torch.Generator().manual_seed(1))
    full = (keep.float().mean((1, 2)) == 1).float().mean().item()
    # a random prefix keeps everything now and then (n drawn up to all 196), so allow a little more
    assert share - 0.04 <= full <= share + 0.04


def test_mask_sampler_log_prefix_draws_each_doubling_of_the_budget_alike():
    """On a 32x32 grid (1,024 positions, 16 tiles), prefixes run from 16 to 1,024 tokens: six doublings."""
    gen = torch.Generator().manual_seed(2)
    scales = ("linear", "log")
    draws = {s: MaskSampler(32, 32, "cpu", levels=4, prefix_scale=s).prefix_lengths(6000, gen) for s in scales}
    shares = [((draws["log"] >= lo) & (draws["log"] < 2 * lo)).float().mean().item() for lo in (16, 32, 64, 128, 256)]
    assert all(abs(share - 1 / 6) < 0.03 for share in shares)
    assert (draws["linear"] < 256).float().mean() < 0.3 < 0.6 < (draws["log"] < 256).float().mean()
    assert all(d.min() >= 16 and d.max() <= 1024 for d in draws.values())
    with pytest.raises(ValueError, match="prefix scale"):
        MaskSampler(32, 32, "cpu", prefix_scale="cubic")


def test_context_model_trains_on_pairs_of_blocks_and_needs_them(windows):
    pairs = np.concatenate([windows, windows[::-1]], axis=1)  # 8 frames: two blocks
    result = train_model(FixedWindows(pairs, size=32), TINY_CONTEXT, schedule(steps=3, batch=2), log=print)
    assert result.steps == 3 and result.metrics["psnr_db"] > 0
    with pytest.raises(VtokError, match="do not fit"):
        train_model(FixedWindows(windows, size=32), TINY_CONTEXT, schedule(steps=1, batch=2), log=print)


def test_mask_sampler_with_four_levels_keeps_at_least_one_token_per_tile():
    keep = MaskSampler(16, 16, "cpu", levels=4)(200, torch.Generator().manual_seed(0))
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


def test_frame_cache_is_keyed_by_bytes_not_by_path_or_time(clip, tmp_path):
    (videos, _) = build_cache([clip], tmp_path / "cache")
    copy = tmp_path / "copy" / clip.name
    copy.parent.mkdir()
    copy.write_bytes(clip.read_bytes())  # a fresh copy: another path and mtime, the same bytes
    assert build_cache([copy], tmp_path / "cache")[0] == videos
    copy.write_bytes(clip.read_bytes() + b"\0")  # other bytes: decoded again, under another key
    assert build_cache([copy], tmp_path / "cache")[0] != videos
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_prune_drops_the_least_recently_used_files_but_never_a_kept_one(tmp_path):
    files = [tmp_path / f"{name}.npy" for name in "abcd"]
    for age, f in enumerate(reversed(files)):
        f.write_bytes(b"x" * 100)
        os.utime(f, (1e9 - age, 1e9 - age))  # a is the oldest, d the newest
    part, stale = tmp_path / ".e.npy.1.part.npy", tmp_path / ".f.npy.2.part.npy"
    part.write_bytes(b"x" * 100)
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (1e9, 1e9))
    _prune(tmp_path, keep={files[0]}, limit=300)
    assert [f.exists() for f in files] == [True, False, True, True] and part.exists() and not stale.exists()
    _prune(tmp_path, keep=set(files), limit=0)  # a run's own files stay, however large
    assert all(f.exists() for f in files if f != files[1])


def test_a_frame_cache_without_room_is_refused_with_the_folder_named(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(OutputError, match="needs [0-9,]+ MB in the frame cache, 0 MB are free"):
        build_cache([clip], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.fixture
def counted_cache(tmp_path):
    """Two cached videos whose frames say where they come from: red = frame index, green = video."""
    paths = []
    for v, length in enumerate((120, 50)):
        frames = np.zeros((length, 40, 48, 3), np.uint8)
        frames[..., 0] = np.arange(length)[:, None, None]
        frames[..., 1] = v
        np.save(tmp_path / f"v{v}.npy", frames)
        paths.append(tmp_path / f"v{v}.npy")
    return paths, {0: 120 - 12, 1: 50 - 5}  # where the held-out last tenth starts


def test_window_sampler_batches_are_seeded_and_hold_out_the_last_tenth(counted_cache):
    videos, cut = counted_cache
    batch = WindowSampler(videos, [], frames=4, size=16, seed=7).batch(200)
    assert batch.shape == (200, 4, 16, 16, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch, WindowSampler(videos, [], frames=4, size=16, seed=7).batch(200))
    assert not np.array_equal(batch, WindowSampler(videos, [], frames=4, size=16, seed=8).batch(200))
    heldout = WindowSampler(videos, [], frames=4, size=16, seed=7, part="heldout").batch(200)
    for windows, held in ((batch, False), (heldout, True)):
        assert (windows == windows[:, :, :1, :1]).all()  # every frame one colour, even after a 2x downscale
        index, video = windows[:, :, 0, 0, 0].astype(int), windows[:, :, 0, 0, 1]
        assert (video == video[:, :1]).all() and set(np.unique(video)) == {0, 1}  # both videos drawn from
        in_tail = index >= np.vectorize(cut.get)(video)
        assert in_tail.all() if held else not in_tail.any()


def test_window_sampler_needs_a_long_enough_video(counted_cache):
    videos, _ = counted_cache
    with pytest.raises(MediaError):
        WindowSampler(videos, [], frames=61, size=16)  # both shorter than two windows


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"model": "vtok-nope"}, "model"),
        ({"crop": 100}, "crop"),
        ({"crop": 0}, "crop"),
        ({"batch": 0}, "batch"),
        ({"minutes": 0.0}, "minutes"),
        ({"masks_after": 1.5}, "masks_after"),
        ({"full_share": -0.1}, "full_share"),
        ({"prefix_scale": "cubic"}, "prefix_scale"),
        ({"model": "vtok-lfq", "entropy_weight": -0.01}, "entropy_weight"),
        ({"entropy_weight": 0.01}, "entropy_weight"),  # vtok-fsq has no entropy penalty
        ({"windows": -1}, "windows"),
        ({"loss": "l1"}, "loss"),
        ({"resumed_lr": 0.0}, "resumed_lr"),
        ({"resumed_lr": 1.5}, "resumed_lr"),
    ],
)
def test_train_config_check_names_the_bad_field(change, option):
    TrainConfig().check()
    with pytest.raises(UsageError) as e:
        TrainConfig(**change).check()
    assert e.value.option == option and "--" not in str(e.value)


def test_run_training_rejects_a_bad_config_before_any_work(clip, tmp_path):
    with pytest.raises(UsageError, match="unknown architecture"):
        run_training([clip], TrainConfig(model="vtok-nope", out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_run_training_writes_weights_and_manifest(clip, tmp_path):
    out = tmp_path / "out"
    config = TrainConfig(model="vtok-fsq-s8", out_dir=out, steps=2, batch=2, crop=32, cache=tmp_path / "cache")
    logs = []
    entry = run_training([clip], config, log=logs.append)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["vtok-fsq-s8"] == entry and entry["file"] == "vtok-fsq-s8.safetensors"
    assert entry["training"]["steps"] == 2 and entry["config"] == config.architecture.to_dict()
    weights = load_file(str(out / entry["file"]))
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert "training vtok-fsq-s8 on windows of 4 frames, 32x32, on cpu" in logs
    assert not list(out.glob("*.part*")) and not list(out.glob(".*"))  # no temporary file left behind


def test_run_training_on_saved_fixed_windows(clip, tmp_path):
    saved = tmp_path / "windows.safetensors"
    common = dict(model="vtok-fsq-s8", steps=1, batch=2, crop=32)
    run_training([clip], TrainConfig(**common, out_dir=tmp_path / "a", windows=6, save_windows=saved), log=print)
    assert load_windows(saved).shape == (6, 4, 128, 128, 3)
    entry = run_training([saved], TrainConfig(**common, out_dir=tmp_path / "b"), log=print)
    assert (tmp_path / "b" / entry["file"]).exists() and entry["training"]["data"] == [str(saved)]


def test_the_train_command_writes_a_model_and_refuses_a_bad_crop_naming_its_flag(clip, tmp_path):
    from typer.testing import CliRunner

    from vtok.cli import app

    out, cache = tmp_path / "out", tmp_path / "cache"
    common = ["train", str(clip), "--model", "vtok-fsq-s8", "--cache", str(cache), "--device", "cpu"]
    bad = CliRunner().invoke(app, [*common, "-o", str(out), "--crop", "48"])
    assert bad.exit_code == 2 and "(see --crop)" in bad.stderr and not out.exists()
    short = ["--steps", "2", "--batch", "2", "--crop", "32"]
    r = CliRunner().invoke(app, [*common, "-o", str(out), *short])
    assert r.exit_code == 0, r.output
    assert (out / "vtok-fsq-s8.safetensors").is_file() and "vtok-fsq-s8" in (out / "manifest.json").read_text()
    seeded = CliRunner().invoke(app, [*common, "-o", str(tmp_path / "seeded"), *short, "--seed", "1"])
    assert seeded.exit_code == 0, seeded.output
    weights = [load_file(str(folder / "vtok-fsq-s8.safetensors")) for folder in (out, tmp_path / "seeded")]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # another initialisation


def test_training_never_writes_into_the_installed_weights(clip):
    from vtok.model.registry import builtin_dir

    before = {p.name: p.stat().st_mtime_ns for p in builtin_dir().iterdir()}
    for force in (False, True):
        with pytest.raises(UsageError, match="holds the installed models") as e:
            run_training([clip], TrainConfig(model="vtok-fsq", out_dir=builtin_dir(), force=force))
        assert e.value.option == "output"
    assert {p.name: p.stat().st_mtime_ns for p in builtin_dir().iterdir()} == before


def test_training_refuses_to_replace_a_model_without_force_but_continues_its_own_checkpoint(clip, tmp_path):
    out = tmp_path / "out"
    common = dict(model="vtok-fsq-s8", out_dir=out, steps=1, batch=2, crop=32, cache=tmp_path / "cache")
    run_training([clip], TrainConfig(**common), log=print)
    weights = out / "vtok-fsq-s8.safetensors"
    stamp = weights.stat().st_mtime_ns
    with pytest.raises(UsageError, match="exists; pass --force"):
        run_training([clip], TrainConfig(**common), log=print)
    with pytest.raises(UsageError, match="exists; pass --force"):  # other weights to fine-tune from are no excuse
        run_training([clip], TrainConfig(**common, resume=weights), log=print)
    assert weights.stat().st_mtime_ns == stamp
    ckpt = out / "vtok-fsq-s8.checkpoint.safetensors"
    run_training([clip], TrainConfig(**{**common, "steps": 2}, resume=ckpt), log=print)
    run_training([clip], TrainConfig(**common, force=True), log=print)
    assert weights.stat().st_mtime_ns != stamp


def _fit_randomised(old: Tokenizer, new: Tokenizer) -> list[str]:
    """Randomise both models' weights (no block near the identity, so any misplaced weight shows, and
    fresh layers reach past zero), then load old's fitted by `adapt` into new; adapt's log lines."""
    for p in [*old.parameters(), *new.parameters()]:
        torch.nn.init.normal_(p, std=0.3)
    logs = []
    new.load_state_dict(adapt(old.state_dict(), new, logs.append), strict=True)
    return logs


def test_resuming_into_a_deeper_decoder_starts_from_the_same_pictures():
    fine = dict(width=8, latent_width=16, encoder_depth=1, stride=4, levels=4)
    shallow, deep = Tokenizer(ModelConfig(**fine, decoder_depth=1)), Tokenizer(ModelConfig(**fine, decoder_depth=2))
    logs = _fit_randomised(shallow, deep)
    assert any("1 residual blocks per stage -> 2" in line for line in logs)
    x = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        (y_shallow, _, i_shallow), (y_deep, _, i_deep) = shallow(x), deep(x)
    assert torch.equal(i_shallow, i_deep) and torch.equal(y_shallow, y_deep)
    deep(x)[0].square().mean().backward()  # the new blocks learn: their last convolution gets a gradient
    assert deep.decoder.high[1].conv2.weight.grad.abs().sum() > 0
    assert deep.decoder.low[2].conv2.weight.grad.abs().sum() > 0


def test_resuming_into_a_deeper_encoder_starts_from_the_same_codes():
    fine = dict(width=8, latent_width=16, decoder_depth=1, stride=4, levels=4)
    shallow, deep = Tokenizer(ModelConfig(**fine, encoder_depth=1)), Tokenizer(ModelConfig(**fine, encoder_depth=3))
    logs = _fit_randomised(shallow, deep)
    assert logs == ["encoder: 1 residual blocks per stage -> 3; the new ones start as the identity"]
    x = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        (y_shallow, z_shallow, i_shallow), (y_deep, z_deep, i_deep) = shallow(x), deep(x)
    assert torch.equal(z_shallow, z_deep) and torch.equal(i_shallow, i_deep) and torch.equal(y_shallow, y_deep)
    deep(x)[1].square().mean().backward()  # the new blocks learn: their last convolution gets a gradient
    assert deep.encoder[2].conv2.weight.grad.abs().sum() > 0
    assert deep.encoder[3].conv2.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "flag, stages",
    [
        ("encoder_wide", ["encoder"]),
        ("decoder_wide", ["decoder.low"]),  # the 1/8 branch's view at 1/16: 5 x 6, padded again
        ("feedback_wide", ["feedback", "later_feedback.0"]),
    ],
)
def test_resuming_into_a_wide_view_starts_from_the_same_codes_and_pictures(flag, stages):
    fine = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4)
    looks = dict(feedback=True, feedback_passes=2)
    plain, wide = Tokenizer(ModelConfig(**fine, **looks)), Tokenizer(ModelConfig(**fine, **looks, **{flag: True}))
    logs = _fit_randomised(plain, wide)
    assert logs == [f"{stage}: a wide view added after the residual blocks; it starts at zero" for stage in stages]
    x = torch.rand(2, 3, 4, 36, 44) * 2 - 1  # a 9 x 11 token grid: the view pads its odd sides
    keep = torch.rand(2, 9, 11) < 0.3
    with torch.no_grad():
        (y_plain, z_plain, i_plain), (y_wide, z_wide, i_wide) = plain(x, keep), wide(x, keep)
    assert torch.equal(z_plain, z_wide) and torch.equal(i_plain, i_wide) and torch.equal(y_plain, y_wide)
    assert torch.equal(plain.encode(x), wide.encode(x))
    y, z, _ = wide(x, keep)
    (y.square().mean() + z.square().mean()).backward()  # each view learns: its last convolution gets a gradient
    for stage in stages:
        assert wide.get_submodule(stage)[2].low[-2].weight.grad.abs().sum() > 0, stage


def test_resuming_wide_views_into_deeper_stages_deepens_the_views_too():
    views = dict(encoder_wide=True, decoder_wide=True, feedback_wide=True)
    fine = dict(width=8, latent_width=16, stride=4, levels=4, feedback=True, feedback_passes=2, **views)
    shallow = Tokenizer(ModelConfig(**fine, encoder_depth=1, decoder_depth=1))
    deep = Tokenizer(ModelConfig(**fine, encoder_depth=2, decoder_depth=2))
    logs = _fit_randomised(shallow, deep)
    assert logs == [
        "encoder: 1 residual blocks per stage -> 2; the new ones start as the identity",
        "decoder: 1 residual blocks per stage -> 2; the new ones start as the identity",
    ]
    x = torch.rand(2, 3, 4, 36, 44) * 2 - 1
    keep = torch.rand(2, 9, 11) < 0.3
    with torch.no_grad():
        (y_shallow, z_shallow, i_shallow), (y_deep, z_deep, i_deep) = shallow(x, keep), deep(x, keep)
    assert torch.equal(z_shallow, z_deep) and torch.equal(i_shallow, i_deep) and torch.equal(y_shallow, y_deep)


def test_a_wider_latent_resumes_past_a_feedback_view_the_new_design_lacks():
    fine = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, feedback=True)
    old = Tokenizer(ModelConfig(**fine, feedback_wide=True, quantizer={"kind": "fsq", "levels": [5, 4, 3]}))
    new = Tokenizer(ModelConfig(**fine, quantizer={"kind": "fsq", "levels": [5, 4, 3, 4]}))
    logs = _fit_randomised(old, new)  # raised a KeyError: the feedback pass's last layer sat elsewhere
    assert logs[0] == "latent: 3 channels -> 4; the decoder starts by ignoring the new ones"
    assert any(line.startswith("feedback.") and "dropped" in line for line in logs)


@pytest.mark.parametrize("name", ["vtok-fsq-wide-feedback", "vtok-fsq-wide-decoder"])
def test_the_shipped_vtok_fsq_resumes_into_each_design_built_on_it_with_the_same_codes(name):
    shipped = load_model(resolve("vtok-fsq"))
    new = Tokenizer(ARCHITECTURES[name]).eval()
    new.load_state_dict(adapt(shipped.state_dict(), new, print), strict=True)
    torch.manual_seed(0)
    x, keep = torch.rand(1, 3, 4, 48, 40) * 2 - 1, torch.rand(1, 12, 10) < 0.5
    with torch.no_grad():
        (y_old, _, i_old), (y_new, _, i_new) = shipped(x, keep), new(x, keep)
    assert torch.equal(i_new % shipped.codebook_size, i_old)  # a new channel's digits sit above the old ones
    assert torch.allclose(y_old, y_new, atol=1e-5)


def test_resumed_layers_train_at_their_share_of_the_rate_and_a_checkpoint_keeps_the_shares(windows, tmp_path):
    fine = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, feedback=True)
    plain, wide = ModelConfig(**fine), ModelConfig(**fine, encoder_wide=True)
    init = {k: v.clone() for k, v in Tokenizer(plain).state_dict().items()}
    sampler, ckpt = FixedWindows(windows, size=32), tmp_path / "wide.checkpoint.safetensors"
    run = schedule(steps=3, batch=2, lr=1e-2, resumed_lr=1e-6)
    after = train_model(sampler, wide, run, init=init, checkpoint=ckpt, log=print).state
    view = [k for k in after if k.startswith("encoder.2.low.") and k.endswith("weight")]
    moved = {k: (after[k] - init[k]).abs().max().item() for k in init if k.endswith("weight") and k in after}
    assert view and not any(k in init for k in view)  # the view's layers are new (`moved` skips renamed ones)
    assert max(moved.values()) < 1e-6, moved  # the resumed layers barely move (Adam steps ~ lr)...
    last = f"encoder.2.low.{len(Tokenizer(wide).encoder[2].low) - 2}.weight"  # starts at zero
    assert after[last].abs().max() > 1e-4  # ...the new view learns at the full rate
    saved = load_file(str(ckpt))
    assert saved["optimizer.lr_scale.encoder.2.low.0.weight"].item() == 1.0
    assert saved["optimizer.lr_scale.encoder.0.weight"].item() == pytest.approx(1e-6)
    # continuing the run keeps its shares, though every layer is now in the weights it resumes from
    logs = []
    again = train_model(sampler, wide, schedule(steps=5, batch=2, lr=1e-2), init=saved, log=logs.append).state
    assert any("resuming at step 3" in line for line in logs)
    assert (again["encoder.0.weight"] - after["encoder.0.weight"]).abs().max() < 1e-6


@pytest.mark.parametrize(
    "narrow_spec, wide_spec, looks",
    [
        ({"kind": "fsq", "levels": [5, 4, 3]}, {"kind": "fsq", "levels": [5, 4, 3, 4]}, {}),
        ({"kind": "lfq", "bits": 3}, {"kind": "lfq", "bits": 5}, {}),
        ({"kind": "lfq", "bits": 3}, {"kind": "lfq", "bits": 5}, {"feedback": True, "feedback_passes": 2}),
        ({"kind": "fsq", "levels": [5, 4, 3]}, {"kind": "fsq", "levels": [5, 4, 3, 4]}, {"feedback": True}),
        (  # the feedback passes' last convolutions sit after their views
            {"kind": "fsq", "levels": [5, 4, 3]},
            {"kind": "fsq", "levels": [5, 4, 3, 4]},
            {"feedback": True, "feedback_passes": 2, "encoder_wide": True, "feedback_wide": True},
        ),
    ],
)
def test_resuming_into_a_wider_latent_keeps_the_codes_and_the_pictures(narrow_spec, wide_spec, looks):
    torch.manual_seed(1)  # under seed 0, the fresh FSQ channel of the feedback case rounds to 0 everywhere
    fine = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, **looks)
    narrow = Tokenizer(ModelConfig(**fine, quantizer=narrow_spec))
    wide = Tokenizer(ModelConfig(**fine, quantizer=wide_spec))
    logs = _fit_randomised(narrow, wide)
    assert any(f"latent: 3 channels -> {wide.quantizer.dim}" in line for line in logs)
    x = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        (y_narrow, _, i_narrow), (y_wide, _, i_wide) = narrow(x), wide(x)
    assert torch.equal(i_wide % narrow.codebook_size, i_narrow)  # the old channels come first in the index
    assert torch.allclose(y_narrow, y_wide, atol=1e-6)
    new_channel = wide.quantizer(wide.latent(x))[0][:, 3]
    assert new_channel.detach().abs().amax() > 0  # it carries something from the start
    wide(x)[0].square().mean().backward()  # the decoder learns to read the new channel
    assert wide.decoder.inp.weight.grad[:, 3].abs().sum() > 0


def test_resuming_into_a_level_map_starts_from_the_same_pictures():
    fine = dict(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4)
    plain, mapped = Tokenizer(ModelConfig(**fine)), Tokenizer(ModelConfig(**fine, level_map=True))
    _fit_randomised(plain, mapped)
    x = torch.rand(2, 3, 4, 40, 36) * 2 - 1
    keep = torch.rand(2, 10, 9) < 0.5
    with torch.no_grad():
        assert torch.equal(plain.latent(x), mapped.latent(x))
        assert torch.allclose(plain(x, keep)[0], mapped(x, keep)[0], atol=1e-6)
    mapped(x, keep)[0].square().mean().backward()  # both ends learn to read the levels
    assert mapped.encoder[0].weight.grad[:, -4:].abs().sum() > 0
    assert mapped.decoder.inp.weight.grad[:, -4:].abs().sum() > 0
    with pytest.raises(ValueError, match="stride-4"):
        ModelConfig(level_map=True)

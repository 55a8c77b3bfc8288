"""One training run, as `vtok train` does it: windows from the sources, `train_model`, `export`.

From folders, every step draws fresh windows from a frame cache (vtok.train.data), and the last
tenth of each video is held out for the logged figures. Fixed windows (vtok.train.windows) can
instead be sampled once, and saved to train elsewhere; one saved windows file is a source too.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from vtok.errors import MediaError
from vtok.model.registry import pick_device
from vtok.train.checkpoint import export
from vtok.train.config import TrainConfig
from vtok.train.data import WindowSampler, build_cache, default_cache
from vtok.train.loop import VAL_WINDOWS, train_model
from vtok.train.windows import FixedWindows, load_windows, sample_windows, save_windows

__all__ = ["run_training"]

FIXED_WINDOW_SIZE = 128  # pixels: fixed windows are sampled at least this large, and cropped later


def _saved_windows(sources: list[Path]) -> bool:
    """True if the one source is a windows file written by `save_windows`."""
    return len(sources) == 1 and sources[0].suffix == ".safetensors"


def _fixed_windows(
    sources: list[Path], config: TrainConfig, frames: int, log: Callable[[str], None]
) -> tuple[FixedWindows, np.ndarray]:
    """(sampler, held-out windows uint8 (N, frames, S, S, 3)) from a saved windows file, or from
    `config.windows` windows sampled now (and saved to `config.save_windows` if set)."""
    if _saved_windows(sources):
        data = load_windows(sources[0])
    else:
        data = sample_windows(
            sources,
            count=config.windows,
            size=max(config.crop, FIXED_WINDOW_SIZE),
            frames=frames,
            seed=config.seed,
            progress=lambda i, n: log(f"sampled {i}/{n} sources"),
        )
        if config.save_windows is not None:
            save_windows(config.save_windows, data)
    n_val = max(1, min(VAL_WINDOWS, len(data) // 20))  # one window in twenty, at most 32, held out
    return FixedWindows(data[n_val:], size=config.crop, seed=config.seed), data[:n_val]


def _fresh_windows(
    sources: list[Path], config: TrainConfig, frames: int, log: Callable[[str], None]
) -> tuple[WindowSampler, np.ndarray]:
    """(sampler of fresh windows, held-out windows uint8 (32, frames, crop, crop, 3) from the last
    tenth of each video), both cut from the frame cache, which is filled first."""
    cache = config.cache or default_cache()
    videos, images = build_cache(sources, cache, progress=lambda i, n: log(f"cached {i}/{n} sources"))
    on_gpu = config.device if config.device.startswith("cuda") else None  # cut windows where the model runs
    size, seed = config.crop, config.seed
    sampler = WindowSampler(videos, images, frames=frames, size=size, seed=seed, device=on_gpu)
    # the held-out windows do not depend on the seed, so runs with different seeds compare
    try:
        val = WindowSampler(videos, [], frames=frames, size=size, seed=1, part="heldout").batch(VAL_WINDOWS)
    except MediaError:  # no video long enough to hold out its end (e.g. stills only)
        log("no video to hold out: the logged figures come from training windows")
        val = WindowSampler(videos, images, frames=frames, size=size, seed=1).batch(VAL_WINDOWS)
    return sampler, val


def run_training(sources: list[Path], config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Train `config.model` on windows from `sources` (folders or files of videos and images, or
    one windows file saved earlier), and write `out_dir/MODEL.safetensors` with its entry in
    `out_dir/manifest.json`; return the entry. A checkpoint `out_dir/MODEL.checkpoint.safetensors`
    is kept up to date while training."""
    config.check()
    config.check_outputs()
    config = replace(config, device=pick_device(config.device))
    arch = config.architecture
    frames = arch.frames * (2 if arch.context else 1)
    choose = _fixed_windows if _saved_windows(sources) or config.windows > 0 else _fresh_windows
    sampler, val = choose(sources, config, frames, log)
    log(f"training {config.model} on windows of {frames} frames, {config.crop}x{config.crop}, on {config.device}")
    init = load_file(str(config.resume)) if config.resume is not None else None
    config.out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = config.out_dir / f"{config.model}.checkpoint.safetensors"
    result = train_model(sampler, arch, config, val=val, init=init, checkpoint=ckpt, log=log)
    return export(result, name=config.model, config=arch, out_dir=config.out_dir, data=[str(s) for s in sources])

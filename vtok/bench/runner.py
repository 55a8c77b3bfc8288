"""Rate-distortion and speed, vtok beside classical codecs on the same frames: `vtok bench`.

For every clip, the first `frames` frames (centre-cropped to `size` x `size` when a size is given)
go through vtok at each threshold and at the full budget, for each model, and through each
classical codec at several CRFs. vtok also runs at fixed budgets (the full-budget file trimmed to
the same share of tokens in every block), the baseline that elastic budgets must beat. Every run is
measured the same way: bits per pixel of the file (bytes x 8 / (W x H x frames)), PSNR (RGB, 8-bit
peak, pooled MSE), SSIM (mean over RGB), tokens per frame (vtok only), and encode and decode frames
per second; each model is loaded once, so no timing includes loading. Results are resumable: runs
already in DIR/results.json are skipped.

The baselines are in `classical`, the results files and the summary table in `report`, BD-rate and
elastic gain in `analysis`, the PNGs in `plots`.
"""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from vtok.bench.classical import CLASSICAL, Classical
from vtok.bench.plots import plot
from vtok.bench.report import Run, read_results, write_results
from vtok.codec import decode_file, encode_file, inspect_file, trim_file
from vtok.errors import MediaError, UsageError
from vtok.extras import require
from vtok.format import VtokReader
from vtok.media.find import find_media
from vtok.media.frames import centre_crop
from vtok.media.video import VideoWriter, probe, read_frames
from vtok.metrics import psnr, ssim
from vtok.model.registry import LoadedModel, list_models, load

__all__ = ["run_bench", "Run", "FIXED_SHARES", "find_clips", "load_clip"]

FIXED_SHARES = (0.25, 0.5, 0.75)  # fixed budgets, as shares of the full budget


def load_clip(path: Path, frames: int, size: int | None) -> tuple[np.ndarray, Fraction]:
    """The first `frames` frames uint8 (T, H, W, 3), cropped to size x size (or even H and W), and the rate."""
    video = np.stack(list(islice(read_frames(path), frames)))
    if size:
        video = centre_crop(video, size)
    else:
        video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # 4:2:0 codecs need even sizes
    return video, probe(path).rate


def find_clips(paths: list[Path]) -> list[Path]:
    """The videos to measure: files as given (whatever their extension), and the videos in folders
    (walked recursively, by extension, sorted), in the order of `paths`."""
    clips: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            clips += find_media([path])[0]
        elif path.is_file():
            clips.append(path)
        else:
            raise MediaError(f"{path}: no such file or folder", option="clips")
    if not clips:
        raise MediaError("no video files to measure", option="clips")
    return clips


def _timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of fn(*args, **kwargs)."""
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


@dataclass(frozen=True)
class _Clip:
    """One clip as every codec gets it, a scratch folder, and the keys of the runs already measured."""

    name: str
    video: np.ndarray  # uint8 (T, H, W, 3)
    rate: Fraction
    work: Path
    done: set[str]

    def todo(self, codec: str, setting: str) -> bool:
        return f"{self.name}|{codec}|{setting}" not in self.done

    def run(
        self,
        codec: str,
        setting: str,
        decoded: np.ndarray,
        bpp: float,
        tokens_per_frame: float | None,
        encode_s: float,
        decode_s: float,
    ) -> Run:
        """The Run of `decoded`, uint8 (T, H, W, 3), measured against the clip's frames."""
        n = len(self.video)
        quality = psnr(self.video, decoded), ssim(self.video, decoded)
        return Run(self.name, codec, setting, bpp, *quality, tokens_per_frame, n / encode_s, n / decode_s)


def _source(clip: _Clip) -> Path:
    """The clip's frames as a lossless mp4, the input of every vtok encode; written once per clip."""
    src = clip.work / "source.mp4"
    if not src.exists():
        with VideoWriter(
            src, width=clip.video.shape[2], height=clip.video.shape[1], rate=clip.rate, lossless=True
        ) as writer:
            for frame in clip.video:
                writer.write(frame)
    return src


def _measure_vtok(clip: _Clip, name: str, model: LoadedModel, setting: str, vt: Path, encode_s: float) -> Run:
    """Decode the .vtok file `vt`, which took `encode_s` seconds to make, and measure it."""
    out = clip.work / "x.mp4"
    decode_s, _ = _timed(decode_file, src=vt, dst=out, model=model, lossless=True, force=True)
    decoded = np.stack(list(read_frames(out)))
    stats = inspect_file(path=vt)
    tokens_per_frame = stats["tokens"] / stats["frames"]
    return clip.run(name, setting, decoded, stats["bits_per_pixel"], tokens_per_frame, encode_s, decode_s)


def _budget_runs(clip: _Clip, name: str, model: LoadedModel, src: Path) -> list[Run]:
    """vtok at the full budget, and at the fixed shares of it, trimmed from the full-budget file
    (so their encode time is the full encode's plus the trim's)."""
    fixed = {f"fixed={share:.0%}": share for share in FIXED_SHARES}
    todo = [setting for setting in ("full", *fixed) if clip.todo(name, setting)]
    if not todo:
        return []
    full = clip.work / "full.vtok"
    full_s, _ = _timed(encode_file, src=src, dst=full, model=model, threshold=0.0, force=True)
    runs = [_measure_vtok(clip, name, model, "full", full, full_s)] if "full" in todo else []
    with VtokReader(full) as reader:  # the header alone: the budget needs no pass over the blocks
        full_per_frame = reader.header.tokens_per_block / reader.header.block_frames
    trimmed = clip.work / "x.vtok"
    for setting, share in fixed.items():
        if setting in todo:
            per_frame = share * full_per_frame
            trim_s, _ = _timed(trim_file, src=full, dst=trimmed, max_tokens_per_frame=per_frame, force=True)
            runs.append(_measure_vtok(clip, name, model, setting, trimmed, full_s + trim_s))
    return runs


def _elastic_runs(clip: _Clip, name: str, model: LoadedModel, src: Path, thresholds: list[float]) -> list[Run]:
    """vtok at each elastic threshold."""
    runs = []
    vt = clip.work / "x.vtok"
    for t in thresholds:
        if clip.todo(name, f"T={t:g}"):
            encode_s, _ = _timed(encode_file, src=src, dst=vt, model=model, threshold=t, force=True)
            runs.append(_measure_vtok(clip, name, model, f"T={t:g}", vt, encode_s))
    return runs


def _classical_runs(clip: _Clip, codec: Classical) -> list[Run]:
    """A classical codec at each of its CRFs."""
    runs = []
    path = clip.work / f"x{codec.suffix}"
    t, h, w, _ = clip.video.shape
    for crf in codec.crfs:
        if clip.todo(codec.name, f"crf={crf}"):
            encode_s, _ = _timed(codec.encode, clip.video, clip.rate, crf, path)
            decode_s, decoded = _timed(codec.decode, path)
            bpp = path.stat().st_size * 8 / (h * w * t)
            runs.append(clip.run(codec.name, f"crf={crf}", decoded, bpp, None, encode_s, decode_s))
    return runs


def _check(clips: list[Path], thresholds: list[float], codecs: list[str]) -> None:
    if not clips:
        raise UsageError("no clips to measure", option="clips")
    unknown = [c for c in codecs if c not in CLASSICAL]
    if unknown:
        raise UsageError(f"unknown codec {unknown[0]!r}; known: {', '.join(CLASSICAL)}", option="codecs")
    bad = [t for t in thresholds if not t > 0]  # `not >` also catches NaN
    if bad:
        raise UsageError(
            f"thresholds must all be > 0, not {bad[0]:g} (the full budget is always measured)", option="thresholds"
        )


def run_bench(
    *,
    clips: list[Path],
    out_dir: Path,
    thresholds: list[float],
    codecs: list[str],
    models: list[str] | None = None,
    frames: int = 64,
    size: int | None = 256,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[Run]:
    """Measure every clip with every model and codec; write DIR/results.json, results.csv and plots.

    clips: video files (see find_clips); models: model specs (vtok.model.registry; None: every
    built-in model), each loaded once on `device` so that no timing includes loading; progress is
    called with (1, total) after each model or codec on each clip. Returns every run, those loaded
    from an earlier results.json included.
    """
    _check(clips, thresholds, codecs)
    require("matplotlib")  # the plots come last: fail before the work, not after it
    models = models or [e.name for e in list_models()]
    loaded = {name: load(name, device) for name in models}
    total = len(clips) * (len(models) + len(codecs))
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = read_results(out_dir)
    done = {r.key for r in runs}
    torch.manual_seed(0)
    for path in clips:
        video, rate = load_clip(path, frames, size)
        with tempfile.TemporaryDirectory() as work:
            clip = _Clip(path.name, video, rate, Path(work), done)
            for name, model in loaded.items():
                src = _source(clip)
                runs += _budget_runs(clip, name, model, src) + _elastic_runs(clip, name, model, src, thresholds)
                write_results(runs, out_dir)
                if progress:
                    progress(1, total)
            for name in codecs:
                runs += _classical_runs(clip, CLASSICAL[name])
                write_results(runs, out_dir)
                if progress:
                    progress(1, total)
    plot(runs, out_dir)
    return runs

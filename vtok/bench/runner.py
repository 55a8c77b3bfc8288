"""Rate-distortion and speed, vtok beside classical codecs on the same frames: `vtok bench`.

For every clip, the first `frames` frames (centre-cropped to `size` x `size` when a size is given)
go through vtok at each threshold and at the full budget, for each model, and through each
classical codec at several CRFs. vtok also runs at fixed budgets (the full-budget file trimmed to
the same share of tokens in every block), the baseline that elastic budgets must beat. Every run is
measured the same way: bits per pixel of the file (bytes x 8 / (W x H x frames)), PSNR (RGB, 8-bit
peak, pooled MSE), SSIM (mean over RGB), tokens per frame (vtok only), and encode and decode frames
per second. Results are resumable: runs already in DIR/results.json are skipped.
"""

import csv
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vtok.errors import MediaError, VtokError
from vtok.media.video import VideoWriter, probe, read_frames

__all__ = ["run_bench", "Run", "CLASSICAL", "FIXED_SHARES", "bd_rate", "elastic_gain", "ssim", "psnr", "centre_crop"]

FIXED_SHARES = (0.25, 0.5, 0.75)  # fixed budgets, as shares of the full budget


@dataclass
class Run:
    clip: str
    codec: str  # a vtok model name or a classical codec name
    setting: str  # "T=0.003" (elastic), "full", "fixed=25%" (a fixed share of the full budget), or "crf=28"
    bits_per_pixel: float
    psnr_db: float
    ssim: float
    tokens_per_frame: float | None
    encode_fps: float
    decode_fps: float

    @property
    def key(self) -> str:
        return f"{self.clip}|{self.codec}|{self.setting}"


@dataclass(frozen=True)
class Classical:
    """A classical codec through PyAV: the one small interface every baseline goes through."""

    name: str  # PyAV encoder name
    crfs: tuple[int, ...]
    pix_fmt: str = "yuv420p"
    container: str = "mp4"

    def encode(self, frames: np.ndarray, rate: Fraction, crf: int, path: Path) -> None:
        """frames: uint8 (T, H, W, 3) with even H and W."""
        with av.open(str(path), "w", format=self.container) as c:
            s = c.add_stream(self.name, rate=rate, options={"crf": str(crf)})
            s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], self.pix_fmt
            s.time_base = 1 / Fraction(rate)
            for i, f in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(f, format="rgb24")
                frame.pts = i
                c.mux(s.encode(frame))
            c.mux(s.encode(None))


CLASSICAL = {
    "libx264": Classical("libx264", (23, 30, 37, 44, 51)),
    "libx265": Classical("libx265", (25, 32, 39, 46, 51)),
    "libsvtav1": Classical("libsvtav1", (30, 40, 50, 58, 63), container="matroska"),
}


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al., 2004; 11x11 Gaussian window, sigma 1.5) over frames and RGB channels.

    a, b: uint8 (T, H, W, 3).
    """
    x = torch.from_numpy(a).permute(0, 3, 1, 2).reshape(-1, 1, *a.shape[1:3]).float()
    y = torch.from_numpy(b).permute(0, 3, 1, 2).reshape(-1, 1, *b.shape[1:3]).float()
    g = _gaussian()
    win = (g[:, None] * g[None, :])[None, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 frames a against b (any equal shapes), 8-bit peak, from the pooled MSE."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def _curve(points: list[tuple[float, float]], tol: float, best=min) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) points -> arrays sorted by x; points within `tol` in x count once, with the `best` y."""
    kept: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if kept and x - kept[-1][0] < tol:
            kept[-1] = (kept[-1][0], best(kept[-1][1], y))
        else:
            kept.append((x, y))
    return np.array([x for x, _ in kept]), np.array([y for _, y in kept])


def _mean_gap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """Mean of b's y minus a's y over the x range both curves cover, both interpolated piecewise-linearly.
    None when a curve has fewer than 2 points or the ranges do not overlap."""
    (xa, ya), (xb, yb) = a, b
    if len(xa) < 2 or len(xb) < 2:
        return None
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, 1001)
    return float(np.mean(np.interp(grid, xb, yb) - np.interp(grid, xa, ya)))


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """Bjøntegaard delta rate in percent: the average bitrate change of `test` against `anchor` at
    equal PSNR, over the PSNR range both cover.

    anchor, test: (bits per pixel, PSNR dB) points. Log rate is interpolated piecewise-linearly in
    PSNR rather than by the classic cubic fit: elastic settings often land within a hair of each
    other (every block at the full budget), and a cubic through such points swings wildly. Points
    within 0.01 dB of each other count once, at the lower rate. None when the PSNR ranges do not
    overlap or a curve has fewer than 2 distinct points. Negative means test needs fewer bits.
    """
    gap = _mean_gap(*(_curve([(p, math.log(r)) for r, p in pts if r > 0], 0.01) for pts in (anchor, test)))
    return None if gap is None else (math.exp(gap) - 1) * 100


def elastic_gain(runs: list[Run], model: str) -> tuple[float | None, int, int]:
    """PSNR (dB) that `model`'s elastic budgets gain over its fixed budgets at equal tokens per frame.

    Per clip, the mean gap between the two PSNR-against-tokens curves over the token range both
    cover; returns its mean over clips, the number of clips where it is defined, and on how many
    of them elastic is ahead. Comparing clip by clip matters: at each threshold, a mean over clips
    averages hard clips (the full budget at every threshold) with easy ones (few tokens), a point
    that no single clip has; fixed budgets trim every clip alike and escape that.
    """
    gains = []
    for clip in sorted({r.clip for r in runs}):
        mine = [r for r in runs if r.clip == clip and r.codec == model and r.tokens_per_frame is not None]
        elastic = [(r.tokens_per_frame, r.psnr_db) for r in mine if r.setting.startswith("T=")]
        fixed = [(r.tokens_per_frame, r.psnr_db) for r in mine if _fixed(r) or r.setting == "full"]
        gap = _mean_gap(_curve(fixed, 0.5, max), _curve(elastic, 0.5, max))
        if gap is not None:
            gains.append(gap)
    return (float(np.mean(gains)) if gains else None), len(gains), sum(g > 0 for g in gains)


def centre_crop(frames: np.ndarray, size: int = 256) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3); the short side is first scaled up to `size` if smaller."""
    t, h, w, _ = frames.shape
    if min(h, w) < size:
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        s = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bilinear")
        frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        h, w = frames.shape[1:3]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frames[:, y0 : y0 + size, x0 : x0 + size])


def load_clip(path: Path, frames: int, size: int | None) -> tuple[np.ndarray, Fraction]:
    """The first `frames` frames uint8 (T, H, W, 3), cropped to size x size (or even H and W), and the rate."""
    video = np.stack(list(islice(read_frames(path), frames)))
    if size:
        video = centre_crop(video, size)
    else:
        video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # 4:2:0 codecs need even sizes
    return video, probe(path).rate


def _timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of fn(*args, **kwargs)."""
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def _vtok_runs(
    clip: str, video: np.ndarray, rate: Fraction, model: str, thresholds: list[float], work: Path, done: set[str]
) -> list[Run]:
    from vtok.codec import decode_file, encode_file, inspect_file, trim_file
    from vtok.format import VtokReader

    src = work / "source.mp4"
    if not src.exists():
        with VideoWriter(src, width=video.shape[2], height=video.shape[1], rate=rate, lossless=True) as w:
            for f in video:
                w.write(f)
    runs = []

    def measure(setting: str, vt: Path, encode_s: float) -> Run:
        out = work / "x.mp4"
        dec, _ = _timed(decode_file, src=vt, dst=out, lossless=True, force=True)
        decoded = np.stack(list(read_frames(out)))
        s = inspect_file(path=vt)
        bpp, tpf = s["bits_per_pixel"], s["tokens"] / s["frames"]
        quality = psnr(video, decoded), ssim(video, decoded)
        return Run(clip, model, setting, bpp, *quality, tpf, len(video) / encode_s, len(video) / dec)

    def todo(setting: str) -> bool:
        return f"{clip}|{model}|{setting}" not in done

    fixed = {f"fixed={share:.0%}": share for share in FIXED_SHARES}
    if todo("full") or any(todo(setting) for setting in fixed):
        full = work / "full.vtok"  # fixed budgets are trimmed from it
        full_s, _ = _timed(encode_file, src=src, dst=full, model=model, threshold=0.0, force=True)
        if todo("full"):
            runs.append(measure("full", full, full_s))
        with VtokReader(full) as reader:  # the header alone: the budget needs no pass over the blocks
            full_per_frame = reader.header.tokens_per_block / reader.header.block_frames
        for setting, share in fixed.items():
            if todo(setting):
                per_frame = share * full_per_frame
                trim_s, _ = _timed(trim_file, src=full, dst=work / "x.vtok", max_tokens_per_frame=per_frame, force=True)
                runs.append(measure(setting, work / "x.vtok", full_s + trim_s))
    for t in thresholds:
        if todo(f"T={t:g}"):
            enc, _ = _timed(encode_file, src=src, dst=work / "x.vtok", model=model, threshold=t, force=True)
            runs.append(measure(f"T={t:g}", work / "x.vtok", enc))
    return runs


def _classical_runs(
    clip: str, video: np.ndarray, rate: Fraction, codec: Classical, work: Path, done: set[str]
) -> list[Run]:
    runs = []
    for crf in codec.crfs:
        if f"{clip}|{codec.name}|crf={crf}" in done:
            continue
        path = work / f"x.{'mkv' if codec.container == 'matroska' else 'mp4'}"
        enc, _ = _timed(codec.encode, video, rate, crf, path)
        dec, decoded = _timed(lambda p: np.stack(list(read_frames(p))), path)
        bpp = path.stat().st_size * 8 / (video.shape[1] * video.shape[2] * len(video))
        runs.append(
            Run(
                clip,
                codec.name,
                f"crf={crf}",
                bpp,
                psnr(video, decoded),
                ssim(video, decoded),
                None,
                len(video) / enc,
                len(video) / dec,
            )
        )
    return runs


def run_bench(
    *,
    clips: list[Path],
    out_dir: Path,
    thresholds: list[float],
    codecs: list[str],
    models: list[str],
    frames: int = 64,
    size: int | None = 256,
    progress: Callable[[str], None] | None = None,
) -> list[Run]:
    """Measure every clip with every model and codec; write DIR/results.json, results.csv and plots.

    Returns every run, those loaded from an earlier results.json included.
    """
    unknown = [c for c in codecs if c not in CLASSICAL]
    if unknown:
        raise MediaError(f"unknown codec {unknown[0]!r}; known: {', '.join(CLASSICAL)}")
    if any(not t > 0 for t in thresholds):
        raise VtokError("--thresholds must all be > 0 (the full budget is always measured)")
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    runs = [Run(**r) for r in json.loads(results_path.read_text())["runs"]] if results_path.exists() else []
    done = {r.key for r in runs}
    torch.manual_seed(0)
    for clip in clips:
        video, rate = load_clip(clip, frames, size)
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            for model in models:
                if progress:
                    progress(f"{clip.name}: {model}")
                runs += _vtok_runs(clip.name, video, rate, model, thresholds, work, done)
                _save(runs, out_dir)
            for name in codecs:
                if progress:
                    progress(f"{clip.name}: {name}")
                runs += _classical_runs(clip.name, video, rate, CLASSICAL[name], work, done)
                _save(runs, out_dir)
    plot(runs, out_dir)
    return runs


def _save(runs: list[Run], out_dir: Path) -> None:
    rows = [asdict(r) for r in sorted(runs, key=lambda r: r.key)]
    tmp = out_dir / "results.json.part"
    tmp.write_text(json.dumps({"runs": rows}, indent=1) + "\n")
    tmp.replace(out_dir / "results.json")
    tmp = out_dir / "results.csv.part"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out_dir / "results.csv")


def _fixed(run: Run) -> bool:
    return run.setting.startswith("fixed=")


def curves(runs: list[Run]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """clip -> codec -> sorted (bits per pixel, PSNR) points; for vtok, the elastic settings only."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in runs:
        if r.setting != "full" and not _fixed(r):
            out.setdefault(r.clip, {}).setdefault(r.codec, []).append((r.bits_per_pixel, r.psnr_db))
    return {c: {k: sorted(v) for k, v in d.items()} for c, d in out.items()}


def bd_rates(runs: list[Run], anchor: str = "libx264") -> dict[str, tuple[float | None, int]]:
    """Mean BD-rate (percent) of every codec against `anchor`, and over how many clips it is defined."""
    per: dict[str, list[float]] = {}
    for codecs in curves(runs).values():
        for name, points in codecs.items():
            if name != anchor and anchor in codecs:
                v = bd_rate(codecs[anchor], points)
                if v is not None:
                    per.setdefault(name, []).append(v)
    names = {r.codec for r in runs} - {anchor}
    return {n: (float(np.mean(per[n])) if per.get(n) else None, len(per.get(n, []))) for n in sorted(names)}


def _mean_curve(chosen: list[Run], x_of: Callable[[Run], float]) -> tuple[list[float], list[float]]:
    """Mean (x, PSNR) per setting over the runs' clips, sorted by x."""
    by_setting: dict[str, list[Run]] = {}
    for r in chosen:
        by_setting.setdefault(r.setting, []).append(r)
    pts = sorted((np.mean([x_of(r) for r in rs]), np.mean([r.psnr_db for r in rs])) for rs in by_setting.values())
    return [p[0] for p in pts], [p[1] for p in pts]


def _draw_rate(ax, runs: list[Run], ms: float) -> None:
    """PSNR against bits per pixel, a curve per codec; fixed budgets are left to the tokens plot."""
    for c in sorted({r.codec for r in runs}):
        xs, ys = _mean_curve([r for r in runs if r.codec == c and not _fixed(r)], lambda r: r.bits_per_pixel)
        ax.plot(xs, ys, "o-", ms=ms, label=c)
    ax.set(xscale="log", xlabel="bits per pixel", ylabel="PSNR (dB, RGB)")


def _draw_tokens(ax, runs: list[Run], ms: float) -> None:
    """PSNR against tokens per frame for each vtok model: elastic thresholds against fixed budgets."""
    for c in sorted({r.codec for r in runs if r.tokens_per_frame is not None}):
        mine = [r for r in runs if r.codec == c]
        xs, ys = _mean_curve([r for r in mine if r.setting.startswith("T=")], lambda r: r.tokens_per_frame)
        ax.plot(xs, ys, "o-", ms=ms, label=f"{c} elastic (thresholds)")
        xs, ys = _mean_curve([r for r in mine if _fixed(r) or r.setting == "full"], lambda r: r.tokens_per_frame)
        ax.plot(xs, ys, "s--", ms=ms, label=f"{c} fixed budgets")
    ax.set(xlabel="tokens per frame", ylabel="PSNR (dB, RGB)")


def plot(runs: list[Run], out_dir: Path) -> None:
    """PSNR against bits per pixel (all codecs) and against tokens per frame (vtok, elastic against
    fixed budgets), each averaged over clips and per clip: four PNGs in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = sorted({r.clip for r in runs})
    for name, draw, title in (
        ("psnr_vs_bpp", _draw_rate, f"mean over {len(clips)} clips"),
        ("psnr_vs_tokens", _draw_tokens, f"elastic against fixed, mean over {len(clips)} clips"),
    ):
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
        draw(ax, runs, ms=6)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png")
        plt.close(fig)

        cols = min(4, len(clips))
        rows = -(-len(clips) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=100, squeeze=False)
        for ax, clip in zip(axes.flat, clips, strict=False):
            draw(ax, [r for r in runs if r.clip == clip], ms=3)
            ax.set_title(clip, fontsize=9)
            ax.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=7)
        for ax in list(axes.flat)[len(clips) :]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_per_clip.png")
        plt.close(fig)

"""The PNGs of `vtok bench`: PSNR against bits per pixel and against tokens per frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vtok.bench.report import Run
from vtok.extras import require

__all__ = ["plot"]


def _mean_curve(chosen: list[Run], x_of: Callable[[Run], float]) -> tuple[list[float], list[float]]:
    """Mean (x, PSNR) per setting over the runs' clips, sorted by x."""
    by_setting: dict[str, list[Run]] = {}
    for r in chosen:
        by_setting.setdefault(r.setting, []).append(r)
    pts = sorted((np.mean([x_of(r) for r in rs]), np.mean([r.psnr_db for r in rs])) for rs in by_setting.values())
    return [p[0] for p in pts], [p[1] for p in pts]


def _draw_rate(ax, runs: list[Run], ms: float) -> None:
    """PSNR against bits per pixel, a curve per codec; fixed shares are left to the tokens plot."""
    for c in sorted({r.codec for r in runs}):
        xs, ys = _mean_curve([r for r in runs if r.codec == c and not r.is_fixed_share], lambda r: r.bits_per_pixel)
        ax.plot(xs, ys, "o-", ms=ms, label=c)
    ax.set(xscale="log", xlabel="bits per pixel", ylabel="PSNR (dB, RGB)")


def _draw_tokens(ax, runs: list[Run], ms: float) -> None:
    """PSNR against tokens per frame for each vtok model: elastic thresholds against fixed budgets."""
    for c in sorted({r.codec for r in runs if r.tokens_per_frame is not None}):
        mine = [r for r in runs if r.codec == c]
        xs, ys = _mean_curve([r for r in mine if r.is_elastic], lambda r: r.tokens_per_frame)
        ax.plot(xs, ys, "o-", ms=ms, label=f"{c} elastic (thresholds)")
        fixed = [r for r in mine if r.is_fixed_share or r.is_full_budget]
        xs, ys = _mean_curve(fixed, lambda r: r.tokens_per_frame)
        ax.plot(xs, ys, "s--", ms=ms, label=f"{c} fixed budgets")
    ax.set(xlabel="tokens per frame", ylabel="PSNR (dB, RGB)")


def _save_mean(plt, draw, runs: list[Run], title: str, path: Path) -> None:
    """One chart of `draw` over all runs."""
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    draw(ax, runs, ms=6)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _save_per_clip(plt, draw, runs: list[Run], path: Path) -> None:
    """A grid of `draw` charts, one per clip, at most four to a row."""
    clips = sorted({r.clip for r in runs})
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
    fig.savefig(path)
    plt.close(fig)


def plot(runs: list[Run], out_dir: Path) -> None:
    """PSNR against bits per pixel (all codecs) and against tokens per frame (vtok, elastic against
    fixed budgets), each averaged over clips and per clip: four PNGs in out_dir."""
    require("matplotlib").use("Agg")  # imported here: only plotting needs it, and it is slow to import
    import matplotlib.pyplot as plt

    n = len({r.clip for r in runs})
    for name, draw, title in (
        ("psnr_vs_bpp", _draw_rate, f"mean over {n} clips"),
        ("psnr_vs_tokens", _draw_tokens, f"elastic against fixed, mean over {n} clips"),
    ):
        _save_mean(plt, draw, runs, title, out_dir / f"{name}.png")
        _save_per_clip(plt, draw, runs, out_dir / f"{name}_per_clip.png")

"""What the bench runs mean: BD-rate against an anchor codec, and what elastic budgets gain over fixed ones."""

import math

import numpy as np

from vtok.bench.runner import Run

__all__ = ["bd_rate", "bd_rates", "elastic_gain", "curves"]

Points = list[tuple[float, float]]
Curve = tuple[np.ndarray, np.ndarray]


def _curve(points: Points, tol: float, best=min) -> Curve:
    """(x, y) points -> arrays sorted by x; points within `tol` in x count once, with the `best` y."""
    kept: Points = []
    for x, y in sorted(points):
        if kept and x - kept[-1][0] < tol:
            kept[-1] = (kept[-1][0], best(kept[-1][1], y))
        else:
            kept.append((x, y))
    return np.array([x for x, _ in kept]), np.array([y for _, y in kept])


def _mean_gap(a: Curve, b: Curve) -> float | None:
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


def bd_rate(anchor: Points, test: Points) -> float | None:
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


def curves(runs: list[Run]) -> dict[str, dict[str, Points]]:
    """clip -> codec -> sorted (bits per pixel, PSNR) points; for vtok, the elastic settings only."""
    out: dict[str, dict[str, Points]] = {}
    for r in runs:
        if not (r.is_full_budget or r.is_fixed_share):
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
        elastic = [(r.tokens_per_frame, r.psnr_db) for r in mine if r.is_elastic]
        fixed = [(r.tokens_per_frame, r.psnr_db) for r in mine if r.is_fixed_share or r.is_full_budget]
        gap = _mean_gap(_curve(fixed, 0.5, max), _curve(elastic, 0.5, max))
        if gap is not None:
            gains.append(gap)
    return (float(np.mean(gains)) if gains else None), len(gains), sum(g > 0 for g in gains)

"""Elastic budgets: for each block, the fewest tokens whose reconstruction keeps MSE under a threshold.

The budget is a level per 32x32-pixel tile (vtok.format.layout): 1, 4 or 16 tokens (stride 8), or 1, 4,
16 or 64 (stride 4). One encode serves every budget; the search runs only the decoder, at most
four passes per block, three in the common case:
1. decode at the full level everywhere. A block that misses the threshold even so is flagged and
   keeps the full budget: one pass, where a batched search would have spent two;
2. decode one level below the full one everywhere. If that meets the threshold, decode the lowest
   level too, and take it if it meets the threshold as well;
3. the passes give each tile's squared error at the levels decoded (the others are estimated by
   geometric interpolation), and tiles are raised greedily, most error removed per token first,
   from the lowest level decoded, until the estimate is under a margin of the threshold;
4. one more pass checks the chosen mix. If it misses, the block takes the lowest uniform level that
   met the threshold: the one below the full budget, or the full budget.
With a model that has context, every pass sees the same context: the previous block as decoded.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vtok.format.layout import LEVELS, tile_costs, tile_grid, tile_keep, tile_size
from vtok.model.tokenizer import Tokenizer

__all__ = ["Budget", "choose_budget", "keep_for"]

MARGIN = 0.9  # aim under the threshold, so the check in pass 3 rarely fails


@dataclass(frozen=True)
class Budget:
    tile_levels: np.ndarray  # int8 (tile rows, tile cols) in 0..levels-1
    keep: torch.Tensor  # bool (rows, cols): what the decoder gets, runs included
    mse: float  # of the chosen reconstruction, pixels on [-1, 1], real pixels and frames only
    missed: bool  # the threshold is missed even at the full budget
    passes: int  # decoder passes spent
    pixels: torch.Tensor | None = None  # float (1, 3, F, H', W'): the chosen reconstruction, if decoded


def keep_for(tile_levels: np.ndarray, run: torch.Tensor, run_keep: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Decoder keep mask bool (rows, cols): runs keep what they had; fresh positions keep their tile's levels.

    tile_levels: int (tile rows, tile cols), numpy (or a CPU tensor); run, run_keep: bool (rows, cols).
    """
    fresh = tile_keep(np.asarray(tile_levels), *run.shape, levels)
    return torch.where(run, run_keep, torch.from_numpy(fresh).to(run.device))


def _tile_sums(err: torch.Tensor, tiles: tuple[int, int], px: int) -> np.ndarray:
    """Squared error (H, W) -> float64 (tile rows, tile cols), summed per px x px tile."""
    h, w = err.shape
    padded = F.pad(err, (0, tiles[1] * px - w, 0, tiles[0] * px - h))
    return padded.reshape(tiles[0], px, tiles[1], px).sum((1, 3)).double().cpu().numpy()


def _greedy(errors: np.ndarray, costs: np.ndarray, target: float, floor: int = 0) -> np.ndarray:
    """Raise tile levels from `floor`, most error removed per token first, until the error sum is
    under target.

    errors: float (L, tr, tc) estimated squared-error sums; costs: int (L, tr, tc), L levels.
    Returns int8 (tr, tc).
    """
    n_levels = errors.shape[0]
    level = np.full(errors.shape[1:], floor, np.int64)
    total = errors[floor].sum()
    flat_err, flat_cost = errors.reshape(n_levels, -1), costs.reshape(n_levels, -1)
    lv = level.reshape(-1)
    while total > target:
        up = np.minimum(lv + 1, n_levels - 1)
        idx = np.arange(lv.size)
        gain = flat_err[lv, idx] - flat_err[up, idx]
        cost = np.maximum(flat_cost[up, idx] - flat_cost[lv, idx], 0) + 1e-3
        score = np.where(lv < n_levels - 1, gain / cost, -np.inf)
        best = int(np.argmax(score))
        if not np.isfinite(score[best]):
            break
        total -= gain[best]
        lv[best] += 1
    return level.astype(np.int8)


def _interpolate(measured: dict[int, np.ndarray], n_levels: int) -> np.ndarray:
    """Per-tile squared errors at every level, float (L, tr, tc): measured where decoded, geometric
    interpolation between the nearest measured levels elsewhere (below the lowest one measured: a
    copy of it, never searched)."""
    known = sorted(measured)
    out = []
    for k in range(n_levels):
        if k in measured or k < known[0]:
            out.append(measured[max(k, known[0])])
            continue
        lo = max(m for m in known if m < k)
        hi = min(m for m in known if m > k)
        t = (k - lo) / (hi - lo)
        out.append(measured[lo] ** (1 - t) * measured[hi] ** t)
    return np.stack(out)


class _Passes:
    """Decoder passes over one block, each giving its pixels and the squared error of every tile."""

    def __init__(self, net: Tokenizer, x, indices, run, run_keep, frames, height, width, context):
        self.net, self.indices, self.run, self.run_keep, self.context = net, indices, run, run_keep, context
        self.levels = net.config.levels
        self.real = x[0, :, :frames, :height, :width]
        self.frames, self.height, self.width = frames, height, width
        self.n = self.real.numel()  # real pixel values: the MSE's denominator
        self.tiles = tile_grid(*run.shape, self.levels)
        self.px = tile_size(self.levels) * net.config.stride
        self.count = 0

    def at(self, level: int) -> tuple[np.ndarray, torch.Tensor]:
        """A uniform level everywhere: (tile levels int8, keep mask)."""
        levels = np.full(self.tiles, level, np.int8)
        return levels, keep_for(levels, self.run, self.run_keep, self.levels)

    def decode(self, keep: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """One pass -> (pixels float (1, 3, F, H', W'), squared error per tile, float64 (tile rows, tile cols))."""
        self.count += 1
        y = self.net.decode(self.indices, keep[None], self.context)
        err = (y[0, :, : self.frames, : self.height, : self.width] - self.real).square().sum((0, 1))
        return y, _tile_sums(err, self.tiles, self.px)

    def budget(self, levels: np.ndarray, keep: torch.Tensor, err: np.ndarray, y: torch.Tensor, missed=False) -> Budget:
        return Budget(levels, keep, float(err.sum() / self.n), missed, self.count, y)


@torch.no_grad()
def choose_budget(
    net: Tokenizer,
    x: torch.Tensor,
    indices: torch.Tensor,
    run: torch.Tensor,
    run_keep: torch.Tensor,
    *,
    frames: int,
    height: int,
    width: int,
    threshold: float,
    context: torch.Tensor | None = None,
) -> Budget:
    """Pick the budget of one block.

    x: float (1, 3, F, H', W') in [-1, 1], padded; indices: int (1, rows, cols), runs resolved;
    run, run_keep: bool (rows, cols); frames, height, width: the real part of the block;
    context: float (1, 3, H', W'), the previous block's last decoded frame, for a model with
    context (None at a keyframe). threshold <= 0 gives the full budget with no decoder pass.
    """
    passes = _Passes(net, x, indices, run, run_keep, frames, height, width, context)
    top, mid = passes.levels - 1, passes.levels - 2
    full, full_keep = passes.at(top)
    if threshold <= 0:
        return Budget(full, full_keep, 0.0, False, 0)

    def meets(err: np.ndarray) -> bool:
        return err.sum() / passes.n <= threshold

    y_full, e_full = passes.decode(full_keep)
    if not meets(e_full):
        return passes.budget(full, full_keep, e_full, y_full, missed=True)
    mid_levels, mid_keep = passes.at(mid)
    y_mid, e_mid = passes.decode(mid_keep)
    measured, floor = {mid: e_mid, top: e_full}, mid
    if meets(e_mid):  # some tiles may go lower still: measure the lowest level too
        low, low_keep = passes.at(0)
        y_low, e_low = passes.decode(low_keep)
        if meets(e_low):
            return passes.budget(low, low_keep, e_low, y_low)
        measured[0], floor = e_low, 0
    estimate = _interpolate(measured, passes.levels)
    levels = _greedy(estimate, tile_costs(run.cpu().numpy(), passes.levels), MARGIN * threshold * passes.n, floor=floor)
    keep = keep_for(levels, run, run_keep, passes.levels)
    y, e = passes.decode(keep)
    if meets(e):
        return passes.budget(levels, keep, e, y)
    if meets(e_mid):  # the mix missed, but one level below the full budget met T
        return passes.budget(mid_levels, mid_keep, e_mid, y_mid)
    return passes.budget(full, full_keep, e_full, y_full)

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
With a predictor (vtok.budget.predict, once it has seen a few passes of the file), a block whose
guessed error at the full budget is well under the threshold starts at pass 2: if that level meets
T, so does the full one, and pass 3 estimates each tile's error at the full level from its measured
error one level below and the guessed ratio of the two. If it misses, pass 1 runs then: the same
passes as without a guess, in another order (only a block flagged after all pays one pass more).
Either way, a block that is not flagged met the threshold in a real decoder pass.
With a model that has context, every pass sees the same context: the previous block as decoded.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from vtok.budget.predict import ErrorPredictor, tile_sums
from vtok.format.layout import LEVELS, tile_costs, tile_grid, tile_keep, tile_size
from vtok.model.tokenizer import Tokenizer

__all__ = ["Budget", "choose_budget", "keep_for"]

MARGIN = 0.9  # aim under the threshold, so the check of a measured mix rarely fails
SURE = 0.7  # start one level below the full budget when the full one is guessed under this share of T


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


def _interpolate(measured: dict[int, np.ndarray], n_levels: int, guess: np.ndarray | None = None) -> np.ndarray:
    """Per-tile squared errors at every level, float (L, tr, tc): measured where decoded, geometric
    interpolation between the nearest measured levels elsewhere (below the lowest one measured: a
    copy of it, never searched). Above the highest one measured: that one times the ratio of the
    two levels in `guess` (L, tr, tc), at most 1."""
    known = sorted(measured)
    out = []
    for k in range(n_levels):
        if k in measured or k < known[0]:
            out.append(measured[max(k, known[0])])
            continue
        if k > known[-1]:
            ratio = guess[k] / np.maximum(guess[known[-1]], 1e-12)
            out.append(measured[known[-1]] * np.minimum(ratio, 1.0))
            continue
        lo = max(m for m in known if m < k)
        hi = min(m for m in known if m > k)
        t = (k - lo) / (hi - lo)
        out.append(measured[lo] ** (1 - t) * measured[hi] ** t)
    return np.stack(out)


class _Passes:
    """Decoder passes over one block, each giving its pixels and the squared error of every tile,
    and teaching the predictor (if any) what it measured."""

    def __init__(self, net: Tokenizer, x, indices, run, run_keep, frames, height, width, context, predictor):
        self.net, self.indices, self.run, self.run_keep, self.context = net, indices, run, run_keep, context
        self.levels = net.config.levels
        self.real = x[0, :, :frames, :height, :width]
        self.frames, self.height, self.width = frames, height, width
        self.n = self.real.numel()  # real pixel values: the MSE's denominator
        self.tiles = tile_grid(*run.shape, self.levels)
        self.px = tile_size(self.levels) * net.config.stride
        self.costs = tile_costs(run.cpu().numpy(), self.levels)
        self.predictor = predictor
        self.detail = predictor.detail(x, frames, height, width) if predictor else None
        self.count = 0
        self.measured: dict[int, np.ndarray] = {}  # squared error per tile, by uniform level decoded
        self.met: dict[int, Budget] = {}  # the uniform levels that met the threshold

    def at(self, level: int) -> np.ndarray:
        """A uniform level everywhere: tile levels int8 (tile rows, tile cols)."""
        return np.full(self.tiles, level, np.int8)

    def uniform(self, level: int, threshold: float) -> Budget:
        """One pass at `level` everywhere, recorded in `measured` (and in `met` if it meets T)."""
        levels = self.at(level)
        keep, y, self.measured[level] = self.decode(levels)
        b = self.budget(levels, keep, y, self.measured[level])
        if b.mse <= threshold:
            self.met[level] = b
        return b

    def decode(self, levels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """One pass at tile `levels` -> (keep mask, pixels float (1, 3, F, H', W'), squared error
        per tile, float64 (tile rows, tile cols))."""
        self.count += 1
        keep = keep_for(levels, self.run, self.run_keep, self.levels)
        y = self.net.decode(self.indices, keep[None], self.context)
        err = (y[0, :, : self.frames, : self.height, : self.width] - self.real).square_().sum((0, 1))
        err = tile_sums(err, self.tiles, self.px)
        if self.predictor:
            self.predictor.learn(levels, err, self.detail)
        return keep, y, err

    def budget(self, levels: np.ndarray, keep: torch.Tensor, y: torch.Tensor, err: np.ndarray, missed=False) -> Budget:
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
    predictor: ErrorPredictor | None = None,
) -> Budget:
    """Pick the budget of one block.

    x: float (1, 3, F, H', W') in [-1, 1], padded; indices: int (1, rows, cols), runs resolved;
    run, run_keep: bool (rows, cols); frames, height, width: the real part of the block;
    context: float (1, 3, H', W'), the previous block's last decoded frame, for a model with
    context (None at a keyframe). threshold <= 0 gives the full budget with no decoder pass.
    predictor: the file's ErrorPredictor, to start from guessed errors (and learn from each pass);
    None measures levels every time.
    """
    top, mid = net.config.levels - 1, net.config.levels - 2
    if threshold <= 0:
        full = np.full(tile_grid(*run.shape, net.config.levels), top, np.int8)
        return Budget(full, keep_for(full, run, run_keep, net.config.levels), 0.0, False, 0)
    passes = _Passes(net, x, indices, run, run_keep, frames, height, width, context, predictor)

    guess = predictor.guess(passes.detail) if predictor else None
    measured, met = passes.measured, passes.met

    def uniform(level: int) -> Budget:
        return passes.uniform(level, threshold)

    def flagged_at_full() -> Budget | None:
        b = uniform(top)
        return None if top in met else replace(b, missed=True)

    if guess is None or guess[top].sum() > SURE * threshold * passes.n:
        if flagged := flagged_at_full():
            return flagged
    floor = mid
    if uniform(mid).mse <= threshold:  # some tiles may go lower still: measure the lowest level too
        if uniform(0).mse <= threshold:
            return met[0]
        floor = 0
    elif top not in measured and (flagged := flagged_at_full()):  # guessed wrong: the full budget may miss
        return flagged
    estimate = _interpolate(measured, passes.levels, guess)
    levels = _greedy(estimate, passes.costs, MARGIN * threshold * passes.n, floor=floor)
    keep, y, err = passes.decode(levels)
    if err.sum() / passes.n <= threshold:
        return passes.budget(levels, keep, y, err)
    # the mix missed: the lowest uniform level that met T (one below the full budget, or the full one)
    return replace(met.get(mid) or met[top], passes=passes.count)

"""Elastic budgets: for each block, the fewest tokens whose reconstruction keeps MSE under a threshold.

The budget is a level per 32x32-pixel tile (vtok.order): 1, 4 or 16 tokens. One encode serves
every budget; the search runs only the decoder, three passes per block at most:
1. decode at the full level everywhere. A block that misses the threshold even so is flagged and
   keeps the full budget: one pass, where a batched search would have spent two;
2. decode at the lowest level everywhere; if that meets the threshold, it is the budget. Otherwise
   the two passes give each tile's squared error at both levels (the middle level's is estimated
   as their geometric mean), and tiles are raised greedily, most error removed per token first,
   until the estimate is under a margin of the threshold;
3. one more pass checks the chosen mix. If it misses, the block takes the full budget.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vtok.model import Tokenizer
from vtok.order import LEVELS, TILE, tile_costs, tile_keep

__all__ = ["Budget", "choose_budget", "keep_for"]

MARGIN = 0.9  # aim under the threshold, so the check in pass 3 rarely fails


@dataclass(frozen=True)
class Budget:
    tile_levels: np.ndarray  # int8 (tile rows, tile cols) in {0, 1, 2}
    keep: torch.Tensor  # bool (rows, cols): what the decoder gets, runs included
    mse: float  # of the chosen reconstruction, pixels on [-1, 1], real pixels and frames only
    missed: bool  # the threshold is missed even at the full budget
    passes: int  # decoder passes spent


def keep_for(tile_levels: torch.Tensor, run: torch.Tensor, run_keep: torch.Tensor) -> torch.Tensor:
    """Decoder keep mask bool (rows, cols): runs keep what they had; fresh positions keep their tile's levels.

    tile_levels: int (tile rows, tile cols); run, run_keep: bool (rows, cols).
    """
    fresh = tile_keep(tile_levels.cpu().numpy(), *run.shape)
    return torch.where(run, run_keep, torch.from_numpy(fresh).to(run.device))


def _tile_sums(err: torch.Tensor, tiles: tuple[int, int]) -> np.ndarray:
    """Squared error (H, W) -> float64 (tile rows, tile cols), summed per 32x32 tile."""
    px = TILE * 8
    h, w = err.shape
    padded = F.pad(err, (0, tiles[1] * px - w, 0, tiles[0] * px - h))
    return padded.reshape(tiles[0], px, tiles[1], px).sum((1, 3)).double().cpu().numpy()


def _greedy(errors: np.ndarray, costs: np.ndarray, target: float) -> np.ndarray:
    """Raise tile levels, most error removed per token first, until the error sum is under target.

    errors: float (LEVELS, tr, tc) estimated squared-error sums; costs: int (LEVELS, tr, tc).
    Returns int8 (tr, tc).
    """
    level = np.zeros(errors.shape[1:], np.int64)
    total = errors[0].sum()
    flat_err, flat_cost = errors.reshape(LEVELS, -1), costs.reshape(LEVELS, -1)
    lv = level.reshape(-1)
    while total > target:
        up = np.minimum(lv + 1, LEVELS - 1)
        idx = np.arange(lv.size)
        gain = flat_err[lv, idx] - flat_err[up, idx]
        cost = np.maximum(flat_cost[up, idx] - flat_cost[lv, idx], 0) + 1e-3
        score = np.where(lv < LEVELS - 1, gain / cost, -np.inf)
        best = int(np.argmax(score))
        if not np.isfinite(score[best]):
            break
        total -= gain[best]
        lv[best] += 1
    return level.astype(np.int8)


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
) -> Budget:
    """Pick the budget of one block.

    x: float (1, 3, F, H', W') in [-1, 1], padded; indices: int (1, rows, cols), runs resolved;
    run, run_keep: bool (rows, cols); frames, height, width: the real part of the block.
    threshold <= 0 gives the full budget with no decoder pass.
    """
    rows, cols = run.shape
    tiles = (-(-rows // TILE), -(-cols // TILE))
    full = torch.full(tiles, LEVELS - 1, dtype=torch.int64, device=x.device)
    if threshold <= 0:
        return Budget(full.to(torch.int8).cpu().numpy(), keep_for(full, run, run_keep), 0.0, False, 0)
    real = x[0, :, :frames, :height, :width]
    n = real.numel()

    def errors(y: torch.Tensor) -> torch.Tensor:  # (3, F, H', W') -> squared error (H, W) on real pixels
        return (y[:, :frames, :height, :width] - real).square().sum((0, 1))

    low = torch.zeros_like(full)
    full_keep = keep_for(full, run, run_keep)
    e2 = _tile_sums(errors(net.decode(indices, full_keep[None])[0]), tiles)
    mse2 = e2.sum() / n
    if mse2 > threshold:
        return Budget(full.to(torch.int8).cpu().numpy(), full_keep, float(mse2), True, 1)
    low_keep = keep_for(low, run, run_keep)
    e0 = _tile_sums(errors(net.decode(indices, low_keep[None])[0]), tiles)
    mse0 = e0.sum() / n
    if mse0 <= threshold:
        return Budget(low.to(torch.int8).cpu().numpy(), low_keep, float(mse0), False, 2)
    estimate = np.stack([e0, np.sqrt(e0 * e2), e2])
    levels = _greedy(estimate, tile_costs(run.cpu().numpy()), MARGIN * threshold * n)
    chosen = torch.from_numpy(levels.astype(np.int64)).to(x.device)
    keep = keep_for(chosen, run, run_keep)
    mse = errors(net.decode(indices, keep[None])[0]).sum().item() / n
    if mse <= threshold:
        return Budget(levels, keep, mse, False, 3)
    return Budget(full.to(torch.int8).cpu().numpy(), full_keep, float(mse2), False, 3)

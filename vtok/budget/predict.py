"""A guess at a block's error at every budget level before any decoder pass, so that the threshold
search (vtok.budget.elastic) can skip the passes whose outcome is foreseeable.

The proxy for level k is the detail a grid of tokens at that level's spacing could not hold by
averaging: the squared difference between the block and its means over F x s x s cells, s being
the pixels one token spans at level k (the whole 32-pixel tile at level 0, the stride at the full
level). The model keeps some of that detail; the ratio of its error to the proxy is learned per
level from the passes at one level everywhere already spent on this file (a moving average of log
ratios), so it follows the model and the footage.

Measured on six test clips (vtok-fsq, 8 blocks each, every level decoded): a block's ratio moves by
10 to 25% from one block to the next, so block totals are guessed well. A tile's log error and log
proxy correlate at 0.85 to 0.90, but how a tile's error grows from one level to the next is barely
foreseen (log(e2 / e3) per tile: spread 0.36, 0.33 after the proxy), so mixes chosen from guessed
tiles cost far more tokens than mixes chosen from measured levels (+60% at T=0.01); the search
therefore uses guesses to skip passes, and measures what it mixes.
"""

import numpy as np
import torch
import torch.nn.functional as F

from vtok.format.layout import tile_grid, tile_size

__all__ = ["ErrorPredictor", "tile_sums"]

RATE = 0.5  # weight of the newest block in the moving average of a level's log ratio


def tile_sums(err: torch.Tensor, tiles: tuple[int, int], px: int) -> np.ndarray:
    """Squared error (H, W) -> float64 (tile rows, tile cols), summed per px x px tile (in float64:
    sums of squares minus squared means cancel)."""
    h, w = err.shape
    padded = F.pad(err.double(), (0, tiles[1] * px - w, 0, tiles[0] * px - h))
    return padded.reshape(tiles[0], px, tiles[1], px).sum((1, 3)).cpu().numpy()


def _monotone(guess: np.ndarray) -> np.ndarray:
    """Errors never grow with the level: each level at least the one above it. (L, tr, tc), in place."""
    for k in range(len(guess) - 2, -1, -1):
        np.maximum(guess[k], guess[k + 1], out=guess[k])
    return guess


class ErrorPredictor:
    """Squared-error guesses per tile at every level, for the blocks of one file, in order.

    levels, stride: the model's layout (vtok.format.layout). Use one predictor per file: it learns
    from each pass at one level everywhere (`learn`) and guesses for the next blocks (`guess`):
    exp(log_ratio[k]) x detail[k].
    """

    def __init__(self, levels: int, stride: int):
        self.levels, self.stride = levels, stride
        self.px = tile_size(levels) * stride  # pixels per tile side
        self.log_ratio = np.full(levels, np.nan)  # log(model error / proxy) per level; nan: not seen yet

    def detail(self, x: torch.Tensor, frames: int, height: int, width: int) -> np.ndarray:
        """The proxy of each level: x float (1, 3, F, H', W') in [-1, 1], H' and W' multiples of the
        stride -> float64 (levels, tile rows, tile cols), per tile the sum over its cells of the
        squared deviations from the cell's mean. Only the real frames and pixels count; cells past
        the bottom or right edge repeat the edge cells' means.
        """
        f, s = x.shape[2], self.stride
        h, w = x.shape[-2:]
        tiles = tile_grid(h // s, w // s, self.levels)
        x = x[0].float()
        real = torch.zeros(h, w, device=x.device)
        real[:height, :width] = frames / f  # each pixel's share of real frames
        sq = sum(x[c].square().sum(0) for c in range(3))  # (H', W'), a channel at a time: 720p is large
        sq = tile_sums(sq * real, tiles, self.px)
        # sum of squares minus count x mean^2 per cell, from the cell means of the finest level up
        cells = (tiles[0] * self.px // s, tiles[1] * self.px // s)
        pad = (0, cells[1] - w // s, 0, cells[0] - h // s)
        means = F.pad(F.avg_pool3d(x[None], (f, s, s))[:, :, 0].double(), pad, mode="replicate")[0]
        weights = F.pad(F.avg_pool2d(real[None].double(), s), pad)[0]  # real share of each cell
        out = []
        for k in range(self.levels - 1, -1, -1):
            cell = (self.stride << (self.levels - 1 - k)) ** 2 * f
            kept = means.square().sum(0) * weights * cell
            kept = kept.reshape(tiles[0], kept.shape[0] // tiles[0], tiles[1], kept.shape[1] // tiles[1])
            out.append(np.maximum(sq - kept.sum((1, 3)).cpu().numpy(), 0.0))
            if k:
                means, weights = F.avg_pool2d(means[None], 2)[0], F.avg_pool2d(weights[None], 2)[0]
        return np.stack(out[::-1])

    def guess(self, detail: np.ndarray) -> np.ndarray | None:
        """Guessed errors float64 (levels, tile rows, tile cols) from `detail`, or None until the
        full level and one other have been measured."""
        known = ~np.isnan(self.log_ratio)
        if not known[-1] or known.sum() < 2:
            return None
        at = np.flatnonzero(known)
        log_ratio = np.interp(np.arange(self.levels), at, self.log_ratio[at])  # levels between: interpolated
        return _monotone(np.exp(log_ratio)[:, None, None] * detail)

    def learn(self, tile_levels: np.ndarray, err: np.ndarray, detail: np.ndarray) -> None:
        """Update from one decoder pass: tile_levels int (tr, tc), err float (tr, tc) its measured
        squared-error sums, detail as from `detail` for the same block. Only a pass at one level
        everywhere teaches: in a mix, a tile's error also depends on its neighbours' levels."""
        k = int(tile_levels.flat[0])
        if not (tile_levels == k).all():
            return
        measured, proxy = err.sum(), detail[k].sum()
        if measured > 0 and proxy > 0:
            r, old = np.log(measured / proxy), self.log_ratio[k]
            self.log_ratio[k] = r if np.isnan(old) else old + RATE * (r - old)

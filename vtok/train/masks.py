"""Random keep masks, to train the decoder to infill the tokens a smaller budget drops."""

import numpy as np
import torch

from vtok.format.layout import position_levels, prefix_order, tile_size

__all__ = ["MaskSampler", "PREFIX_SCALES"]

PREFIX_SCALES = ("linear", "log")


class MaskSampler:
    """Random keep masks bool (B, h, w) over a grid of h x w token positions.

    A share `full_share` (0 to 1) of the samples keep everything; the rest are split evenly between
    a random prefix of the coarse-to-fine order (from one token per tile up) and a random level per
    tile, as the per-tile elastic budget does. The prefix's length is uniform over token counts with
    `prefix_scale` "linear", or over their logarithm with "log", which gives each doubling of the
    budget the same share, as the quality curve's budgets (16, 32, ... 1,024 tokens per frame) do.
    """

    def __init__(
        self, h: int, w: int, device: str, levels: int = 3, full_share: float = 1 / 3, prefix_scale: str = "linear"
    ):
        if prefix_scale not in PREFIX_SCALES:
            raise ValueError(f"unknown prefix scale {prefix_scale!r}")
        self.n = h * w
        self.full_share = full_share
        self.log_prefix = prefix_scale == "log"
        self.n_levels, self.tile = levels, tile_size(levels)
        rank = np.empty(self.n, np.int64)
        rank[prefix_order(h, w, levels)] = np.arange(self.n)
        self.rank = torch.from_numpy(rank.reshape(h, w)).to(device)
        self.levels = torch.from_numpy(position_levels(h, w, levels).astype(np.int64)).to(device)
        self.tiles = (-(-h // self.tile), -(-w // self.tile))

    def __call__(self, b: int, gen: torch.Generator) -> torch.Tensor:
        """b masks bool (b, h, w) on the sampler's device, drawn from `gen` (a CPU generator)."""
        h, w = self.rank.shape
        device = self.rank.device
        u = torch.rand(b, generator=gen).to(device)
        mode = (u >= self.full_share).long() + (u >= (1 + self.full_share) / 2).long()  # 0 full, 1 prefix, 2 tiles
        n = self.prefix_lengths(b, gen).to(device)
        prefix = self.rank.unsqueeze(0) < n.view(b, 1, 1)
        tile_levels = torch.randint(0, self.n_levels, (b, *self.tiles), generator=gen).to(device)
        t = self.tile
        per_position = tile_levels.repeat_interleave(t, 1).repeat_interleave(t, 2)[:, :h, :w]
        tiles = self.levels.unsqueeze(0) <= per_position
        full = torch.ones_like(prefix)
        m = mode.view(b, 1, 1)
        return torch.where(m == 0, full, torch.where(m == 1, prefix, tiles))

    def prefix_lengths(self, b: int, gen: torch.Generator) -> torch.Tensor:
        """b prefix lengths int64 (b,) on the CPU, from one token per tile to all, drawn from `gen`."""
        low = max(1, self.n // self.tile**2)
        if self.log_prefix:
            return (low * ((self.n + 1) / low) ** torch.rand(b, generator=gen)).long().clamp_(low, self.n)
        return torch.randint(low, self.n + 1, (b,), generator=gen)

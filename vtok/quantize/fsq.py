"""Finite scalar quantization (Mentzer et al., 2023, "FSQ: Vector Quantization Made Simple").

Each latent channel i is bounded to L_i values, so a D-channel latent has prod(L_i) codes.
The default levels (8,8,8,5,5,5) give 64,000 codes, which fit in uint16.
"""

import math

import torch
from torch import nn

__all__ = ["FSQ"]


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass; pass the gradient straight through in the backward pass."""
    return x + (x.round() - x).detach()


class FSQ(nn.Module):
    """FSQ over the channel axis (dim 1) of a latent (B, D, ...).

    Holds no learned parameters and no buffers, so nothing derived lands in a checkpoint.
    """

    def __init__(self, levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)):
        super().__init__()
        if not levels or any(int(n) < 2 for n in levels):
            raise ValueError(f"FSQ levels must each be >= 2, got {levels}")
        self.levels = tuple(int(n) for n in levels)
        self.dim = len(self.levels)
        self.codebook_size = math.prod(self.levels)
        self.spec = {"kind": "fsq", "levels": list(self.levels)}

    def _table(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Levels and mixed-radix basis, each (1, D, 1, ...) shaped to broadcast against `like` (B, D, ...)."""
        shape = (1, self.dim) + (1,) * (like.dim() - 2)
        levels = torch.tensor(self.levels, device=like.device, dtype=torch.int64)
        basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]), 0)
        return levels.view(shape), basis.view(shape)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash z (B, D, ...) float into (-L/2, L/2) per channel; even L is shifted by half a step."""
        levels = torch.tensor(self.levels, device=z.device, dtype=z.dtype).view((1, self.dim) + (1,) * (z.dim() - 2))
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize z (B, D, ...) float. Returns (zq, indices): zq in [-1, 1] with straight-through
        gradients, and indices int64 (B, ...) in [0, codebook_size)."""
        q = _round_ste(self.bound(z))
        levels, _ = self._table(z)
        half_width = (levels // 2).to(z.dtype)
        codes = (q.detach() + half_width).long()
        return q / half_width, self.codes_to_indices(codes)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int (B, D, ...) with codes[:, i] in [0, L_i) -> indices int64 (B, ...)."""
        _, basis = self._table(codes)
        return (codes.long() * basis).sum(dim=1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices int (B, ...) in [0, codebook_size) -> codes int64 (B, D, ...)."""
        idx = indices.long().unsqueeze(1)
        levels, basis = self._table(idx)
        return (idx // basis) % levels

    def dequantize(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """indices int (B, ...) -> zq (B, D, ...) in [-1, 1], exactly what `forward` returns for them."""
        codes = self.indices_to_codes(indices)
        levels, _ = self._table(codes)
        half_width = levels // 2
        return ((codes - half_width).to(dtype)) / half_width.to(dtype)

"""Lookup-free quantization (Yu et al., 2023, MAGVIT-v2): each latent channel is one bit, its sign.

With 16 channels the codebook has 2^16 = 65,536 codes, which fit in uint16; with more (MAGVIT-v2
has 18, vtok-lfq 20), indices are stored as uint32. Training adds an entropy penalty so that the
codebook is used evenly instead of collapsing to a few codes.
"""

import torch
from torch import nn

__all__ = ["LFQ"]


class LFQ(nn.Module):
    """LFQ over the channel axis (dim 1) of a latent (B, D, ...), D = bits. No parameters, no buffers."""

    def __init__(self, bits: int = 16):
        super().__init__()
        if not 1 <= int(bits) <= 31:
            raise ValueError(f"LFQ bits must be in 1..31 so that indices fit int32, got {bits}")
        self.bits = int(bits)
        self.dim = self.bits
        self.codebook_size = 2**self.bits
        self.spec = {"kind": "lfq", "bits": self.bits}

    def _basis(self, like: torch.Tensor) -> torch.Tensor:
        """Powers of two, (1, D, 1, ...) to broadcast against `like` (B, D, ...)."""
        shape = (1, self.dim) + (1,) * (like.dim() - 2)
        return (2 ** torch.arange(self.dim, device=like.device, dtype=torch.int64)).view(shape)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize z (B, D, ...) float. Returns (zq, indices): zq in {-1, 1} with straight-through
        gradients, and indices int64 (B, ...) in [0, 2^bits)."""
        q = torch.where(z > 0, 1.0, -1.0).to(z.dtype)
        zq = z + (q - z).detach()
        return zq, self.codes_to_indices((z > 0).long())

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int (B, D, ...) of bits in {0, 1} -> indices int64 (B, ...)."""
        return (codes.long() * self._basis(codes)).sum(dim=1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices int (B, ...) in [0, 2^bits) -> codes int64 (B, D, ...) of bits in {0, 1}."""
        idx = indices.long().unsqueeze(1)
        return (idx // self._basis(idx)) % 2

    def dequantize(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """indices int (B, ...) -> zq (B, D, ...) in {-1, 1}."""
        return self.indices_to_codes(indices).to(dtype) * 2 - 1

    def commitment(self, z: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of z (B, D, ...) to its code: keeps latents near +-1, where the
        straight-through gradient is honest, instead of drifting to large magnitudes."""
        return (z.float() - torch.where(z > 0, 1.0, -1.0)).square().mean()

    def entropy_penalty(self, z: torch.Tensor, temperature: float = 1.0, group: int = 8) -> torch.Tensor:
        """Per-sample code entropy minus batch code entropy, for z (B, D, ...); lower is better.

        The bits are split into ceil(D / group) equal groups of at most `group` bits (16 bits: two
        of 8; 18 bits: three of 6; 20 bits: three of 6 as well, the last two bits left out: bits
        left over by an uneven split are not counted), and each group gets an exact softmax over its
        sub-codes (logits: 2 z . c for c in {-1, 1}^g, i.e. minus the squared distance). Unlike
        treating every bit alone, this sees bits that copy each other: a codebook where all bits
        agree has high per-bit entropy but only two codes. Groups are taken as independent.
        """
        n = -(-self.dim // group)
        g = self.dim // n
        zf = z.float().movedim(1, -1).reshape(-1, self.dim)[:, : n * g].reshape(-1, n, g)
        sub = torch.arange(2**g, device=z.device)
        codes = ((sub[:, None] >> torch.arange(g, device=z.device)) & 1).float() * 2 - 1  # (2^g, g)
        logp = torch.log_softmax(2 * zf @ codes.T / temperature, dim=-1)  # (N, groups, 2^g)
        per_sample = -(logp.exp() * logp).sum(-1).mean(0).sum()
        mean = logp.exp().mean(0).clamp_min(1e-9)
        batch = -(mean * mean.log()).sum()
        return per_sample - batch

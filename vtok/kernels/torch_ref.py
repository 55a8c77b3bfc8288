"""Torch reference implementations of vtok's kernels: the CPU path, and the truth the CuPy kernels match."""

import torch
import torch.nn.functional as F

from vtok.format.layout import PATCH

__all__ = ["fsq_indices", "lfq_indices", "rlt_update"]


def _index_dtype(codebook: int) -> torch.dtype:
    return torch.uint16 if codebook <= 1 << 16 else torch.int32


def fsq_indices(z: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """z float (B, D, h, w) -> indices (B, h, w): what vtok.quantize.FSQ gives, packed to the stored type."""
    from vtok.quantize import FSQ

    q = FSQ(tuple(levels))
    codebook = q.codebook_size
    return q(z.float())[1].to(_index_dtype(codebook))


def lfq_indices(z: torch.Tensor) -> torch.Tensor:
    """z float (B, D, h, w) -> indices (B, h, w), packed to the stored type: bit d is set where z[:, d] > 0."""
    weights = 2 ** torch.arange(z.shape[1], device=z.device, dtype=torch.int64)
    return ((z > 0).long() * weights.view(1, -1, 1, 1)).sum(1).to(_index_dtype(1 << z.shape[1]))


def rlt_update(block: torch.Tensor, start: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mean absolute difference per 16x16 patch (pixels on [0, 1]) of block against start, both float32
    (3, F, H, W) in [-1, 1]; start takes block's pixels where the patch moved. Returns bool static mask."""
    h, w = block.shape[-2:]
    diff = torch.sub(block, start).abs_().mean(dim=(0, 1), dtype=torch.float32)
    mad = F.avg_pool2d(diff[None, None], PATCH, ceil_mode=True)[0, 0] / 2
    static = mad < threshold
    if not static.any():  # the common cases pass over start once, or not at all (2.5x at 720p)
        start.copy_(block)
    elif not static.all():
        moved = (~static).repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)[:h, :w]
        torch.where(moved, block, start, out=start)
    return static

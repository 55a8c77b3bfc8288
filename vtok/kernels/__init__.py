"""Fused kernels for the hot spots of encoding, with one torch reference per kernel.

Both backends expose the same verbs:
- `fsq_indices(z, levels)`: FSQ bound, round and mixed-radix index, packed to uint16 (uint32 if needed);
- `lfq_indices(z)`: LFQ sign bits to index, packed to uint16 (uint32 above 16 bits);
- `rlt_update(block, start, threshold)`: per-patch mean absolute difference against the run start,
  the threshold, and the run-start update, in one pass over the block.

`backend_for(tensor)` picks CuPy for CUDA tensors when CuPy imports, and torch otherwise; the
`VTOK_KERNELS=torch` environment variable forces the reference. CuPy is imported only then.
"""

import os

import torch

from vtok.kernels import torch_ref

__all__ = ["backend_for", "fsq_indices", "lfq_indices", "rlt_update"]


def backend_for(tensor: torch.Tensor):
    """The kernel module for `tensor`: vtok.kernels.cupy_impl on CUDA when available, else torch_ref."""
    if tensor.is_cuda and os.environ.get("VTOK_KERNELS", "auto") != "torch":
        try:
            from vtok.kernels import cupy_impl
        except ImportError:
            return torch_ref
        return cupy_impl
    return torch_ref


def fsq_indices(z: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """z float (B, D, h, w) -> indices (B, h, w), uint16 when prod(levels) <= 65536 else int32."""
    return backend_for(z).fsq_indices(z, levels)


def lfq_indices(z: torch.Tensor) -> torch.Tensor:
    """z float (B, D, h, w), D <= 31 -> indices (B, h, w), uint16 when D <= 16 else int32."""
    return backend_for(z).lfq_indices(z)


def rlt_update(block: torch.Tensor, start: torch.Tensor, threshold: float) -> torch.Tensor:
    """block, start float32 (3, F, H, W) in [-1, 1], H and W multiples of 8; start is updated in place
    where a patch moved. Returns bool (ceil(H/16), ceil(W/16)): True where the patch continues its run."""
    return backend_for(block).rlt_update(block, start, threshold)

"""Run-length tokenization (RLT, Choudhury et al., 2024): patches that did not change keep no tokens.

A patch of PATCH x PATCH pixels (2 x 2 token positions at stride 8, 4 x 4 at stride 4) continues
its run when the mean absolute difference between its pixels in this block and in the block where
its run started is under the threshold. Comparing with the run's start, not with the previous
block as RLT does, keeps slow drift from piling up unnoticed. The decoder reuses the codes it had for such positions.
"""

import torch

from vtok.format.layout import FIRST_STRIDE, PATCH
from vtok.kernels import rlt_update

__all__ = ["DEFAULT_THRESHOLD", "RunTracker"]
DEFAULT_THRESHOLD = 6 / 255  # RLT's rule: mean absolute difference over a patch, on [0, 1] pixels


class RunTracker:
    """Which token positions of each block continue a run, block after block.

    Keeps the pixels of each patch as they were when its run started: memory of one block.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, stride: int = FIRST_STRIDE):
        self.threshold, self.stride = threshold, stride
        self._start: torch.Tensor | None = None

    def update(self, block: torch.Tensor) -> torch.Tensor:
        """block: float (3, F, H, W) in [-1, 1]. Returns bool (H / s, W / s), s the token stride: True
        where the position continues its run (store no tokens). Patches that changed start a new run
        at this block."""
        h, w = block.shape[-2:]
        s = self.stride
        if self.threshold <= 0 or self._start is None or self._start.shape != block.shape:
            if self.threshold > 0:  # with runs off there is no run start to keep
                self._start = block.float().contiguous().clone()
            return torch.zeros(h // s, w // s, dtype=torch.bool, device=block.device)
        static = rlt_update(block, self._start, self.threshold)  # one fused pass; updates the run starts
        return static.repeat_interleave(PATCH // s, 0).repeat_interleave(PATCH // s, 1)[: h // s, : w // s]

    def restart(self) -> None:
        """Start every run afresh at the next block (a keyframe)."""
        self._start = None

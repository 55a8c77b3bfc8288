"""Run-length tokenization (RLT, Choudhury et al., 2024): patches that did not change keep no tokens.

A patch of PATCH x PATCH pixels (2 x 2 token positions) continues its run when the mean absolute
difference between its pixels in this block and in the block where its run started is under the
threshold. Comparing with the run's start, not with the previous block as RLT does, keeps slow
drift from piling up unnoticed. The decoder reuses the codes it had for such positions.
"""

import torch

__all__ = ["PATCH", "DEFAULT_THRESHOLD", "RunTracker", "patch_mad"]

PATCH = 16
DEFAULT_THRESHOLD = 6 / 255  # RLT's rule: mean absolute difference over a patch, on [0, 1] pixels


def patch_mad(block: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per patch, on [0, 1] pixel scale.

    block, start: float (3, F, H, W) in [-1, 1], H and W multiples of 8. Patches at the right and
    bottom edges may be cut short; they average what they hold.
    Returns float32 (ceil(H / PATCH), ceil(W / PATCH)).
    """
    diff = (block - start).abs().mean(dim=(0, 1), dtype=torch.float32)  # (H, W)
    return torch.nn.functional.avg_pool2d(diff[None, None], PATCH, ceil_mode=True)[0, 0] / 2


class RunTracker:
    """Which token positions of each block continue a run, block after block.

    Keeps the pixels of each patch as they were when its run started: memory of one block.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self._start: torch.Tensor | None = None

    def update(self, block: torch.Tensor) -> torch.Tensor:
        """block: float (3, F, H, W) in [-1, 1]. Returns bool (H / 8, W / 8): True where the position
        continues its run (store no tokens). Patches that changed start a new run at this block."""
        if self._start is None or self._start.shape != block.shape or self.threshold <= 0:
            self._start = block.clone()
            h, w = block.shape[-2:]
            return torch.zeros(h // 8, w // 8, dtype=torch.bool, device=block.device)
        h, w = block.shape[-2:]
        static = patch_mad(block, self._start) < self.threshold
        pixel_moved = (~static).repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)[:h, :w]
        self._start = torch.where(pixel_moved, block, self._start)
        return static.repeat_interleave(PATCH // 8, 0).repeat_interleave(PATCH // 8, 1)[: h // 8, : w // 8]

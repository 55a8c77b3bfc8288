"""Between video frames and model pixels: uint8 RGB frames on one side, float [-1, 1] blocks on the other."""

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["to_model", "to_frames"]


def to_model(blocks: np.ndarray | torch.Tensor, stride: int = 1, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (B, F, H, W, 3) -> float32 (B, 3, F, H', W') in [-1, 1] on `device`, H' and W' padded up
    to a multiple of `stride` by repeating the edge pixels."""
    if isinstance(blocks, np.ndarray):
        blocks = torch.from_numpy(np.ascontiguousarray(blocks))
    # contiguous before the float conversion: one cheap uint8 copy, and every later pass runs faster
    x = blocks.to(device).permute(0, 4, 1, 2, 3).contiguous().float().div_(127.5).sub_(1)
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % stride, -w % stride
    if pad_h or pad_w:
        b, c, f = x.shape[:3]
        x = F.pad(x.reshape(b, c * f, h, w), (0, pad_w, 0, pad_h), mode="replicate").reshape(
            b, c, f, h + pad_h, w + pad_w
        )
    return x


def to_frames(x: torch.Tensor, height: int, width: int, *, overwrite: bool = False) -> np.ndarray:
    """float (B, 3, F, H', W') in [-1, 1] -> uint8 (B, F, height, width, 3), cropped, on the CPU.
    overwrite: work in x itself instead of a copy (x is garbage afterwards; 45 MB less at 720p)."""
    x = x[..., :height, :width]
    x = (x.add_(1) if overwrite else x.add(1)).mul_(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()

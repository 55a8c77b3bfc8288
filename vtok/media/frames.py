"""Operations on decoded frames, uint8 (T, H, W, 3) RGB arrays."""

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["centre_crop"]


def centre_crop(frames: np.ndarray, size: int = 256) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3); the short side is first scaled up to `size`
    (bilinear) where it is smaller."""
    t, h, w, _ = frames.shape
    if min(h, w) < size:
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        s = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bilinear")
        frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        h, w = frames.shape[1:3]
    y0, x0 = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frames[:, y0 : y0 + size, x0 : x0 + size])

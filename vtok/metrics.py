"""Picture quality: PSNR and SSIM, one copy each, on the scales vtok uses."""

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "psnr_from_mse", "ssim", "MODEL_PEAK"]

MODEL_PEAK = 2.0  # peak-to-peak of model pixels, which span [-1, 1]


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error on a scale whose peak-to-peak is `peak` (255 for uint8
    pixels, MODEL_PEAK for model pixels; an MSE of 0.003 on [-1, 1] is about 31.2 dB)."""
    return 10 * math.log10(peak**2 / max(mse, 1e-12))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 frames a against b (any equal shapes), 8-bit peak, from the pooled MSE."""
    return psnr_from_mse(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al., 2004; 11x11 Gaussian window, sigma 1.5) over frames and RGB channels.

    a, b: uint8 (T, H, W, 3).
    """
    x = torch.from_numpy(a).permute(0, 3, 1, 2).reshape(-1, 1, *a.shape[1:3]).float()
    y = torch.from_numpy(b).permute(0, 3, 1, 2).reshape(-1, 1, *b.shape[1:3]).float()
    g = _gaussian()
    win = (g[:, None] * g[None, :])[None, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())

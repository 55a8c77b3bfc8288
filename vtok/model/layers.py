"""The tokenizer's layers: a channel RMS norm, a residual block, a wide view (a branch at half the
resolution), and the stride-4 decoder and encoder passes.

Shapes are (B, C, H, W) throughout; all are fully convolutional, so any height and width work.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelNorm", "ResBlock", "WideView", "FineDecoder", "encoder_pass", "correction"]


class _RmsNormOverChannels(torch.autograd.Function):
    """y = x * rsqrt(mean over channels of x^2 + 1e-6) * weight, with its gradient written out in
    fewer passes over full-size tensors than autograd's graph of the same ops, which made a bf16
    training step 3% to 8% slower (benchmarks/train_speed.py). x (B, C, H, W), weight (1, C, 1, 1),
    one dtype."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # a sum times 1/C, not mean(1): bit-identical where C is a power of two, and 3.5x faster
        # in bf16 on the CPU, where mean(1) took nearly as long as all the encoder's convolutions
        r = torch.rsqrt(x.square().sum(1, keepdim=True).mul_(1.0 / x.shape[1]).add_(1e-6))
        normed = x * r
        ctx.save_for_backward(normed, weight, r)
        return normed * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        normed, weight, r = ctx.saved_tensors
        g = grad * weight
        mean = (g * normed).sum(1, keepdim=True).mul_(1.0 / normed.shape[1])
        dx = torch.addcmul(g, normed, mean, value=-1).mul_(r)
        dw = (grad * normed).sum((0, 2, 3), keepdim=True) if ctx.needs_input_grad[1] else None
        return dx, dw


class ChannelNorm(nn.Module):
    """RMS norm over channels at each position: keeps activations bounded without mixing positions,
    so a token depends only on its neighbourhood, never on the statistics of the whole frame."""

    def __init__(self, ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, ch, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in x's dtype: a float32 weight would turn bf16 activations (autocast) into float32 ones,
        # and every later op would pass over twice the bytes (the bf16 encoder runs 1.3x faster)
        return _RmsNormOverChannels.apply(x, self.weight.to(x.dtype))


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = ChannelNorm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.bias)
        self.conv2.weight.data.mul_(0.1)  # start near identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


def _low_branch(c: int, lc: int, depth: int, wide: int = 0) -> nn.Sequential:
    """(B, c, h, w) with h and w even -> (B, c, h, w): residual blocks at half the resolution;
    wide > 0 adds after them a WideView of `wide` channels, at half the branch's resolution."""
    return nn.Sequential(
        nn.Conv2d(c, lc, 2, stride=2),
        *[ResBlock(lc) for _ in range(depth)],
        *([WideView(lc, wide, depth)] if wide else []),
        ChannelNorm(lc),
        nn.SiLU(),
        nn.Conv2d(lc, 4 * c, 1),
        nn.PixelShuffle(2),
    )


def _run_low(low: nn.Sequential, y: torch.Tensor) -> torch.Tensor:
    """low(y) for y (B, c, h, w) of any h and w: an odd side is padded by replication, and cropped after."""
    h, w = y.shape[-2:]
    odd = F.pad(y, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else y
    return low(odd)[..., :h, :w]


class WideView(nn.Module):
    """y + a branch at half y's resolution: (B, c, h, w) -> (B, c, h, w), with a view twice as wide
    for the same depth. The branch's output starts at zero, so a model given one works as before."""

    def __init__(self, c: int, lc: int, depth: int):
        super().__init__()
        self.low = _low_branch(c, lc, depth)
        nn.init.zeros_(self.low[-2].weight)
        nn.init.zeros_(self.low[-2].bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + _run_low(self.low, y)


class FineDecoder(nn.Module):
    """Stride-4 decoder: features at 1/4 resolution plus a 1/8 branch for a wider view; wide > 0
    gives that branch one of its own at 1/16, of that many channels (WideView).

    (B, C_in, h, w) -> (B, 3 * F * 16, h, w), to be unfolded by pixel_shuffle(4).
    """

    def __init__(self, c_in: int, c: int, lc: int, depth: int, stem: int, wide: int = 0):
        super().__init__()
        self.inp = nn.Conv2d(c_in, c, 3, padding=1)
        self.low = _low_branch(c, lc, depth, wide)
        self.high = nn.Sequential(
            *[ResBlock(c) for _ in range(depth)], ChannelNorm(c), nn.SiLU(), nn.Conv2d(c, stem, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inp(x)
        return self.high(y + _run_low(self.low, y))


def encoder_pass(channels: int, width: int, depth: int, dim: int, wide: int = 0) -> nn.Sequential:
    """One stride-4 encoder pass: (B, channels, h, w) -> latent-sized (B, dim, h, w), at token
    resolution: the encoder itself, and each feedback pass. wide > 0 adds, after the residual
    blocks, a branch of that many channels at 1/8 resolution (WideView)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 1),
        *[ResBlock(width) for _ in range(depth)],
        *([WideView(width, wide, depth)] if wide else []),
        ChannelNorm(width),
        nn.SiLU(),
        nn.Conv2d(width, dim, 1),
    )


def correction(channels: int, width: int, depth: int, dim: int, wide: int = 0) -> nn.Sequential:
    """A feedback pass (`encoder_pass`, with a WideView of `wide` channels if wide > 0) whose
    correction starts at zero, so a model given a new pass codes exactly as before."""
    net = encoder_pass(channels, width, depth, dim, wide)
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net

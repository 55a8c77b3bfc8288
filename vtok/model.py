"""The tokenizer: a small, fully convolutional autoencoder around an FSQ or LFQ quantizer.

A block of F frames (default 4) is folded into channels by a space-to-depth stem, so the heavy
convolutions run at 1/4 and 1/8 of the resolution: cheap on a CPU. Each block is encoded from its
own frames only, so the model is causal in time at block granularity, and any height and width
that are multiples of `stride` work. One token covers F x 8 x 8 pixels.

The decoder also takes a keep mask: it infills the positions whose tokens were dropped, so a
prefix of the coarse-to-fine order (vtok.order) decodes to a usable picture. The codes never
depend on the budget: one encode serves every budget.
"""

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vtok import kernels
from vtok.quantize import make_quantizer

__all__ = ["ModelConfig", "Tokenizer", "ARCHITECTURES"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a tokenizer; stored in the weights manifest and in every `.vtok` header."""

    quantizer: dict = field(default_factory=lambda: {"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]})
    frames: int = 4  # frames per block: the temporal size of one token
    width: int = 96  # channels at 1/4 resolution
    latent_width: int = 256  # channels at 1/8 resolution
    encoder_depth: int = 2  # residual blocks per encoder stage
    decoder_depth: int = 3  # residual blocks per decoder stage: decoding quality pays most

    @property
    def stride(self) -> int:
        """Spatial size of one token in pixels; inputs are padded to a multiple of it."""
        return 8

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


# Named architectures that `vtok train` can build from scratch.
ARCHITECTURES: dict[str, ModelConfig] = {
    "vtok-fsq": ModelConfig(),
    "vtok-lfq": ModelConfig(quantizer={"kind": "lfq", "bits": 16}),
}


class _ChannelNorm(nn.Module):
    """RMS norm over channels at each position: keeps activations bounded without mixing positions,
    so a token depends only on its neighbourhood, never on the statistics of the whole frame."""

    def __init__(self, ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, ch, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-6) * self.weight


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm1, self.conv1 = _ChannelNorm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = _ChannelNorm(ch), nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.bias)
        self.conv2.weight.data.mul_(0.1)  # start near identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class Tokenizer(nn.Module):
    """Encoder, quantizer and decoder.

    Pixels are float32 (B, 3, F, H, W) in [-1, 1] with H and W multiples of `config.stride`.
    Token indices are int64 (B, H/8, W/8) in [0, codebook_size).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.quantizer = make_quantizer(config.quantizer)
        c, lc, stem = config.width, config.latent_width, 3 * config.frames * 16
        de, dd = config.encoder_depth, config.decoder_depth
        self.encoder = nn.Sequential(
            nn.Conv2d(stem, c, 1),
            *[_ResBlock(c) for _ in range(de)],
            nn.Conv2d(c, lc, 2, stride=2),
            *[_ResBlock(lc) for _ in range(de)],
            _ChannelNorm(lc),  # bounded latents keep FSQ's tanh out of saturation
            nn.SiLU(),
            nn.Conv2d(lc, self.quantizer.dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(self.quantizer.dim + 1, lc, 3, padding=1),  # + 1: the keep mask
            *[_ResBlock(lc) for _ in range(dd)],
            _ChannelNorm(lc),
            nn.SiLU(),
            nn.Conv2d(lc, 4 * c, 1),
            nn.PixelShuffle(2),
            *[_ResBlock(c) for _ in range(dd)],
            _ChannelNorm(c),
            nn.SiLU(),
            nn.Conv2d(c, stem, 1),
        )

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, F, H, W) in [-1, 1] -> unquantized latent (B, D, H/8, W/8)."""
        b, _, f, h, w = x.shape
        return self.encoder(F.pixel_unshuffle(x.reshape(b, 3 * f, h, w), 4))

    def pixels(self, zq: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Quantized latent (B, D, h, w) -> pixels (B, 3, F, 8h, 8w), roughly in [-1, 1] (not clamped).

        keep: bool (B, h, w), False where a token was dropped and must be infilled; None keeps all.
        """
        if keep is None:
            keep = torch.ones_like(zq[:, :1], dtype=torch.bool)[:, 0]
        k = keep.unsqueeze(1).to(zq.dtype)
        y = F.pixel_shuffle(self.decoder(torch.cat([zq * k, k], 1)), 4)
        b, _, h, w = y.shape
        return y.reshape(b, 3, self.config.frames, h, w)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, F, H, W) -> (reconstruction like x, latent z before quantization, indices).

        The quantizer runs in float32 even under autocast: bf16 cannot hold a rounded latent exactly.
        """
        z = self.latent(x).float()
        zq, indices = self.quantizer(z)
        return self.pixels(zq, keep), z, indices

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, F, H, W) in [-1, 1] -> indices int64 (B, H/8, W/8); fused kernels on CUDA (vtok.kernels)."""
        z = self.latent(x).float()
        if self.config.quantizer["kind"] == "fsq":
            return kernels.fsq_indices(z, self.quantizer.levels).long()
        return kernels.lfq_indices(z).long()

    @torch.no_grad()
    def decode(self, indices: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """indices int (B, h, w) -> pixels float32 (B, 3, F, 8h, 8w) clamped to [-1, 1].

        keep: bool (B, h, w), False at positions to infill (their indices are ignored); None keeps all.
        """
        zq = self.quantizer.dequantize(indices, dtype=next(self.parameters()).dtype)
        return self.pixels(zq, keep).clamp(-1, 1)

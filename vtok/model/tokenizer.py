"""The tokenizer: a small, fully convolutional autoencoder around an FSQ or LFQ quantizer.

A block of F frames (default 4) is folded into channels by a space-to-depth stem, so the heavy
convolutions run at 1/4 and 1/8 of the resolution: cheap on a CPU. Each block is encoded from its
own frames only, so the codes never depend on the budget or on earlier blocks: one encode serves
every budget, and any height and width that are multiples of `stride` work.

Two layouts:
- stride 8 (the first models): one token covers F x 8 x 8 pixels, 3 levels of budget;
- stride 4: one token covers F x 4 x 4 pixels, 4 levels (up to 1,024 tokens per 256x256 frame).
  Its decoder runs at 1/4 resolution with a 1/8 branch, whose wider view infills coarse prefixes.

The decoder takes a keep mask and infills the positions whose tokens were dropped, so a prefix of
the coarse-to-fine order (vtok.format.layout) decodes to a usable picture. With `context`, it also sees
the last decoded frame of the previous block, as a real decoder has it (none at a keyframe). With
`level_map`, the encoder and decoder also see each position's budget level, a fixed function of
where it sits in the grid, so that coarse positions could learn to code a summary of their tile (a
small budget keeps only them) while the codes still do not depend on the budget; measured level
with the plain design so far (benchmarks/results/architectures.md). With `feedback`, the encoder
takes a second look: a pass that sees x and the error of the first pass's codes decoded at the full
budget adds a correction to the latent (iterative amortised inference, in one step), since latents
optimised against the decoder (vtok.model.refine) decode about 1 dB better than the encoder's.
With `feedback_coarse`, that pass also sees the error without the finest level (a quarter of the
tokens), so that it can weigh what small budgets keep. With `feedback_passes` above 1, further
passes, each with its own weights, look again at what the corrected latent's codes decode to.
With `encoder_wide`, the first encoder pass adds a branch at 1/8 resolution, as the decoder has, so
that the coarse positions, which a small budget keeps alone, see more of the tile they stand for.
With `decoder_wide`, the decoder's 1/8 branch adds one at 1/16, to infill small budgets from afar.
With `feedback_wide`, each feedback pass adds the 1/8 branch too, to see its error over a wider area.
"""

import os
from collections.abc import Callable
from functools import cache, lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from vtok import kernels
from vtok.format.layout import position_levels
from vtok.model.architectures import ModelConfig
from vtok.model.layers import ChannelNorm, FineDecoder, ResBlock, correction, encoder_pass
from vtok.quantize import make_quantizer

__all__ = ["ModelConfig", "Tokenizer", "feedback_latent_at"]


@cache
def cpu_bf16(part: str = "decoder") -> bool:
    """Whether `part` ("encoder" or "decoder") runs its convolutions in bfloat16 (autocast) on the
    CPU: where oneDNN has native bf16 (AVX-512 bf16, AMX) and VTOK_ENCODER_BF16 or VTOK_DECODER_BF16
    is not "0".

    The decoder runs about 1.8x faster; its pixels move by an MSE of about 5e-7 on [-1, 1] (under
    0.001 dB), and the threshold search checks with this same decoder, so its guarantee holds for
    what `vtok decode` gives. The encoder runs about 1.8x faster (2.5x with the feedback pass,
    whose decode runs in bf16 too); about 3% of its codes differ from float32's (latents that sat
    near a rounding boundary; about 11% with the feedback pass, which sees them twice, 13% with two
    feedback passes), at the same mean PSNR within 0.01 dB (benchmarks/bf16.py), and they stay the
    same on any number of threads (tests/test_cpu_bf16.py).
    """
    if os.environ.get(f"VTOK_{part.upper()}_BF16", "1") == "0" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@lru_cache(maxsize=8)  # one per frame size in use: 0.9 MB at 720p
def _level_planes(rows: int, cols: int, levels: int) -> torch.Tensor:
    """One-hot budget level of each token position (vtok.format.layout): float32 (1, levels, rows, cols)."""
    at = torch.from_numpy(position_levels(rows, cols, levels).astype("int64"))
    return F.one_hot(at, levels).permute(2, 0, 1).unsqueeze(0).float()


def _fold(x: torch.Tensor) -> torch.Tensor:
    """x (B, 3, F, H, W) -> (B, 3 * F * 16, H/4, W/4): each 4x4 patch of every frame into channels, as
    pixel_unshuffle(4) orders them, in one copy (pixel_unshuffle itself runs 2x slower here)."""
    b, c, f, h, w = x.shape
    patches = x.reshape(b, c * f, h // 4, 4, w // 4, 4).permute(0, 1, 3, 5, 2, 4)
    return patches.reshape(b, c * f * 16, h // 4, w // 4)


def _project(conv: nn.Conv2d, y: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of y (B, C, h, w), in float64 (see `Tokenizer.exact_latent`)."""
    return F.conv2d(y.double(), conv.weight.double(), conv.bias.double())


_FRAME_CHANNELS = 3 * 16  # one frame folded by `_fold`: 3 colours of each pixel of a 4x4 patch


def feedback_latent_at(config: ModelConfig) -> int:
    """Where z starts among a feedback pass's input channels: after x and its error, each folded
    to 3 * F * 16 channels (`Tokenizer._feedback_input`)."""
    return 2 * _FRAME_CHANNELS * config.frames


class Tokenizer(nn.Module):
    """Encoder, quantizer and decoder.

    Pixels are float32 (B, 3, F, H, W) in [-1, 1] with H and W multiples of `config.stride`.
    Token indices are int64 (B, H/s, W/s) in [0, codebook_size), s = config.stride.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.quantizer = make_quantizer(config.quantizer)
        c, lc, stem = config.width, config.latent_width, _FRAME_CHANNELS * config.frames
        de, dd = config.encoder_depth, config.decoder_depth
        dim = self.quantizer.dim
        if config.stride == 4:
            level_channels = config.levels if config.level_map else 0  # the level map, one-hot
            wide = lc if config.encoder_wide else 0
            self.encoder = encoder_pass(stem + level_channels, c, de, dim, wide)
            context = _FRAME_CHANNELS + 1 if config.context else 0  # the frame, and a flag: "has context"
            wide = lc if config.decoder_wide else 0
            self.decoder = FineDecoder(dim + 1 + context + level_channels, c, lc, dd, stem, wide)
            if config.feedback:  # sees x, its error at the full budget, and the latent; adds a correction
                inputs = (1 + (2 if config.feedback_coarse else 1)) * stem + dim  # x, its errors, z
                wide = lc if config.feedback_wide else 0
                self.feedback = correction(inputs, c, de, dim, wide)
                # later passes are named apart, so that the shipped one-pass weights load unchanged
                self.later_feedback = nn.ModuleList(
                    correction(inputs, c, de, dim, wide) for _ in range(config.feedback_passes - 1)
                )
            return
        if config.context:
            raise ValueError("context needs the stride-4 layout")
        self.encoder = nn.Sequential(
            nn.Conv2d(stem, c, 1),
            *[ResBlock(c) for _ in range(de)],
            nn.Conv2d(c, lc, 2, stride=2),
            *[ResBlock(lc) for _ in range(de)],
            ChannelNorm(lc),  # bounded latents keep FSQ's tanh out of saturation
            nn.SiLU(),
            nn.Conv2d(lc, self.quantizer.dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(self.quantizer.dim + 1, lc, 3, padding=1),  # + 1: the keep mask
            *[ResBlock(lc) for _ in range(dd)],
            ChannelNorm(lc),
            nn.SiLU(),
            nn.Conv2d(lc, 4 * c, 1),
            nn.PixelShuffle(2),
            *[ResBlock(c) for _ in range(dd)],
            ChannelNorm(c),
            nn.SiLU(),
            nn.Conv2d(c, stem, 1),
        )

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def _with_levels(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, C, h, w) at token resolution, with the level map appended when the model has one."""
        if not self.config.level_map:
            return y
        b, _, h, w = y.shape
        planes = _level_planes(h, w, self.config.levels).to(y.device, y.dtype)
        return torch.cat([y, planes.expand(b, -1, -1, -1)], 1)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, F, H, W) in [-1, 1] -> unquantized latent (B, D, H/s, W/s), s = config.stride."""
        return self._passes(x, lambda net, y: net(y))

    def _passes(self, x: torch.Tensor, run: Callable[[nn.Sequential, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """x's latent (B, D, H/s, W/s): the encoder's, plus each feedback pass's correction in turn with
        `feedback`. run(net, input) runs one pass, so that `exact_latent` can split each pass."""
        folded = _fold(x)
        z = run(self.encoder, self._with_levels(folded))
        if self.config.feedback:
            for net in (self.feedback, *self.later_feedback):
                z = z + run(net, self._feedback_input(x, folded, z))
        return z

    def _feedback_input(self, x: torch.Tensor, folded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The feedback pass's input, in z's dtype (B, 2 * 3 * F * 16 + D, h, w): x (given folded too,
        as the encoder took it) and its error decoded from z's codes at the full budget, folded, and z;
        with `feedback_coarse`, then the error without the finest level, folded (3 * F * 16 more).
        No gradient flows through the decode: the codes of z, the latent so far, are given, as at run time."""
        with torch.no_grad():
            zq = self.quantizer(z.float())[0]
            parts = [folded, _fold(self.pixels(zq) - x), z]
            if self.config.feedback_coarse:  # appended last, so `adapt` can warm-start from `feedback`
                b, _, h, w = zq.shape
                coarse = _level_planes(h, w, self.config.levels)[:, -1].to(zq.device) == 0
                parts.append(_fold(self.pixels(zq, coarse.expand(b, h, w)) - x))
        return torch.cat([part.to(z.dtype) for part in parts], 1)

    def pixels(
        self, zq: torch.Tensor, keep: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Quantized latent (B, D, h, w) -> pixels (B, 3, F, s*h, s*w), roughly in [-1, 1] (not clamped).

        keep: bool (B, h, w), False where a token was dropped and must be infilled; None keeps all.
        context: float (B, 3, s*h, s*w) in [-1, 1], the previous block's last decoded frame; None at
          a keyframe. Ignored (must be None) by models without context.
        """
        if keep is None:
            keep = torch.ones_like(zq[:, :1], dtype=torch.bool)[:, 0]
        k = keep.unsqueeze(1).to(zq.dtype)
        parts = [zq * k, k]
        if self.config.context:
            b, _, h, w = zq.shape
            if context is None:
                parts += [zq.new_zeros(b, _FRAME_CHANNELS, h, w), zq.new_zeros(b, 1, h, w)]
            else:
                parts += [F.pixel_unshuffle(context.to(zq.dtype), 4), zq.new_ones(b, 1, h, w)]
        elif context is not None:
            raise ValueError("this model takes no context")
        y = F.pixel_shuffle(self.decoder(self._with_levels(torch.cat(parts, 1))), 4)
        b, _, h, w = y.shape
        return y.reshape(b, 3, self.config.frames, h, w)

    def context_of(self, y: torch.Tensor) -> torch.Tensor | None:
        """The context a block decoded to y (B, 3, F, H, W) gives the next one: its last frame,
        float (B, 3, H, W) in [-1, 1], without gradient; None for a model without context."""
        return y[:, :, -1].detach().float().clamp(-1, 1) if self.config.context else None

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, F, H, W) -> (reconstruction like x, latent z before quantization, indices).

        The quantizer runs in float32 even under autocast: bf16 cannot hold a rounded latent exactly.
        """
        z = self.latent(x).float()
        zq, indices = self.quantizer(z)
        return self.pixels(zq, keep, context), z, indices

    @torch.no_grad()
    def exact_latent(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, F, H, W) in [-1, 1] -> latent float32 (B, D, H/s, W/s), bit-identical on any number
        of threads, so that a video gets the same codes however many threads encode it. The body
        runs in bf16 where `cpu_bf16("encoder")`.

        The last 1x1 projection (of each pass, with `feedback`) runs in float64: oneDNN splits its
        reduction differently with the thread count, and a latent a few ulps away can round to
        another code. Float64 takes the native, thread-independent path; the layer is narrow
        (width -> D), so it costs little. With `feedback`, the decode inside the encoder follows the
        encoder's bf16 switch, not the decoder's, so the codes depend on one switch only.
        """
        fast = x.device.type == "cpu" and cpu_bf16("encoder")

        def run(net: nn.Sequential, y: torch.Tensor) -> torch.Tensor:
            return _project(net[-1], net[:-1](y.float()))  # float: autocast leaves float64 alone

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            return self._passes(x, run).float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, F, H, W) in [-1, 1] -> indices int64 (B, H/s, W/s); fused kernels on CUDA (vtok.kernels)."""
        return self.indices_of(self.exact_latent(x))

    @torch.no_grad()
    def indices_of(self, z: torch.Tensor) -> torch.Tensor:
        """Latent float32 (B, D, h, w) -> indices int64 (B, h, w); fused kernels on CUDA (vtok.kernels)."""
        if self.config.quantizer["kind"] == "fsq":
            return kernels.fsq_indices(z, self.quantizer.levels).long()
        return kernels.lfq_indices(z).long()

    @torch.no_grad()
    def decode(
        self, indices: torch.Tensor, keep: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """indices int (B, h, w) -> pixels float32 (B, 3, F, s*h, s*w) clamped to [-1, 1].

        keep: bool (B, h, w), False at positions to infill (their indices are ignored); None keeps all.
        context: as in `pixels`.
        """
        zq = self.quantizer.dequantize(indices, dtype=next(self.parameters()).dtype)
        fast = zq.device.type == "cpu" and zq.dtype == torch.float32 and cpu_bf16("decoder")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            return self.pixels(zq, keep, context).float().clamp_(-1, 1)  # in place: a 720p batch is 45 MB

    @torch.no_grad()
    def decode_in_order(
        self,
        indices: torch.Tensor,
        keep: torch.Tensor | None,
        keyframes: list[bool],
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode B consecutive blocks of one video, as a real decoder does.

        indices int (B, h, w); keep bool (B, h, w) or None; keyframes: B flags. Without context the
        blocks decode in one batch. With context, block i sees the last frame block i-1 decoded to
        (the first sees `context`), and none at a keyframe. Returns the pixels float32
        (B, 3, F, s*h, s*w) and the context for the block after them.
        """
        if not self.config.context:
            return self.decode(indices, keep), None
        ys = []
        for i, keyframe in enumerate(keyframes):
            y = self.decode(
                indices[i : i + 1], None if keep is None else keep[i : i + 1], None if keyframe else context
            )
            ys.append(y)
            context = self.context_of(y)
        return torch.cat(ys), context

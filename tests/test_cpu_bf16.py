"""The CPU's bfloat16 paths (vtok.model.tokenizer.cpu_bf16) stay within a tolerance of float32:
the decoder's pixels, and the encoder's codes; and the encoder's input fold."""

import numpy as np
import pytest
import torch
from conftest import DATA

import vtok.model.tokenizer as tokenizer_module
from vtok.media.video import read_frames
from vtok.metrics import psnr_from_mse
from vtok.model.pixels import to_model
from vtok.model.registry import load

needs_bf16 = pytest.mark.skipif(not tokenizer_module.cpu_bf16(), reason="no native bf16 on this CPU")


def _blocks(clip, frames: int = 8) -> torch.Tensor:
    pixels = np.stack(list(read_frames(clip))[:frames])
    return to_model(pixels.reshape(frames // 4, 4, *pixels.shape[1:]), 4, "cpu")


def _psnr(y: torch.Tensor, x: torch.Tensor) -> float:
    return psnr_from_mse((y - x).square().mean().item() / 4 * 255**2)  # pixels on [-1, 1]


@needs_bf16
def test_bf16_decode_is_within_tolerance_of_float32(clip, float32_for):
    model = load("vtok-fsq", "cpu").tokenizer
    x = _blocks(clip)
    codes = model.encode(x)
    fast = model.decode(codes)
    float32_for("decoder")
    exact = model.decode(codes)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    # far under the smallest threshold anyone uses (0.003 is about 31 dB)
    assert (fast - exact).square().mean().item() < 1e-5
    assert abs(_psnr(fast, x) - _psnr(exact, x)) < 0.05


@needs_bf16
def test_bf16_encode_keeps_most_codes_and_the_quality(float32_for):
    model = load("vtok-fsq", "cpu").tokenizer
    # the first 32 frames of ../shared/data/videos/train/sam2_02_cups.mp4 (Apache-2.0), scaled to 455x256,
    # centre-cropped to 256x256, H.264 at crf 18 (56 KB)
    x = _blocks(DATA / "cups_256x256.mp4", 32)
    fast = model.encode(x)
    float32_for("encoder")
    exact = model.encode(x)
    assert fast.shape == exact.shape and fast.dtype == exact.dtype
    # the codes that change sat near a rounding boundary: few, and no worse (about 3% without the
    # feedback pass, about 11% with it, 13% on this clip: bf16's differences reach the latent through both passes)
    assert (fast != exact).float().mean().item() < 0.2
    # the same quality either way, on 32 frames at 256x256 (-0.005 to +0.005 dB for four vtok-fsq weights;
    # the 8 small frames of `clip` swung -0.06 to +0.08); over the 18 test clips -0.014 to +0.014 per clip
    # (vtok-fsq 6a2165b7; benchmarks/results/bf16.json)
    assert abs(_psnr(model.decode(fast), x) - _psnr(model.decode(exact), x)) < 0.05


@needs_bf16
@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_the_switch_turns_bf16_off(part, float32_for):
    float32_for(part)
    assert not tokenizer_module.cpu_bf16(part)
    other = "decoder" if part == "encoder" else "encoder"
    assert tokenizer_module.cpu_bf16(other)


def test_the_encoder_fold_is_pixel_unshuffle():
    x = torch.randn(2, 3, 4, 8, 12)
    assert torch.equal(tokenizer_module._fold(x), torch.nn.functional.pixel_unshuffle(x.reshape(2, 12, 8, 12), 4))

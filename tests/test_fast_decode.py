"""The CPU decoder's bfloat16 path (vtok.model.tokenizer.cpu_bf16) stays within a tolerance of float32."""

import numpy as np
import pytest
import torch

import vtok.model.tokenizer as tokenizer_module
from vtok.media.video import read_frames
from vtok.metrics import psnr_from_mse
from vtok.model.pixels import to_model
from vtok.model.registry import load

pytestmark = pytest.mark.skipif(not tokenizer_module.cpu_bf16(), reason="no native bf16 on this CPU")


def test_bf16_decode_is_within_tolerance_of_float32(clip, monkeypatch):
    model = load("vtok-fsq", "cpu").tokenizer
    frames = np.stack(list(read_frames(clip))[:8])
    x = to_model(frames.reshape(2, 4, *frames.shape[1:]), 4, "cpu")
    codes = model.encode(x)
    fast = model.decode(codes)
    monkeypatch.setattr(tokenizer_module, "cpu_bf16", lambda: False)
    exact = model.decode(codes)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    # far under the smallest threshold anyone uses (0.003 is about 31 dB)
    assert (fast - exact).square().mean().item() < 1e-5
    # PSNR against the source (pixels on [-1, 1], peak-to-peak 2) moves by under 0.05 dB
    psnr = [psnr_from_mse((y - x).square().mean().item() / 4 * 255**2) for y in (fast, exact)]
    assert abs(psnr[0] - psnr[1]) < 0.05


def test_the_switch_turns_bf16_off(monkeypatch):
    monkeypatch.setenv("VTOK_DECODER_BF16", "0")
    tokenizer_module.cpu_bf16.cache_clear()
    try:
        assert not tokenizer_module.cpu_bf16()
    finally:
        monkeypatch.delenv("VTOK_DECODER_BF16")
        tokenizer_module.cpu_bf16.cache_clear()

"""The channel RMS norm (vtok.model.layers.ChannelNorm): the formula, to the bit, and the
gradient it writes out by hand."""

import pytest
import torch

from vtok.model.layers import ChannelNorm


def _reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-6) * weight


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_norm_is_an_rms_norm_over_channels(dtype):
    norm = ChannelNorm(128)
    norm.weight.data.uniform_(0.5, 2.0)
    x = torch.randn(2, 128, 6, 10).to(dtype)
    with torch.no_grad():
        assert torch.equal(norm(x), _reference(x, norm.weight.to(dtype)))  # the same bits at a power-of-two width


def test_its_gradient_is_autograd_s():
    norm = ChannelNorm(12).double()
    norm.weight.data.uniform_(0.5, 2.0)
    x = torch.randn(3, 12, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    grad = torch.randn(3, 12, 5, 7, dtype=torch.float64)
    got = torch.autograd.grad(norm(x), (x, norm.weight), grad)
    want = torch.autograd.grad(_reference(x, norm.weight), (x, norm.weight), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_bf16_gradients_stay_close_to_float32():
    norm = ChannelNorm(64)
    norm.weight.data.uniform_(0.5, 2.0)
    x = torch.randn(4, 64, 8, 8)
    grad = torch.randn(4, 64, 8, 8)
    want = torch.autograd.grad(_reference(x.requires_grad_(), norm.weight), (x, norm.weight), grad)
    xb = x.detach().bfloat16().requires_grad_()
    got = torch.autograd.grad(norm(xb), (xb, norm.weight), grad.bfloat16())
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        assert ((a.float() - b).norm() / b.norm()).item() < 0.02

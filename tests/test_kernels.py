"""Kernel backends: dispatch on the CPU, and exact parity of CuPy with torch where CUDA is present."""

import pytest
import torch

from vtok import kernels
from vtok.kernels import torch_ref
from vtok.quantize import FSQ, LFQ

LEVELS = [(8, 8, 8, 5, 5, 5), (7, 5, 5, 5, 5), (8, 5, 5, 5), (16, 16, 16, 16, 16)]


def test_cpu_tensors_use_the_torch_reference():
    assert kernels.backend_for(torch.zeros(1)) is torch_ref


@pytest.mark.parametrize("levels", LEVELS)
def test_reference_fsq_matches_the_quantizer_and_packs_small(levels):
    z = torch.randn(2, len(levels), 5, 7) * 3
    got = kernels.fsq_indices(z, levels)
    assert torch.equal(got.long(), FSQ(levels)(z)[1])
    assert got.dtype == (torch.uint16 if FSQ(levels).codebook_size <= 65536 else torch.int32)


@pytest.mark.parametrize("bits", [16, 18])
def test_reference_lfq_matches_the_quantizer_and_packs_small(bits):
    z = torch.randn(3, bits, 4, 6)
    got = kernels.lfq_indices(z)
    assert torch.equal(got.long(), LFQ(bits)(z)[1])
    assert got.dtype == (torch.uint16 if bits <= 16 else torch.int32)


def _real_block(clip, device):
    from vtok.model.pixels import to_model
    from vtok.train.data import _decode_all  # PyAV, or OpenCV where it is missing (the lent GPU machines)

    frames = _decode_all(clip)[:8].reshape(2, 4, 138, 250, 3)
    return to_model(frames, 8, device)


@pytest.mark.gpu
@pytest.mark.parametrize("levels", LEVELS)
def test_cupy_fsq_is_identical_to_torch(levels):
    from vtok.kernels import cupy_impl

    torch.manual_seed(0)
    for scale in (0.5, 3.0, 30.0):
        z = torch.randn(4, len(levels), 45, 80, device="cuda") * scale
        assert torch.equal(cupy_impl.fsq_indices(z, levels), torch_ref.fsq_indices(z, levels))


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [16, 18])
def test_cupy_lfq_is_identical_to_torch(bits):
    from vtok.kernels import cupy_impl

    z = torch.randn(4, bits, 45, 80, device="cuda")
    z[0, 0, 0, 0] = 0.0  # the sign boundary: zero is not positive
    assert torch.equal(cupy_impl.lfq_indices(z), torch_ref.lfq_indices(z))


@pytest.mark.gpu
def test_cupy_rlt_is_identical_to_torch_on_random_and_real_data(clip):
    from vtok.kernels import cupy_impl

    torch.manual_seed(0)
    real = _real_block(clip, "cuda")
    cases = [
        (torch.rand(3, 4, 144, 256, device="cuda") * 2 - 1, torch.rand(3, 4, 144, 256, device="cuda") * 2 - 1),
        (real[1], real[0].clone()),
    ]
    for block, start in cases:
        for threshold in (0.0, 6 / 255, 0.2, 1.0):
            a, b = start.clone(), start.clone()
            static_cupy = cupy_impl.rlt_update(block, a, threshold)
            static_torch = torch_ref.rlt_update(block, b, threshold)
            assert torch.equal(static_cupy, static_torch)
            assert torch.equal(a, b)


@pytest.mark.gpu
def test_encode_on_cuda_matches_the_cpu(clip):
    from vtok.model.registry import load_model, resolve

    entry = resolve("vtok-fsq")
    x = _real_block(clip, "cpu")
    cpu = load_model(entry, "cpu").encode(x)
    gpu = load_model(entry, "cuda").encode(x.cuda()).cpu()
    assert (cpu != gpu).float().mean() < 0.01  # convolutions differ in rounding; codes almost never

import itertools

import pytest
import torch

from vtok.quantize import FSQ, LFQ, make_quantizer

LEVEL_SETS = [(8, 8, 8, 5, 5, 5), (8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 3), (4, 4, 4), (16,), (3, 8, 2, 5)]
SHAPES = [(1, 1), (2, 3, 5), (2, 4, 3, 7)]


@pytest.mark.parametrize("levels", LEVEL_SETS)
def test_fsq_indices_to_codes_to_indices_is_identity_over_whole_codebook(levels):
    q = FSQ(levels)
    indices = torch.arange(q.codebook_size)
    codes = q.indices_to_codes(indices)
    assert codes.shape == (q.codebook_size, len(levels))
    for i, n in enumerate(levels):
        assert codes[:, i].min() == 0 and codes[:, i].max() == n - 1
    assert torch.equal(q.codes_to_indices(codes), indices)
    # every code tuple appears exactly once
    assert len({tuple(c) for c in codes.tolist()}) == q.codebook_size


@pytest.mark.parametrize("levels,shape", list(itertools.product(LEVEL_SETS, SHAPES)))
def test_fsq_forward_indices_match_codes_and_dequantize(levels, shape):
    q = FSQ(levels)
    torch.manual_seed(0)
    b, *rest = shape
    z = torch.randn(b, len(levels), *rest) * 3
    zq, indices = q(z)
    assert indices.shape == (b, *rest)
    assert indices.min() >= 0 and indices.max() < q.codebook_size
    assert zq.abs().max() <= 1
    assert torch.equal(q.dequantize(indices), zq)
    assert torch.equal(q.codes_to_indices(q.indices_to_codes(indices)), indices)


def test_fsq_default_codebook_fits_uint16_and_uses_every_level():
    q = FSQ()
    assert q.codebook_size == 64000 < 2**16
    z = torch.linspace(-6, 6, 1001).repeat(6, 1).unsqueeze(0)
    codes = q.indices_to_codes(q(z)[1])
    for i, n in enumerate(q.levels):
        assert set(codes[0, i].tolist()) == set(range(n))


def test_fsq_passes_gradients_straight_through():
    z = torch.randn(2, 6, 4, 4, requires_grad=True)
    FSQ()(z)[0].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("bits", [1, 2, 5, 10, 16, 18])
def test_lfq_indices_to_codes_to_indices_is_identity(bits):
    q = LFQ(bits)
    indices = torch.arange(q.codebook_size)
    codes = q.indices_to_codes(indices)
    assert set(codes.unique().tolist()) <= {0, 1}
    assert torch.equal(q.codes_to_indices(codes), indices)


@pytest.mark.parametrize("shape", SHAPES)
def test_lfq_forward_matches_signs_and_dequantize(shape):
    q = LFQ(16)
    b, *rest = shape
    z = torch.randn(b, 16, *rest)
    zq, indices = q(z)
    assert torch.equal(zq, torch.where(z > 0, 1.0, -1.0))
    assert torch.equal(q.dequantize(indices), zq)
    assert indices.max() < 2**16


@pytest.mark.parametrize("bits", [8, 16, 18])
def test_lfq_entropy_penalty_prefers_spread_codes(bits):
    q = LFQ(bits)
    collapsed = torch.ones(64, bits) * 3  # every sample picks the same code
    spread = torch.randn(64, bits) * 3
    copied = torch.randn(64, 1).expand(64, bits) * 3  # bits that copy each other: two codes
    assert q.entropy_penalty(spread) < q.entropy_penalty(copied) < q.entropy_penalty(collapsed)


def test_make_quantizer_from_spec_and_bad_specs():
    assert make_quantizer({"kind": "fsq", "levels": [8, 5]}).codebook_size == 40
    assert make_quantizer({"kind": "lfq", "bits": 16}).codebook_size == 65536
    with pytest.raises(ValueError):
        make_quantizer({"kind": "vq"})
    with pytest.raises(ValueError):
        FSQ((1, 5))
    with pytest.raises(ValueError):
        LFQ(32)

"""The threshold search's error predictor (vtok.budget.predict) and the passes it saves."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtok.budget.elastic import choose_budget
from vtok.budget.predict import ErrorPredictor, tile_sums
from vtok.format.layout import position_levels


def _direct_detail(x: torch.Tensor, levels: int, stride: int) -> np.ndarray:
    """Squared deviations from F x s x s cell means, the plain way (x covers whole tiles)."""
    tiles = (x.shape[-2] // 32, x.shape[-1] // 32)
    out = []
    for k in range(levels):
        s = stride << (levels - 1 - k)
        mean = F.avg_pool3d(x.double(), (x.shape[2], s, s)).repeat_interleave(s, -1).repeat_interleave(s, -2)
        out.append(tile_sums((x.double() - mean)[0].square().sum((0, 1)), tiles, 32))
    return np.stack(out)


def test_detail_is_the_detail_each_level_cannot_hold():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 4, 96, 160) * 2 - 1
    for levels, stride in ((4, 4), (3, 8)):
        got = ErrorPredictor(levels, stride).detail(x, 4, 96, 160)
        assert got.shape == (levels, 3, 5)
        np.testing.assert_allclose(got, _direct_detail(x, levels, stride), rtol=1e-5)
        assert (np.diff(got.sum((1, 2))) <= 0).all()  # finer cells hold more
    flat = torch.full((1, 3, 4, 64, 64), 0.3)
    assert np.abs(ErrorPredictor(4, 4).detail(flat, 4, 64, 64)).max() < 1e-3  # of 1,106 per tile in x^2


def test_guesses_start_after_two_levels_and_learn_only_from_uniform_passes():
    p = ErrorPredictor(4, 4)
    detail = np.stack([np.full((2, 2), v) for v in (40.0, 20.0, 10.0, 5.0)])
    assert p.guess(detail) is None
    p.learn(np.full((2, 2), 3), np.full((2, 2), 0.625), detail)  # an eighth of the proxy at the full level
    assert p.guess(detail) is None
    p.learn(np.full((2, 2), 1), np.full((2, 2), 10.0), detail)
    g = p.guess(detail)
    np.testing.assert_allclose(g[:, 0, 0], [20.0, 10.0, 2.5, 0.625])  # level 2: between, in log; 0: as 1
    before = p.log_ratio.copy()
    p.learn(np.array([[0, 3], [3, 3]]), np.full((2, 2), 100.0), detail)  # a mix teaches nothing
    np.testing.assert_array_equal(p.log_ratio, before)


def _block(clip):
    from vtok.media.video import read_frames
    from vtok.model.pixels import to_model
    from vtok.model.registry import load_model, resolve

    model = load_model(resolve("vtok-fsq"))
    frames = np.stack(list(read_frames(clip))[:4])[None]
    x = to_model(frames, model.config.stride, "cpu")
    indices = model.encode(x)
    none = torch.zeros(indices.shape[1:], dtype=torch.bool)
    return model, x, indices, none


def test_a_confident_guess_skips_the_full_budget_pass_and_still_meets_t(clip):
    model, x, indices, none = _block(clip)
    kw = {"frames": 4, "height": 138, "width": 250}
    top = model.config.levels - 1
    below = torch.from_numpy(position_levels(*indices.shape[1:], model.config.levels) < top)[None]
    y = model.decode(indices, below)[..., :138, :250]
    t = 1.5 * (y - x[..., :138, :250]).square().mean().item()  # loose: the level below the full budget meets it
    plain = choose_budget(model, x, indices, none, none, threshold=t, **kw)
    p = ErrorPredictor(model.config.levels, model.config.stride)
    warm = choose_budget(model, x, indices, none, none, threshold=t, predictor=p, **kw)  # learns, guesses nothing
    assert warm.passes == plain.passes and np.array_equal(warm.tile_levels, plain.tile_levels)
    guessed = choose_budget(model, x, indices, none, none, threshold=t, predictor=p, **kw)
    assert not guessed.missed and guessed.mse <= t and guessed.passes == plain.passes - 1
    assert (guessed.tile_levels <= top).all()
    real = (model.decode(indices, guessed.keep[None])[..., :138, :250] - x[..., :138, :250]).square().mean().item()
    assert abs(real - guessed.mse) < 1e-6


def test_a_wrong_guess_still_flags_a_block_that_misses_at_the_full_budget(clip):
    model, x, indices, none = _block(clip)
    kw = {"frames": 4, "height": 138, "width": 250}
    p = ErrorPredictor(model.config.levels, model.config.stride)
    p.log_ratio[:] = -50.0  # guesses next to no error anywhere
    b = choose_budget(model, x, indices, none, none, threshold=1e-6, predictor=p, **kw)
    assert b.missed and b.passes == 2 and (b.tile_levels == model.config.levels - 1).all()
    assert b.mse > 1e-6


@pytest.mark.gpu
def test_detail_on_the_gpu_is_the_detail_on_the_cpu():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 4, 92, 164) * 2 - 1  # edges inside a tile, as a padded video has them
    p = ErrorPredictor(4, 4)
    np.testing.assert_allclose(p.detail(x.cuda(), 3, 90, 161), p.detail(x, 3, 90, 161), rtol=1e-4, atol=1e-3)

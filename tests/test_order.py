import numpy as np
import pytest
import torch

from vtok.format.layout import TILE, position_levels, prefix_keep, prefix_order, tile_costs, tile_keep


@pytest.mark.parametrize("rows,cols", [(1, 1), (4, 4), (5, 9), (18, 32), (45, 60)])
def test_order_is_a_coarse_to_fine_permutation(rows, cols):
    order = prefix_order(rows, cols)
    assert sorted(order.tolist()) == list(range(rows * cols))
    levels = position_levels(rows, cols).reshape(-1)[order]
    assert (np.diff(levels.astype(int)) >= 0).all()
    for n in range(0, rows * cols + 1, max(1, rows * cols // 7)):
        keep = prefix_keep(n, rows, cols)
        assert keep.sum() == n
        assert (keep <= prefix_keep(min(n + 1, rows * cols), rows, cols)).all()  # prefixes are nested


def test_each_full_tile_has_1_3_12_positions_per_level():
    levels = position_levels(8, 8)
    for r in range(0, 8, TILE):
        for c in range(0, 8, TILE):
            tile = levels[r : r + TILE, c : c + TILE]
            assert [(tile == k).sum() for k in range(3)] == [1, 3, 12]


def test_a_partial_level_is_spread_over_the_frame():
    keep = prefix_keep(25 + 10, 20, 20)  # all 25 level-0 positions, then 10 of level 1
    extra = keep & (position_levels(20, 20) == 1)
    rows = np.nonzero(extra)[0]
    assert rows.min() < 6 and rows.max() > 12  # not just the top of the frame


def test_tile_levels():
    assert tile_keep(np.full((2, 3), 2), 8, 12).all()
    assert not tile_keep(np.full((2, 3), -1), 8, 12).any()
    keep = tile_keep(np.array([[0, 1]]), 4, 8)
    assert keep[:, :4].sum() == 1 and keep[:, 4:].sum() == 4


def test_shipped_model_decodes_any_prefix_and_quality_rises_with_tokens(clip):
    from vtok.media.video import read_frames
    from vtok.model.pixels import to_model
    from vtok.model.registry import load_model, resolve

    model = load_model(resolve("vtok-fsq"))
    frames = np.stack(list(read_frames(clip))[:8]).reshape(2, 4, 138, 250, 3)
    x = to_model(frames, model.config.stride, "cpu")
    indices = model.encode(x)
    rows, cols = indices.shape[1:]
    levels = model.config.levels
    assert torch.equal(model.decode(indices), model.decode(indices, torch.ones_like(indices, dtype=torch.bool)))
    psnr = []
    for share in (0.1, 0.25, 0.5, 1.0):
        keep = torch.from_numpy(prefix_keep(round(share * rows * cols), rows, cols, levels)).expand_as(indices)
        mse = (model.decode(indices, keep) - x).square().mean().item()
        psnr.append(10 * np.log10(4 / mse))
    assert all(a < b for a, b in zip(psnr, psnr[1:], strict=False)), psnr
    assert psnr[0] > 15, psnr  # a tenth of the tokens is still a picture, not noise


def test_four_levels_make_tiles_of_1_4_16_64_tokens():
    levels = position_levels(16, 16, 4)
    assert [int((levels[:8, :8] <= k).sum()) for k in range(4)] == [1, 4, 16, 64]
    fine, first = position_levels(64, 64, 4), position_levels(32, 32)  # a 256x256 frame at stride 4 and 8
    assert [int((fine <= k).sum()) for k in range(4)] == [64, 256, 1024, 4096]
    assert [int((first <= k).sum()) for k in range(3)] == [64, 256, 1024]
    order = prefix_order(16, 16, 4)
    assert (np.diff(levels.reshape(-1)[order].astype(int)) >= 0).all()
    assert tile_keep(np.array([[3, 0]]), 8, 16, 4).sum() == 64 + 1
    assert tile_costs(np.zeros((8, 8), bool), 4)[:, 0, 0].tolist() == [1, 4, 16, 64]

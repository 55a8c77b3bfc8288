import numpy as np
import torch

from vtok.budget.elastic import _greedy, choose_budget, keep_for
from vtok.format.layout import tile_costs


def test_greedy_spends_tokens_where_they_remove_most_error():
    # two tiles: tile 0 gains a lot from level 1, tile 1 little
    errors = np.array([[[100.0, 100.0]], [[10.0, 95.0]], [[5.0, 90.0]]])
    costs = np.array([[[1, 1]], [[4, 4]], [[16, 16]]])
    assert _greedy(errors, costs, target=120).tolist() == [[1, 0]]
    assert _greedy(errors, costs, target=1e9).tolist() == [[0, 0]]
    assert _greedy(errors, costs, target=0).tolist() == [[2, 2]]  # cannot reach it: everything


def test_keep_for_runs_and_levels():
    run = torch.zeros(8, 8, dtype=torch.bool)
    run[:4, :4] = True
    run_keep = torch.zeros(8, 8, dtype=torch.bool)
    run_keep[0, 0] = True
    keep = keep_for(torch.tensor([[2, 0], [1, 2]]), run, run_keep)
    assert keep[:4, :4].sum() == 1  # the run keeps what it had
    assert keep[:4, 4:].sum() == 1 and keep[4:, :4].sum() == 4 and keep[4:, 4:].all()
    assert tile_costs(run.numpy())[:, 0, 0].tolist() == [0, 0, 0]


def test_budget_meets_the_threshold_or_flags(clip):
    from vtok.media.video import read_frames
    from vtok.model.pixels import to_model
    from vtok.model.registry import load_model, resolve

    model = load_model(resolve("vtok-fsq"))
    top = model.config.levels - 1
    frames = np.stack(list(read_frames(clip))[:4])[None]
    x = to_model(frames, model.config.stride, "cpu")
    indices = model.encode(x)
    none = torch.zeros(indices.shape[1:], dtype=torch.bool)
    full = choose_budget(model, x, indices, none, none, frames=4, height=138, width=250, threshold=0)
    assert full.passes == 0 and (full.tile_levels == top).all() and full.keep.all()
    for threshold in (1.0, 0.05, 0.02, 1e-6):
        b = choose_budget(model, x, indices, none, none, frames=4, height=138, width=250, threshold=threshold)
        assert b.passes <= 4
        if b.missed:  # known after the full-budget pass alone
            assert threshold == 1e-6 and (b.tile_levels == top).all() and b.passes == 1
        else:
            assert b.mse <= threshold
            y = model.decode(indices, b.keep[None])[..., :138, :250]
            assert abs((y - x[..., :138, :250]).square().mean().item() - b.mse) < 1e-6
    loose = choose_budget(model, x, indices, none, none, frames=4, height=138, width=250, threshold=1.0)
    assert (loose.tile_levels == 0).all()  # anything passes: one token per tile


def test_four_level_search_with_context_meets_the_threshold_it_reports():
    from vtok.model.architectures import ModelConfig
    from vtok.model.tokenizer import Tokenizer

    torch.manual_seed(0)
    cfg = ModelConfig(width=8, latent_width=16, encoder_depth=1, decoder_depth=1, stride=4, levels=4, context=True)
    model = Tokenizer(cfg).eval()
    x = torch.rand(1, 3, 4, 64, 96) * 2 - 1
    context = torch.rand(1, 3, 64, 96) * 2 - 1
    indices = model.encode(x)
    none = torch.zeros(indices.shape[1:], dtype=torch.bool)
    y0 = model.decode(indices, None, context)
    for factor in (1.01, 1.5, 100):  # just above the full-budget error, looser, anything
        t = (y0 - x).square().mean().item() * factor
        b = choose_budget(model, x, indices, none, none, frames=4, height=64, width=96, threshold=t, context=context)
        assert not b.missed and b.mse <= t and b.passes <= 4 and b.tile_levels.max() <= 3
        y = model.decode(indices, b.keep[None], context)
        assert torch.equal(y, b.pixels) and abs((y - x).square().mean().item() - b.mse) < 1e-6
    tight = choose_budget(model, x, indices, none, none, frames=4, height=64, width=96, threshold=1e-9, context=context)
    assert tight.missed and tight.passes == 1 and (tight.tile_levels == 3).all()


def test_greedy_from_a_floor_never_goes_below_it():
    errors = np.array([[[100.0, 1.0]], [[50.0, 1.0]], [[10.0, 0.5]], [[5.0, 0.4]]])
    costs = np.array([[[1, 1]], [[4, 4]], [[16, 16]], [[64, 64]]])
    assert _greedy(errors, costs, target=1e9, floor=2).tolist() == [[2, 2]]
    assert _greedy(errors, costs, target=6, floor=2).tolist() == [[3, 2]]

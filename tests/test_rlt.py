import torch

from vtok.budget.runs import RunTracker
from vtok.format.layout import PATCH
from vtok.kernels.torch_ref import rlt_update


def block(value: float, h: int = 32, w: int = 48) -> torch.Tensor:
    """A flat block (3, 4, h, w) with pixels at `value` on [0, 1], mapped to [-1, 1]."""
    return torch.full((3, 4, h, w), value * 2 - 1)


def test_static_video_continues_every_run_after_the_first_block():
    tracker = RunTracker(6 / 255)
    assert not tracker.update(block(0.5)).any()  # the first block starts every run
    for _ in range(5):
        runs = tracker.update(block(0.5))
        assert runs.shape == (4, 6) and runs.all()


def test_slow_drift_is_caught_against_the_start_of_the_run():
    tracker = RunTracker(6 / 255)
    tracker.update(block(0.5))
    seen = []
    for i in range(1, 8):  # brighter by 2/255 per block: each step alone is under the threshold
        seen.append(bool(tracker.update(block(0.5 + 2 * i / 255)).all()))
    assert seen[:2] == [True, True] and seen[2] is False  # 6/255 from the run's start: a new run
    assert seen[3:5] == [True, True]  # and that new run starts from block 3's pixels


def test_only_the_changed_patch_leaves_its_run():
    tracker = RunTracker(6 / 255)
    base = block(0.3)
    tracker.update(base)
    moved = base.clone()
    moved[:, :, :PATCH, PATCH : 2 * PATCH] = 1.0
    runs = tracker.update(moved)
    assert not runs[:2, 2:4].any() and runs.sum() == runs.numel() - 4


def test_edge_patches_cut_short_by_the_frame_are_averaged_over_what_they_hold():
    b = block(0.5, 24, 40)
    b[..., 16:, 32:] = 1.0  # the bottom-right patch is 8x8 pixels, all moved by 0.5 on [0, 1]
    for threshold, expect in ((0.49, False), (0.51, True)):
        start = block(0.5, 24, 40)
        static = rlt_update(b, start, threshold)
        assert static.shape == (2, 3) and static.sum() == 5 + expect and bool(static[1, 2]) is expect
        assert torch.equal(start, b if not expect else block(0.5, 24, 40))


def test_zero_threshold_turns_runs_off():
    tracker = RunTracker(0.0)
    tracker.update(block(0.5))
    assert not tracker.update(block(0.5)).any()


def test_a_moved_patch_restarts_its_run_from_its_new_pixels_and_only_it():
    start = block(0.3)
    moved = block(0.3)
    moved[:, :, PATCH:, :PATCH] = 0.8
    moved[:, :, :PATCH, PATCH:] += 1 / 255  # still, within the threshold: keeps the old start
    expected = start.clone()
    expected[:, :, PATCH:, :PATCH] = 0.8
    static = rlt_update(moved, start, 6 / 255)
    assert static.tolist() == [[True, True, True], [False, True, True]]
    assert torch.equal(start, expected)

"""Lower the budgets of a `.vtok` file without re-encoding: `vtok trim`. Needs no model.

Each block keeps at most max tokens per frame x the frames it holds (a short last block gets its
own, smaller cap): tiles lose their finest level first, spread over the frame, down to one token
per tile. No tile goes empty: the format has no level below 0, and the models were trained to
infill with at least one token in every tile. A budget under that floor is refused, naming the
fewest tokens per frame the file can keep. Runs keep referring to what the trimmed blocks hold, so
the output decodes with the same model.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtok.errors import UsageError
from vtok.files import check_output
from vtok.format import VtokReader, VtokWriter
from vtok.format.layout import LEVELS, prefix_order, tile_costs, tile_size

__all__ = ["trim_file", "TrimResult", "lower_levels", "least_tokens"]


@dataclass(frozen=True)
class TrimResult:
    path: Path
    tokens_before: int
    tokens_after: int
    bytes: int


def lower_levels(run_mask: np.ndarray, tile_levels: np.ndarray, max_tokens: int, levels: int = LEVELS) -> np.ndarray:
    """Tile levels int8 (tile rows, tile cols), lowered until the block stores at most `max_tokens`.

    The highest level goes first; within a level, tiles go in coarse-to-fine order read backwards,
    so the cut spreads over the frame. No tile goes below level 0 (one token), so the block may
    still store more than `max_tokens` if that is under least_tokens(run_mask).
    """
    costs = tile_costs(run_mask, levels).reshape(levels, -1)
    lowered = tile_levels.astype(np.int64).copy()
    flat = lowered.reshape(-1)
    cells = np.arange(flat.size)
    total = int(costs[flat, cells].sum())
    spread = prefix_order(*tile_levels.shape)[::-1]  # the tile grid ordered like token positions, finest first
    while total > max_tokens and flat.max() > 0:
        top = flat.max()
        for t in spread:
            if flat[t] == top and total > max_tokens:
                total -= int(costs[top, t] - costs[top - 1, t])
                flat[t] -= 1
    return lowered.astype(np.int8)


def least_tokens(run_mask: np.ndarray, levels: int = LEVELS) -> int:
    """The fewest tokens a block with runs at run_mask (bool (rows, cols)) can store: one per tile
    whose level-0 position does not continue a run."""
    return int(tile_costs(run_mask, levels)[0].sum())


def _block_cap(max_tokens_per_frame: float, frames: int) -> int:
    """Tokens a block of `frames` real frames may store: max_tokens_per_frame x frames, rounded down.

    The 1e-9 keeps a per-frame figure printed to a few decimals (e.g. 76.67 for 230 tokens over
    3 frames) from losing a token to binary rounding.
    """
    return math.floor(max_tokens_per_frame * frames + 1e-9)


def _check_reachable(reader: VtokReader, max_tokens_per_frame: float) -> None:
    """Raise UsageError, naming the floor, unless every block can meet its cap with a token per tile."""
    h = reader.header
    worst = {}  # frames in the block: (least tokens per frame, block index), the largest over such blocks
    missed = False
    for block in reader.blocks():
        least = least_tokens(block.run_mask, h.levels)
        if least / block.frames > worst.get(block.frames, (-1.0, 0))[0]:
            worst[block.frames] = (least / block.frames, block.index)
        missed |= least > _block_cap(max_tokens_per_frame, block.frames)
    if not missed:
        return
    frames = max(worst, key=lambda f: worst[f])
    where = f"block {worst[frames][1]}, of {frames} frames"
    if frames != h.block_frames and h.block_frames in worst:  # a short block sets the floor: say what whole ones need
        where += f"; {_rounded_up(worst[h.block_frames][0]):g} in its blocks of {h.block_frames} frames"
    pixels = tile_size(h.levels) * h.token_stride
    raise UsageError(
        f"{max_tokens_per_frame:g} tokens per frame is out of reach: trimming keeps one token per "
        f"{pixels}x{pixels}-pixel tile (except in runs), at least {_rounded_up(worst[frames][0]):g} tokens per "
        f"frame in this file ({where})",
        option="max_tokens_per_frame",
    )


def _rounded_up(tokens_per_frame: float) -> float:
    """To two decimals, rounded up, so that asking for the figure shown succeeds."""
    return math.ceil(round(tokens_per_frame * 100, 6)) / 100


def trim_file(*, src: Path, dst: Path, max_tokens_per_frame: float, force: bool = False) -> TrimResult:
    """Write `dst`, a copy of `src` whose blocks each store at most max_tokens_per_frame x its real frames.

    Raises UsageError, naming the fewest tokens per frame the file can keep, if some block cannot
    get down to its cap even at one token per tile; nothing is written then.
    """
    src, dst = Path(src), Path(dst)
    if max_tokens_per_frame < 0:
        raise UsageError(
            f"max tokens per frame must be >= 0, not {max_tokens_per_frame:g}", option="max_tokens_per_frame"
        )
    before = after = 0
    with VtokReader(src) as reader:
        check_output(src, dst, force)
        h = reader.header
        _check_reachable(reader, max_tokens_per_frame)
        with VtokWriter(dst, h) as writer:
            previous = None
            for block in reader.blocks():
                previous = block.state(previous)  # the block's codes at every position it stores
                cap = _block_cap(max_tokens_per_frame, block.frames)
                levels = lower_levels(block.run_mask, block.tile_levels, cap, h.levels)
                after += writer.write_block(
                    previous.indices,
                    frames=block.frames,
                    run_mask=block.run_mask,
                    tile_levels=levels,
                    flags=block.flags,
                )
                before += block.codes.size
            audio = reader.audio()
            if audio is not None:
                writer.add_audio(audio)
            writer.close()
    return TrimResult(path=dst, tokens_before=before, tokens_after=after, bytes=dst.stat().st_size)

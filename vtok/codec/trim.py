"""Lower the budgets of a `.vtok` file without re-encoding: `vtok trim`. Needs no model.

Each block keeps at most a given number of tokens: tiles lose their finest level first, spread over
the frame, down to one token per tile. Runs keep referring to what the trimmed blocks hold, so the
output decodes with the same model.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtok.errors import UsageError
from vtok.files import check_output
from vtok.format import VtokReader, VtokWriter
from vtok.format.layout import LEVELS, prefix_order, tile_costs

__all__ = ["trim_file", "TrimResult", "lower_levels"]


@dataclass(frozen=True)
class TrimResult:
    path: Path
    tokens_before: int
    tokens_after: int
    bytes: int


def lower_levels(run_mask: np.ndarray, tile_levels: np.ndarray, max_tokens: int, levels: int = LEVELS) -> np.ndarray:
    """Tile levels int8 (tile rows, tile cols), lowered until the block stores at most `max_tokens`.

    The highest level goes first; within a level, tiles go in coarse-to-fine order read backwards,
    so the cut spreads over the frame. No tile goes below level 0 (one token).
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


def trim_file(*, src: Path, dst: Path, max_tokens_per_frame: float, force: bool = False) -> TrimResult:
    """Write `dst`, a copy of `src` whose blocks store at most max_tokens_per_frame x block_frames tokens."""
    src, dst = Path(src), Path(dst)
    if max_tokens_per_frame < 0:
        raise UsageError(
            f"max tokens per frame must be >= 0, not {max_tokens_per_frame:g}", option="max_tokens_per_frame"
        )
    before = after = 0
    with VtokReader(src) as reader:
        check_output(src, dst, force)
        h = reader.header
        cap = int(max_tokens_per_frame * h.block_frames)
        with VtokWriter(dst, h) as writer:
            previous = None
            for block in reader.blocks():
                previous = block.state(previous)  # the block's codes at every position it stores
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

"""Random access to the tokens of a frame range: `VtokReader.tokens(a, b)`, or `reader[a:b]`.

Tokens come in blocks of `block_frames` frames, so frames [a, b) are read as the blocks that
overlap them. A block that continues runs (vtok.budget.runs) takes those positions' codes and keep
bits from the block before it, so the first block's runs are resolved by walking back, block by
block, only until every run it continues has met the block where it started. The walk goes
through the seek index and never past a keyframe, which continues no runs: in a file with
keyframes (`keyframe_interval` > 0, where every chunk starts at one) it stays inside the first
block's chunk. A file without keyframes (models without context) has runs that may reach back to
block 0: a patch that never changed is resolved there, so on footage from a fixed camera the walk
goes back to the first chunk. `VtokReader.chunks_read` counts the chunks read. A read that starts
after the reader's last one ended walks back no further than that one's last block.

Needs numpy only. Context (the last decoded frame a model with context carries from block to
block) is a decoder matter: `keyframes` says which blocks decode without it.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vtok.errors import ContainerError
from vtok.format.blocks import Block, BlockState, ordered_positions

if TYPE_CHECKING:
    from vtok.format.container import VtokReader

__all__ = ["TokenWindow", "read_window"]


@dataclass(frozen=True)
class TokenWindow:
    """The tokens of frames [start, stop), as the n blocks that overlap them.

    first_block: the number of the block in row 0; block j covers frames
      (first_block + j) * block_frames onwards, so frame `start` is frame `offset` of block 0.
    indices: int64 (n, rows, cols) in [0, codebook_size): each position's code, runs resolved;
      0 where `keep` is False.
    keep: bool (n, rows, cols): True where the decoder gets a code (stored by the block, or carried
      by a run from the block that stored it); False where it infills.
    run: bool (n, rows, cols): True where the position continues a run and the block stores nothing.
      The codes a block stores are at `keep & ~run`.
    tile_levels: int8 (n, tile rows, tile cols) in 0..levels-1: each block's budget; a tile at level
      k keeps the positions of level <= k (vtok.format.layout).
    frames: int64 (n,): real frames in each block (block_frames, fewer in a short last block).
    keyframes: bool (n,): blocks that continue no runs and that a model with context decodes without it.
    """

    start: int
    stop: int
    first_block: int
    offset: int
    levels: int
    indices: np.ndarray
    keep: np.ndarray
    run: np.ndarray
    tile_levels: np.ndarray
    frames: np.ndarray
    keyframes: np.ndarray

    def __len__(self) -> int:
        """The number of blocks."""
        return len(self.indices)

    def sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept codes as one sequence: (tokens int64 (L,), per-block lengths int64 (n,), summing to L).

        Blocks in order; within a block, its kept positions (`keep`) in the coarse-to-fine order
        (vtok.format.layout), so each block's part starts with its coarsest tokens.
        """
        parts = [
            codes.reshape(-1)[ordered_positions(keep, self.levels)]
            for codes, keep in zip(self.indices, self.keep, strict=True)
        ]
        lengths = np.array([len(p) for p in parts], np.int64)
        return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), lengths


def read_window(reader: "VtokReader", start: int, stop: int) -> TokenWindow:
    """The tokens of frames [start, stop) of `reader`'s file; 0 <= start <= stop <= frames.

    Reads the chunks of the blocks that overlap them, and earlier chunks only while runs of the
    first block are still unresolved (see the module's docstring). Raises IndexError for a range
    outside the file, ContainerError for a damaged one.
    """
    h = reader.header
    if not 0 <= start <= stop <= h.frames:
        raise IndexError(f"frames [{start}, {stop}) are outside the file's 0..{h.frames}")
    first = start // h.block_frames
    last = -(-stop // h.block_frames) if stop > start else first
    blocks = [reader.block(i) for i in range(first, last)]
    states, previous = [], _state_before(reader, blocks[0]) if blocks else None
    for block in blocks:
        previous = block.state(previous)
        states.append(previous)
    if blocks:
        reader._last_state = (last - 1, previous)  # a read that goes on from here need not walk back
    rows, cols = h.grid

    def stack(values: list, dtype, shape: tuple) -> np.ndarray:
        return np.stack(values).astype(dtype, copy=False) if values else np.zeros((0, *shape), dtype)

    return TokenWindow(
        start=start,
        stop=stop,
        first_block=first,
        offset=start - first * h.block_frames,
        levels=h.levels,
        indices=stack([s.indices for s in states], np.int64, (rows, cols)),
        keep=stack([s.keep for s in states], bool, (rows, cols)),
        run=stack([b.run_mask for b in blocks], bool, (rows, cols)),
        tile_levels=stack([b.tile_levels for b in blocks], np.int8, h.tiles),
        frames=np.array([b.frames for b in blocks], np.int64),
        keyframes=np.array([h.is_keyframe(b.index) for b in blocks], bool),
    )


def _state_before(reader: "VtokReader", block: Block) -> BlockState | None:
    """The state of the block before `block`, exact where `block` continues runs (elsewhere 0 and
    False: `block.state` reads only those positions). None when it continues none.

    Walks back until each of those positions meets a block that stores it afresh, where the state is
    the block's own, or the block the reader's last read ended with, whose state it kept. A keyframe
    continues no runs, so the walk ends at one at the latest.
    """
    pending = block.run_mask.copy()
    if not pending.any():
        return None
    out = BlockState(np.zeros(pending.shape, np.int64), np.zeros(pending.shape, bool))
    last = reader._last_state
    index = block.index - 1
    while pending.any():
        if index < 0:
            raise ContainerError(f"block {block.index} continues runs that start before block 0")
        if last is not None and last[0] == index:
            found, state = pending, last[1]
        else:
            earlier = reader.block(index)
            found = pending & ~earlier.run_mask
            state = earlier.own_state() if found.any() else None
        if state is not None:
            out.indices[found] = state.indices[found]
            out.keep[found] = state.keep[found]
            pending &= ~found
        index -= 1
    return out

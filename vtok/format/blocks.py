"""What a block of a `.vtok` file holds, and how its runs resolve into the decoder's input."""

from dataclasses import dataclass, field

import numpy as np

from vtok.errors import ContainerError
from vtok.format.layout import LEVELS, prefix_order, tile_keep

__all__ = ["Block", "BlockState", "stored_positions", "ordered_positions", "FLAG_MISSED_THRESHOLD"]

FLAG_MISSED_THRESHOLD = 1  # the block misses the file's threshold even at the full budget


@dataclass
class Block:
    """One block of `frames` frames as stored.

    run_mask: bool (rows, cols), True where the position continues a run: it reuses the previous
      block's code and keep state, and stores nothing.
    tile_levels: int8 (tile rows, tile cols) in 0..levels-1: the budget. A fresh position is kept
      when its level (vtok.format.layout) is at most its tile's level; the decoder infills the others.
    codes: uint (n_codes,): the codes of the kept fresh positions, in coarse-to-fine order.
    """

    index: int
    frames: int
    flags: int
    run_mask: np.ndarray
    tile_levels: np.ndarray
    codes: np.ndarray = field(repr=False)
    levels: int = LEVELS

    @property
    def missed_threshold(self) -> bool:
        return bool(self.flags & FLAG_MISSED_THRESHOLD)

    def fresh_keep(self) -> np.ndarray:
        """bool (rows, cols): the positions whose codes this block stores."""
        return stored_positions(self.run_mask, self.tile_levels, self.levels)

    def own_state(self) -> "BlockState":
        """What this block stores, with nothing carried in: indices int64 (rows, cols), its codes at the
        stored positions and 0 elsewhere; keep bool (rows, cols), the stored positions. Exact wherever
        the block does not continue a run."""
        fresh = self.fresh_keep()
        indices = np.zeros(fresh.shape, np.int64)
        indices.reshape(-1)[ordered_positions(fresh, self.levels)] = self.codes
        return BlockState(indices, fresh)

    def state(self, previous: "BlockState | None") -> "BlockState":
        """The decoder's input for this block: every position's code and whether it is kept.

        previous: the state of the block before; only its values where this block continues runs are read.
        """
        own = self.own_state()
        if self.run_mask.any():
            if previous is None:
                raise ContainerError(f"block {self.index} continues runs but has no previous block")
            own.indices[self.run_mask] = previous.indices[self.run_mask]
            own.keep = own.keep | (self.run_mask & previous.keep)
        return own


@dataclass
class BlockState:
    """What the decoder sees for one block: indices int64 (rows, cols), keep bool (rows, cols)."""

    indices: np.ndarray
    keep: np.ndarray


def stored_positions(run_mask: np.ndarray, tile_levels: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """bool (rows, cols): fresh positions (not in a run) whose level is within their tile's budget."""
    return ~run_mask & tile_keep(tile_levels, *run_mask.shape, levels)


def ordered_positions(mask: np.ndarray, levels: int) -> np.ndarray:
    """Flat indices of the True positions of mask (rows, cols), in coarse-to-fine order."""
    order = prefix_order(*mask.shape, levels)
    return order[mask.reshape(-1)[order]]

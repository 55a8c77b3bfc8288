"""The coarse-to-fine order of the tokens in a block, so that any prefix decodes to a usable picture.

Token positions form a grid (rows, cols), one per 8x8 pixels. Each position has a level:
0 where row and column are both multiples of 4 (one per 32x32-pixel tile), 1 where both are
even (three more per tile), and 2 elsewhere (the remaining twelve). Tokens are ordered by level,
and within a level by a bit-reversed Morton code, so a partial level is spread evenly over the
frame instead of filling it from the top. The decoder infills the positions a prefix leaves out.
"""

import numpy as np

__all__ = ["LEVELS", "TILE", "position_levels", "prefix_order", "prefix_keep", "tile_keep", "tile_costs"]

LEVELS = 3
TILE = 4  # positions per tile side: the span of one level-0 token


def position_levels(rows: int, cols: int) -> np.ndarray:
    """Level of each position: uint8 (rows, cols) in {0, 1, 2}."""
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    even = (r % 2 == 0) & (c % 2 == 0)
    quad = (r % 4 == 0) & (c % 4 == 0)
    return (2 - even.astype(np.uint8) - quad.astype(np.uint8)).astype(np.uint8)


def _spread_key(rows: int, cols: int) -> np.ndarray:
    """Bit-reversed Morton code of each position: int64 (rows, cols); nearby positions get far-apart keys."""
    r = np.arange(rows, dtype=np.int64)[:, None] + np.zeros((1, cols), np.int64)
    c = np.arange(cols, dtype=np.int64)[None, :] + np.zeros((rows, 1), np.int64)
    morton = np.zeros((rows, cols), np.int64)
    for bit in range(15):
        morton |= ((r >> bit) & 1) << (2 * bit + 1) | ((c >> bit) & 1) << (2 * bit)
    reversed_ = np.zeros_like(morton)
    for bit in range(30):
        reversed_ |= ((morton >> bit) & 1) << (29 - bit)
    return reversed_


def prefix_order(rows: int, cols: int) -> np.ndarray:
    """Flat row-major position indices int64 (rows * cols,), coarse to fine."""
    levels = position_levels(rows, cols).reshape(-1)
    return np.lexsort((_spread_key(rows, cols).reshape(-1), levels))


def prefix_keep(n: int, rows: int, cols: int) -> np.ndarray:
    """Which positions the first `n` tokens in order cover: bool (rows, cols)."""
    keep = np.zeros(rows * cols, bool)
    keep[prefix_order(rows, cols)[:n]] = True
    return keep.reshape(rows, cols)


def tile_keep(tile_levels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Positions kept when each TILE x TILE tile keeps the tokens up to its level.

    tile_levels: int (ceil(rows / TILE), ceil(cols / TILE)) in {-1, 0, 1, 2}; -1 keeps none.
    Returns bool (rows, cols).
    """
    per_position = np.repeat(np.repeat(tile_levels, TILE, 0), TILE, 1)[:rows, :cols]
    return position_levels(rows, cols) <= per_position


def tile_costs(run_mask: np.ndarray) -> np.ndarray:
    """Tokens each tile stores at each level: int64 (LEVELS, tile rows, tile cols).

    run_mask: bool (rows, cols); positions that continue a run store nothing at any level.
    """
    rows, cols = run_mask.shape
    tiles = (-(-rows // TILE), -(-cols // TILE))
    levels = position_levels(rows, cols)
    pad = ((0, tiles[0] * TILE - rows), (0, tiles[1] * TILE - cols))
    out = np.zeros((LEVELS, *tiles), np.int64)
    for k in range(LEVELS):
        counted = np.pad(~run_mask & (levels <= k), pad)
        out[k] = counted.reshape(tiles[0], TILE, tiles[1], TILE).sum((1, 3))
    return out

"""The coarse-to-fine order of the tokens in a block, so that any prefix decodes to a usable picture.

Token positions form a grid (rows, cols), one per `stride` x `stride` pixels. With L levels, a
budget tile is T x T positions, T = 2^(L-1) (32 x 32 pixels for both shipped layouts: stride 8
with 3 levels, stride 4 with 4 levels). A position's level is 0 where row and column are both
multiples of T (one per tile), 1 where both are multiples of T/2 (three more per tile), and so on,
down to L-1 elsewhere. Tokens are ordered by level, and within a level by a bit-reversed Morton
code, so a partial level is spread evenly over the frame instead of filling it from the top. The
decoder infills the positions a prefix leaves out.
"""

import functools

import numpy as np

__all__ = [
    "LEVELS",
    "TILE",
    "tile_size",
    "position_levels",
    "prefix_order",
    "prefix_keep",
    "tile_keep",
    "tile_costs",
    "tile_grid",
    "LAYOUTS",
    "FIRST_STRIDE",
    "LEVELS",
    "PATCH",
]

LAYOUTS = ((8, 3), (4, 4))  # the (token stride, levels) pairs models and files use
FIRST_STRIDE, LEVELS = LAYOUTS[0]  # the first layout: the defaults of files and models that name none
TILE = 4  # positions per tile side at LEVELS levels
PATCH = 16  # pixels per side of a run-length patch (vtok.budget.runs): 2x2 positions at stride 8, 4x4 at 4


def tile_size(levels: int) -> int:
    """Positions per tile side: the span of one level-0 token."""
    return 1 << (levels - 1)


def tile_grid(rows: int, cols: int, levels: int = LEVELS) -> tuple[int, int]:
    """Budget tiles covering a grid of rows x cols positions: (tile rows, tile cols), rounded up."""
    t = tile_size(levels)
    return -(-rows // t), -(-cols // t)


def position_levels(rows: int, cols: int, levels: int = LEVELS) -> np.ndarray:
    """Level of each position: uint8 (rows, cols) in 0..levels-1."""
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    out = np.full((rows, cols), levels - 1, np.uint8)
    for k in range(1, levels):  # multiples of 2^k sit one level coarser than multiples of 2^(k-1)
        step = 1 << k
        out -= ((r % step == 0) & (c % step == 0)).astype(np.uint8)
    return out


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


@functools.lru_cache(maxsize=4)
def prefix_order(rows: int, cols: int, levels: int = LEVELS) -> np.ndarray:
    """Flat row-major position indices int64 (rows * cols,), coarse to fine; read-only.

    Cached: a reader asks for it once per block, and the largest grid (4096 x 4096) takes seconds.
    """
    lv = position_levels(rows, cols, levels).reshape(-1)
    order = np.lexsort((_spread_key(rows, cols).reshape(-1), lv))
    order.setflags(write=False)
    return order


def prefix_keep(n: int, rows: int, cols: int, levels: int = LEVELS) -> np.ndarray:
    """Which positions the first `n` tokens in order cover: bool (rows, cols)."""
    keep = np.zeros(rows * cols, bool)
    keep[prefix_order(rows, cols, levels)[:n]] = True
    return keep.reshape(rows, cols)


def tile_keep(tile_levels: np.ndarray, rows: int, cols: int, levels: int = LEVELS) -> np.ndarray:
    """Positions kept when each tile keeps the tokens up to its level.

    tile_levels: int (ceil(rows / T), ceil(cols / T)) in -1..levels-1; -1 keeps none.
    Returns bool (rows, cols).
    """
    t = tile_size(levels)
    per_position = np.repeat(np.repeat(tile_levels, t, 0), t, 1)[:rows, :cols]
    return position_levels(rows, cols, levels) <= per_position


def tile_costs(run_mask: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Tokens each tile stores at each level: int64 (levels, tile rows, tile cols).

    run_mask: bool (rows, cols); positions that continue a run store nothing at any level.
    """
    rows, cols = run_mask.shape
    t = tile_size(levels)
    tiles = tile_grid(rows, cols, levels)
    lv = position_levels(rows, cols, levels)
    pad = ((0, tiles[0] * t - rows), (0, tiles[1] * t - cols))
    out = np.zeros((levels, *tiles), np.int64)
    for k in range(levels):
        counted = np.pad(~run_mask & (lv <= k), pad)
        out[k] = counted.reshape(tiles[0], t, tiles[1], t).sum((1, 3))
    return out

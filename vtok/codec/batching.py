"""Frames into blocks, and blocks into batches sized to bound memory, whatever the video's length."""

from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

__all__ = ["group_blocks", "batches", "blocks_per_batch"]

T = TypeVar("T")

BATCH_PIXELS = 4 * 1280 * 736  # per forward pass: about four 256x256 blocks, or one 720p block


def group_blocks(frames: Iterable[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Group frames uint8 (H, W, 3) into blocks uint8 (size, H, W, 3); the last is padded by
    repeating its last frame. Yields (block, number of real frames in it)."""
    buffer: list[np.ndarray] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == size:
            yield np.stack(buffer), size
            buffer = []
    if buffer:
        real = len(buffer)
        yield np.stack(buffer + [buffer[-1]] * (size - real)), real


def batches(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Group items into lists of n (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def blocks_per_batch(width: int, height: int, frames_per_block: int) -> int:
    """How many blocks of this size one forward pass takes: at least one."""
    return max(1, BATCH_PIXELS // (frames_per_block * width * height))

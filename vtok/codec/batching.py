"""Frames into blocks, and blocks into batches sized to bound memory, whatever the video's length."""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

__all__ = ["group_blocks", "batches", "blocks_per_batch", "prefetch"]

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


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of `items`, produced by a background thread up to `depth` ahead (a bounded queue,
    so memory stays bounded): video decoding runs beside the model instead of before it.

    An exception in the producer is raised here, at the item it failed on. When the consumer stops
    early (an error, Ctrl-C, or closing the generator), the producer stops at its next item.
    """
    items = iter(items)
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)  # wakes up to see `stop`: a full queue never hangs the thread
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # handed to the consumer, raised there
            put((_DONE, error))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # a generator's `with` blocks (an open video) end in this thread, which owns it

    thread = threading.Thread(target=produce, name="vtok-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = out.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()

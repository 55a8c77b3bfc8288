"""Windows of tokens from many `.vtok` files, for training a model on them: numpy only.

`TokenWindows` indexes every window of `frames` frames in a folder of `.vtok` files (or those a
JSON-Lines manifest lists) and reads one by number through the seek index
(vtok.format.access). `pad_batch` puts windows of different lengths into one batch. Files are
opened lazily, one handle per file and per process, so DataLoader workers never share a file
position; vtok.data.dataset wraps this for torch.
"""

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from vtok.errors import ContainerError, UsageError
from vtok.folder.manifest import read_manifest as read_folder_manifest
from vtok.format import Header, VtokReader

__all__ = ["TokenWindows", "pad_batch", "find_files", "window_bounds"]

SUFFIX = ".vtok"
# What pad_batch fills each per-block array with past a window's last block: no code, nothing kept.
_BLOCK_FILL = {"block_lengths": 0, "indices": 0, "keep": False, "tile_levels": -1}


def find_files(source: "str | os.PathLike | Iterable[str | os.PathLike]") -> list[Path]:
    """The `.vtok` files `source` names: a folder (its .vtok files at any depth, sorted), a JSON-Lines
    manifest (.jsonl, see `read_manifest`), a .vtok file, or a list of these."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
        if path.suffix.lower() == ".jsonl":
            return read_manifest(path)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        return [path]
    return [p for item in source for p in find_files(item)]


def read_manifest(path: Path) -> list[Path]:
    """The `.vtok` files a folder encode's manifest (`OUT/manifest.jsonl`, vtok.folder.manifest) lists
    as encoded: the last record of each source whose status is ok, its `output` relative to the
    manifest's folder, in source order."""
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such manifest")
    records = sorted(read_folder_manifest(path).values(), key=lambda r: r.source)
    if not records:
        raise UsageError(f"{path}: holds no manifest records (one JSON object a line, as `vtok encode DIR` writes)")
    return [Path(path).parent / r.output for r in records if r.status == "ok"]


def window_bounds(frames: int, size: int, stride: int, partial: bool) -> list[tuple[int, int]]:
    """The frame ranges [start, stop) of the windows of a video of `frames` frames: every `stride`
    frames, `size` frames long; with `partial`, one shorter last window takes the frames the others
    leave out at the end (and a video shorter than `size` gives one)."""
    if frames == 0:
        return []
    out = [(s, s + size) for s in range(0, frames - size + 1, stride)]
    following = out[-1][0] + stride if out else 0
    if partial and following < frames and (not out or out[-1][1] < frames):
        out.append((following, frames))
    return out


def _naming(path: Path, error: ContainerError) -> ContainerError:
    """The reader's error with the file's whole path in front (the reader names only the file)."""
    message = str(error)
    if not message.startswith(f"{path}: "):
        message = f"{path}: {message.removeprefix(f'{path.name}: ')}"
    return ContainerError(message)


class TokenWindows:
    """Every window of `frames` frames of the `.vtok` files in `source`, as numpy arrays.

    source: see `find_files`. stride: frames from one window's start to the next (default
    `frames`: windows side by side). partial: also the shorter last window of each file.
    With `frames` and `stride` multiples of the files' block_frames, windows are whole blocks.

    Opening reads each file's header and seek index, then closes it; a damaged file raises
    ContainerError naming its path (as does one found damaged later, when a window is read).
    `headers[k]` is file k's Header; `windows` int64 (W, 3): file number, start, stop.
    At most `max_open` files stay open per process; handles are opened on first use in the process
    that reads, never copied into a worker. Use as a context manager, or `close()`.
    """

    def __init__(self, source, *, frames: int, stride: int | None = None, partial: bool = False, max_open: int = 16):
        if frames < 1 or (stride is not None and stride < 1):
            raise UsageError(f"window frames and stride must be >= 1, not {frames} and {stride}")
        self.files = find_files(source)
        self.headers = [self._header(p) for p in self.files]
        stride = stride or frames
        rows = [
            (k, a, b) for k, h in enumerate(self.headers) for a, b in window_bounds(h.frames, frames, stride, partial)
        ]
        self.windows = np.array(rows, np.int64).reshape(-1, 3)
        self.max_open = max_open
        self._readers: dict[int, VtokReader] = {}
        self._pid = os.getpid()

    @staticmethod
    def _header(path: Path) -> Header:
        try:
            with VtokReader(path) as reader:
                return reader.header
        except ContainerError as e:
            raise _naming(path, e) from None

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        """Window i as a dict:

        path: str; start, stop: int, its frames [start, stop); offset: int, frames of its first block
          before `start`.
        tokens: int64 (L,) in [0, codebook_size): the kept codes, block after block, each block's
          coarse to fine (TokenWindow.sequence); block_lengths: int64 (n,), each block's share of L.
        indices: int64 (n, rows, cols), runs resolved, 0 where not kept; keep: bool (n, rows, cols);
          tile_levels: int8 (n, tile rows, tile cols) in 0..levels-1, each block's budget.
        """
        k, start, stop = (int(v) for v in self.windows[i])
        path = self.files[k]
        try:
            w = self._reader(k).tokens(start, stop)
        except ContainerError as e:
            raise _naming(path, e) from None
        tokens, lengths = w.sequence()
        return {
            "path": str(path),
            "start": start,
            "stop": stop,
            "offset": w.offset,
            "tokens": tokens,
            "block_lengths": lengths,
            "indices": w.indices,
            "keep": w.keep,
            "tile_levels": w.tile_levels,
        }

    def __iter__(self) -> Iterator[dict]:
        """Every window in order (files sorted, then by start)."""
        return (self[i] for i in range(len(self)))

    def batches(self, size: int, *, shuffle: bool = False, seed: int | None = None, pad: int = -1) -> Iterator[dict]:
        """Windows in batches of `size` (the last may be smaller), padded by `pad_batch`; with
        `shuffle`, in a random order drawn from `seed`. The loop for users without torch."""
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for at in range(0, len(order), size):
            yield pad_batch([self[int(i)] for i in order[at : at + size]], pad=pad)

    def _reader(self, k: int) -> VtokReader:
        """File k's reader in this process: a worker forked from the process that opened it would
        share its file position, so a new process starts with no handles."""
        if self._pid != os.getpid():
            self._readers, self._pid = {}, os.getpid()
        reader = self._readers.pop(k, None) or VtokReader(self.files[k])
        self._readers[k] = reader  # most recently used last
        while len(self._readers) > self.max_open:
            self._readers.pop(next(iter(self._readers))).close()
        return reader

    def close(self) -> None:
        """Close the files this process opened."""
        if self._pid == os.getpid():
            for reader in self._readers.values():
                reader.close()
        self._readers = {}

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_readers": {}}  # a spawned worker opens its own

    def __enter__(self) -> "TokenWindows":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def pad_batch(items: list[dict], *, pad: int = -1) -> dict:
    """Windows (TokenWindows items) as one batch of B, padded to the longest:

    tokens: int64 (B, L max), `pad` past each window's end; lengths: int64 (B,), each window's L.
    indices, keep, tile_levels, block_lengths: (B, n max, ...), padded with 0, False, -1 (a tile that
      keeps nothing) and 0; blocks: int64 (B,), each window's n.
    path: list of B str; start, stop, offset: int64 (B,).
    Every window must have the same grid (files of one size and model).
    """
    if not items:
        raise ValueError("a batch needs at least one window")
    grids = {item["indices"].shape[1:] for item in items}
    if len(grids) > 1:
        raise ValueError(f"windows of different grids {sorted(grids)} cannot share a batch: {items[0]['path']}, ...")
    lengths = np.array([len(item["tokens"]) for item in items], np.int64)
    blocks = np.array([len(item["indices"]) for item in items], np.int64)
    tokens = np.full((len(items), int(lengths.max())), pad, np.int64)
    for row, item in zip(tokens, items, strict=True):
        row[: len(item["tokens"])] = item["tokens"]
    batch = {"path": [item["path"] for item in items], "tokens": tokens, "lengths": lengths, "blocks": blocks}
    for key in ("start", "stop", "offset"):
        batch[key] = np.array([item[key] for item in items], np.int64)
    for key, fill in _BLOCK_FILL.items():
        first = items[0][key]
        out = np.full((len(items), int(blocks.max()), *first.shape[1:]), fill, first.dtype)
        for row, item in zip(out, items, strict=True):
            row[: len(item[key])] = item[key]
        batch[key] = out
    return batch

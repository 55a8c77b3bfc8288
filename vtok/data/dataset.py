"""The torch side of vtok.data: `TokenDataset`, a map-style Dataset of token windows, and `collate`,
which pads them into tensors. The only module of vtok.data that imports torch."""

import numpy as np
import torch
from torch.utils.data import Dataset

from vtok.data.windows import TokenWindows, pad_batch

__all__ = ["TokenDataset", "collate"]


class TokenDataset(TokenWindows, Dataset):
    """TokenWindows as a torch Dataset: `DataLoader(TokenDataset(folder, frames=N), collate_fn=collate)`.

    Items are TokenWindows' numpy dicts; `collate` makes a batch of tensors. Safe with any number of
    workers and either start method: each worker opens the files it reads itself.
    """


def collate(items: list[dict], pad: int = -1) -> dict:
    """`pad_batch` with its arrays as tensors: tokens int64 (B, L max), `pad` past `lengths` int64 (B,);
    indices int64, keep bool (B, n max, rows, cols); tile_levels int8 (B, n max, tile rows, tile
    cols), -1 past `blocks` int64 (B,); block_lengths, start, stop, offset int64; path a list of str.
    For another `pad`: `functools.partial(collate, pad=...)`."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in pad_batch(items, pad=pad).items()}

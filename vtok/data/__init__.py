"""Token windows from folders of `.vtok` files, for training models on the tokens.

numpy only (vtok.data.windows): `TokenWindows(folder, frames=N)`, its `batches(size)`, `pad_batch`.
torch (vtok.data.dataset, imported only when one of its names is first used): `TokenDataset`, a
`torch.utils.data.Dataset` of the same windows, and `collate`, which pads them into tensors.
"""

from vtok.data.windows import TokenWindows, find_files, pad_batch, read_manifest, window_bounds

__all__ = ["TokenWindows", "TokenDataset", "collate", "pad_batch", "find_files", "read_manifest", "window_bounds"]

_TORCH_NAMES = ("TokenDataset", "collate")


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from vtok.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'vtok.data' has no attribute {name!r}")

"""Training tokenizers: `run_training(sources, TrainConfig(...))` is what `vtok train` does.

Modules, each importing only those above it: config (TrainConfig), data (frame cache, fresh
windows), windows (fixed windows), masks (keep masks), checkpoint (checkpoints and export),
loop (train_model, evaluate), run (run_training).
"""

from vtok.train.checkpoint import TrainResult, export
from vtok.train.config import TrainConfig
from vtok.train.data import WindowSampler
from vtok.train.loop import evaluate, train_model
from vtok.train.masks import MaskSampler
from vtok.train.run import run_training

__all__ = [
    "TrainConfig",
    "run_training",
    "train_model",
    "evaluate",
    "export",
    "TrainResult",
    "WindowSampler",
    "MaskSampler",
]

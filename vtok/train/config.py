"""The settings of one training run: `TrainConfig`, checked before any work starts."""

from dataclasses import dataclass
from pathlib import Path

from vtok.errors import UsageError
from vtok.format.layout import tile_size
from vtok.model.architectures import ARCHITECTURES, ModelConfig
from vtok.model.registry import builtin_dir, pick_device
from vtok.train.masks import PREFIX_SCALES

__all__ = ["TrainConfig", "LOSSES", "DEFAULT_ENTROPY_WEIGHT"]

LOSSES = ("mse", "log-mse")
DEFAULT_ENTROPY_WEIGHT = 0.01  # an LFQ model's entropy penalty beside its reconstruction loss


@dataclass(frozen=True)
class TrainConfig:
    """What `vtok train` trains, on what windows, for how long and where the results go.

    Training stops at `steps` or `minutes`, whichever comes first; the learning rate follows a
    cosine from `lr` over that budget. `masks_after` is the share of the schedule (0 to 1) trained
    at the full budget before random keep masks start; `full_share` is the share of the masked steps'
    windows that still keep every token; `prefix_scale` ("linear" or "log") draws the length of the
    others' random prefixes uniformly over token counts or over their logarithm (MaskSampler).
    `entropy_weight` weighs an LFQ model's entropy penalty (None: DEFAULT_ENTROPY_WEIGHT; FSQ has no
    such term). `loss` is "mse" (the mean squared error of the batch) or "log-mse" (the mean over
    windows of log(MSE + 1e-4): each window's error in dB, so the easy windows and the full budget
    are not drowned out by the hard ones and the small budgets).
    """

    model: str = "vtok-fsq"  # architecture name in vtok.model.architectures.ARCHITECTURES
    out_dir: Path = Path("runs")
    steps: int = 1_000_000
    minutes: float = 30.0
    batch: int = 16
    crop: int = 96
    lr: float = 1e-3
    masks_after: float = 0.0
    full_share: float = 1 / 3
    prefix_scale: str = "linear"  # or "log"
    entropy_weight: float | None = None  # LFQ only; None: DEFAULT_ENTROPY_WEIGHT
    loss: str = "mse"  # or "log-mse"
    device: str = "cpu"  # or "auto": CUDA when available
    seed: int = 0
    windows: int = 0  # >0: sample this many fixed windows up front instead of fresh ones
    save_windows: Path | None = None
    cache: Path | None = None  # None: $VTOK_CACHE or ~/.cache/vtok/frames
    resume: Path | None = None
    resumed_lr: float = 1.0  # share of lr for the layers `resume` had; new and reshaped ones get all of it
    force: bool = False  # replace an existing model of this name in out_dir

    def check(self) -> None:
        """Raise a UsageError naming the field (`option`) of the first value out of its range."""
        if self.model not in ARCHITECTURES:
            known = ", ".join(ARCHITECTURES)
            raise UsageError(f"unknown architecture {self.model!r}; known: {known}", option="model")
        arch = self.architecture
        tile = tile_size(arch.levels) * arch.stride  # pixels per side of one budget tile: crops are whole tiles
        if self.crop < tile or self.crop % tile:
            raise UsageError(f"crop {self.crop} is not a positive multiple of {tile} (one budget tile)", option="crop")
        self._check_schedule()
        if self.entropy_weight is not None:
            if arch.quantizer["kind"] != "lfq":
                raise UsageError(f"entropy_weight is for LFQ models, not {self.model}", option="entropy_weight")
            if not self.entropy_weight >= 0:
                raise UsageError(f"entropy_weight {self.entropy_weight} is negative", option="entropy_weight")
        for option, value, known in (("loss", self.loss, LOSSES), ("prefix_scale", self.prefix_scale, PREFIX_SCALES)):
            if value not in known:
                what = option.replace("_", " ")
                raise UsageError(f"unknown {what} {value!r}; known: {', '.join(known)}", option=option)
        pick_device(self.device)

    def _check_schedule(self) -> None:
        """`check` for the counts and shares: batch, minutes, masks_after, full_share, resumed_lr and windows."""
        if self.batch < 1:
            raise UsageError(f"batch {self.batch} is not at least 1", option="batch")
        if not self.minutes > 0:  # written so that NaN fails too
            raise UsageError(f"minutes {self.minutes} is not positive", option="minutes")
        if not 0 <= self.masks_after <= 1:
            raise UsageError(f"masks_after {self.masks_after} is not between 0 and 1", option="masks_after")
        if not 0 <= self.full_share <= 1:
            raise UsageError(f"full_share {self.full_share} is not between 0 and 1", option="full_share")
        if not 0 < self.resumed_lr <= 1:
            raise UsageError(f"resumed_lr {self.resumed_lr} is not in (0, 1]", option="resumed_lr")
        if self.windows < 0:
            raise UsageError(f"windows {self.windows} is negative", option="windows")

    def check_outputs(self) -> None:
        """Raise a UsageError (option `output`) if training would write into the installed package's
        weights, or replace a model or checkpoint in `out_dir` without `force`. Resuming the run's own
        checkpoint (`out_dir/MODEL.checkpoint.safetensors`) continues that run, so it may replace them."""
        out = self.out_dir.resolve()
        if out == builtin_dir().resolve():
            raise UsageError(f"{self.out_dir} holds the installed models; train into another folder", option="output")
        own_checkpoint = out / f"{self.model}.checkpoint.safetensors"
        if self.force or (self.resume is not None and self.resume.resolve() == own_checkpoint):
            return
        for path in (out / f"{self.model}.safetensors", own_checkpoint):
            if path.exists():
                raise UsageError(f"{path} exists; pass --force to replace it, or train into another folder")

    @property
    def architecture(self) -> ModelConfig:
        """The ModelConfig named by `model` (call `check` first: KeyError if unknown)."""
        return ARCHITECTURES[self.model]

"""`vtok train`: its options and the command, which vtok.cli.commands registers on the app."""

from pathlib import Path
from typing import Annotated

import typer

from vtok.cli.options import Device, errors, log

__all__ = ["train"]


# train's own options, named here so that its signature stays readable
TrainSources = Annotated[
    list[Path],
    typer.Argument(
        help="Folders or files of videos and images, or one windows .safetensors saved by --save-windows.",
        metavar="SOURCES",
    ),
]
Architecture = Annotated[
    str,
    typer.Option(
        help="Architecture to train: vtok-fsq, vtok-lfq, or another design the README lists (vtok-fsq-s8, ...).",
        metavar="ARCH",
    ),
]
RunFolder = Annotated[
    Path,
    typer.Option(
        "--output", "--out", "-o", help="Folder for NAME.safetensors and manifest.json (not vtok/weights/).",
        metavar="DIR",
    ),
]  # fmt: skip
FixedWindows = Annotated[
    int,
    typer.Option(help="Sample this many fixed windows up front; 0 draws fresh ones every step.", min=0, metavar="N"),
]
FrameCache = Annotated[
    Path | None,
    typer.Option(
        help="Folder of decoded training frames, kept under 16 GiB by dropping the least recently used "
        "[default: $VTOK_CACHE or ~/.cache/vtok/frames].",
        metavar="DIR",
    ),
]
MasksAfter = Annotated[
    float,
    typer.Option(
        help="Share of the schedule at the full budget before random keep masks start.", min=0, max=1, metavar="SHARE"
    ),
]
FullShare = Annotated[
    float,
    typer.Option(
        help="Share of the windows that keep every token once keep masks have started; the rest keep a "
        "random prefix or a random level per tile, half each.",
        show_default="1/3",
        min=0,
        max=1,
        metavar="SHARE",
    ),
]
PrefixScale = Annotated[
    str,
    typer.Option(
        help="How the random prefixes' lengths are drawn: linear (uniform over token counts) or log "
        "(uniform over their logarithm: each doubling of the budget as often).",
        metavar="SCALE",
    ),
]
EntropyWeight = Annotated[
    float | None,
    typer.Option(
        help="Weight of the entropy penalty that spreads an LFQ model's codes.", show_default="0.01", min=0, metavar="W"
    ),
]
Resume = Annotated[
    Path | None,
    typer.Option(
        help="A checkpoint to resume (weights, optimizer, schedule), or weights to fine-tune.", metavar="FILE"
    ),
]

ResumedLr = Annotated[
    float,
    typer.Option(
        help="Share of the learning rate for the layers the --resume weights already had; layers new to "
        "the architecture, or reshaped, train at the full rate. A run's own checkpoint keeps the shares it "
        "began with.",
        min=0,
        max=1,
        metavar="SHARE",
    ),
]


def train(
    sources: TrainSources,
    model: Architecture = "vtok-fsq",
    output: RunFolder = Path("runs"),
    steps: Annotated[int, typer.Option(help="Stop after this many steps.", metavar="N")] = 1_000_000,
    minutes: Annotated[
        float, typer.Option(help="Stop after this many minutes; the LR schedule spans it.", metavar="M")
    ] = 30.0,
    windows: FixedWindows = 0,
    save_windows: Annotated[Path | None, typer.Option(help="Save the fixed windows here.", metavar="FILE")] = None,
    cache: FrameCache = None,
    batch: Annotated[int, typer.Option(help="Windows per step.", metavar="N")] = 16,
    crop: Annotated[int, typer.Option(help="Training crop size in pixels (a multiple of 32).", metavar="PIXELS")] = 96,
    lr: Annotated[float, typer.Option(help="Peak learning rate.", metavar="LR")] = 1e-3,
    masks_after: MasksAfter = 0.0,
    full_share: FullShare = 1 / 3,
    prefix_scale: PrefixScale = "linear",
    entropy_weight: EntropyWeight = None,
    loss: Annotated[
        str,
        typer.Option(
            help="mse, or log-mse: the mean of each window's log error, so that easy windows and the full "
            "budget weigh as much as hard ones and small budgets.",
            metavar="KIND",
        ),
    ] = "mse",
    device: Device = "auto",
    seed: Annotated[
        int, typer.Option(help="Seeds the model's initialisation, the windows drawn and the keep masks.", metavar="N")
    ] = 0,
    resume: Resume = None,
    resumed_lr: ResumedLr = 1.0,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace a same-name model in the output.")] = False,
) -> None:
    """Train a tokenizer and write its weights and manifest entry."""
    from vtok.train import TrainConfig, run_training

    with errors():
        schedule = dict(
            steps=steps,
            minutes=minutes,
            batch=batch,
            crop=crop,
            lr=lr,
            loss=loss,
            masks_after=masks_after,
            full_share=full_share,
            prefix_scale=prefix_scale,
            entropy_weight=entropy_weight,
        )
        data = dict(
            windows=windows, save_windows=save_windows, cache=cache, resume=resume, resumed_lr=resumed_lr, force=force
        )
        config = TrainConfig(model=model, out_dir=output, device=device, seed=seed, **schedule, **data)
        entry = run_training(sources, config, log=log)
    print(f"{model}: {entry['file']} sha256 {entry['sha256']} {entry['metrics']}")

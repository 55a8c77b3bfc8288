"""The `vtok` command line: each command parses its options and calls one library function.

Results go to stdout; progress and errors go to stderr. A `VtokError` becomes one line on stderr
and exit code 1; usage errors exit with code 2.
"""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from vtok.errors import UsageError, VtokError
from vtok.files import check_output

app = typer.Typer(
    name="vtok",
    help="A neural video codec: video to discrete FSQ/LFQ tokens in a .vtok file, and back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

Output = Annotated[Path, typer.Option("--output", "-o", help="Where to write the result.", dir_okay=False)]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output if it exists.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, or cuda[:N].")]
ModelSpec = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="A built-in name (see `vtok models`), a weights folder, or hf:owner/repo[@rev]."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.callback()
def _root() -> None:
    """A neural video codec: video to discrete FSQ/LFQ tokens in a .vtok file, and back."""


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 1, without a traceback."""
    try:
        yield
    except VtokError as e:
        print(f"vtok: error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except ValueError as e:  # invalid option values caught by the library
        print(f"vtok: error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("vtok: interrupted; no output written", file=sys.stderr)
        raise typer.Exit(130) from None


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator:
    """A Rich progress bar on stderr, shown only when stderr is a terminal. Yields advance(n)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total or None)
        yield lambda n, total=None: bar.update(task, advance=n, total=total or bar.tasks[0].total)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@app.command()
def encode(
    src: Annotated[Path, typer.Argument(help="Input video: any file PyAV reads.", dir_okay=False)],
    output: Output,
    model: ModelSpec = "vtok-fsq",
    threshold: Annotated[
        float,
        typer.Option(
            help="Target MSE per block, pixels on [-1,1] (0.003 is about 31.2 dB): each block gets the "
            "fewest tokens that meet it. 0 is the full budget.",
            min=0.0,
        ),
    ] = 0.003,
    rlt_threshold: Annotated[
        float,
        typer.Option(
            help="A 16x16 patch whose mean absolute difference (pixels on [0,1]) from the start of its run "
            "stays under this stores no tokens.",
            min=0.0,
        ),
    ] = 6 / 255,
    no_rlt: Annotated[bool, typer.Option("--no-rlt", help="Turn run-length tokenization off.")] = False,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Tokenize a video into a .vtok file."""
    from vtok.codec import encode_file
    from vtok.media.video import probe

    with _errors():
        total = probe(src).frames_hint
        with _progress(f"encode {src.name}", total) as advance:
            r = encode_file(
                src=src,
                dst=output,
                model=model,
                threshold=threshold,
                rlt_threshold=0.0 if no_rlt else rlt_threshold,
                force=force,
                device=device,
                progress=advance,
            )
    print(
        f"{r.path}: {r.frames} frames, {r.blocks} blocks, {r.tokens} tokens "
        f"({r.full_tokens / max(r.tokens, 1):.2f}x fewer than the full budget), {r.bytes} bytes, "
        f"{r.decoder_passes:.2f} decoder passes per block"
        + (f", {r.flagged_blocks} blocks miss the threshold at the full budget" if r.flagged_blocks else "")
    )


@app.command()
def decode(
    src: Annotated[Path, typer.Argument(help="Input .vtok file.", dir_okay=False)],
    output: Output,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Where the file's model is, if not built in: a folder or hf:owner/repo."),
    ] = None,
    crf: Annotated[int, typer.Option(help="H.264 quality: 0 best, 51 worst.", min=0, max=51)] = 18,
    lossless: Annotated[bool, typer.Option(help="Store the decoded RGB exactly (libx264rgb, crf 0).")] = False,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Decode a .vtok file back to an H.264 mp4 (with the source's audio, if it had any)."""
    from vtok.codec import decode_file
    from vtok.format import VtokReader

    with _errors():
        with VtokReader(src) as reader:
            total = reader.header.frames
        with _progress(f"decode {src.name}", total) as advance:
            r = decode_file(
                src=src,
                dst=output,
                model=model,
                crf=crf,
                lossless=lossless,
                force=force,
                device=device,
                progress=advance,
            )
    print(f"{r.path}: {r.frames} frames")


@app.command()
def inspect(
    src: Annotated[Path, typer.Argument(help="A .vtok file.", dir_okay=False)],
    as_json: Json = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG chart of tokens per frame here.")] = None,
) -> None:
    """Show what a .vtok file holds: header, tokens per frame, savings, bits per pixel, checksums."""
    from vtok.codec.inspect import inspect_file, plot_tokens, sparkline

    with _errors():
        s = inspect_file(path=src)
        if plot is not None:
            check_output(src, plot, force=True)
            plot_tokens(s, plot)
    if as_json:
        print(json.dumps(s, indent=2))
        return
    tpf = s["tokens_per_frame"]
    q = s["quantizer"]
    qdesc = f"FSQ levels {tuple(q['levels'])}" if q["kind"] == "fsq" else f"LFQ {q['bits']} bits"
    rows = [
        (
            "file",
            f"{s['path']} ({s['file_bytes']:,} bytes, {s['chunks']} block chunks, checksums {s['checksums']})",
        ),
        ("model", f"{s['model']} (sha256 {s['model_sha256'][:16]}…), {qdesc}, {s['codebook_size']:,} codes"),
        (
            "video",
            f"{s['width']}x{s['height']}, {s['frames']} frames at {s['rate']} fps ({s['fps']}), "
            f"source {s['source']}" + (", with audio" if s["audio"] else ""),
        ),
        (
            "blocks",
            f"{s['blocks']} of {s['block_frames']} frames, grid {s['grid'][0]}x{s['grid'][1]} "
            f"(one token per {s['token_stride']}x{s['token_stride']} pixels), "
            + (f"a keyframe every {s['keyframe_interval']} blocks, " if s["keyframe_interval"] else "")
            + f"threshold {s['threshold']:g}, runs "
            + (f"under {s['rlt_threshold'] * 255:.1f}/255" if s["rlt_threshold"] > 0 else "off"),
        ),
        (
            "tokens",
            f"{s['tokens']:,} of a full budget of {s['full_budget_tokens']:,}; per frame min "
            f"{tpf['min']:.1f}, median {tpf['median']:.1f}, max {tpf['max']:.1f}",
        ),
        (
            "saved",
            f"{s['savings']:.2f}x fewer than the full budget: runs {100 * s['rlt_share']:.1f}%, "
            f"elastic budget {100 * s['elastic_share']:.1f}% (tiles at levels "
            + "/".join(s["tile_levels"])
            + ": "
            + "/".join(str(v) for v in s["tile_levels"].values())
            + ")",
        ),
        (
            "per frame",
            sparkline(s["tokens_per_frame_by_block"], s["tokens_per_frame"]["full_budget"])
            + f" (full budget {s['tokens_per_frame']['full_budget']:.0f})",
        ),
        (
            "size",
            f"{s['bits_per_pixel']:.4f} bits per pixel, {s['compression_ratio']:.0f}:1 against raw RGB"
            + (f" (video only; audio {s['audio_bytes']:,} bytes)" if s["audio"] else ""),
        ),
        (
            "flagged",
            f"{len(s['flagged_blocks'])} blocks miss the threshold even at the full budget"
            + (f": {s['flagged_blocks'][:20]}" if s["flagged_blocks"] else ""),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


@app.command()
def trim(
    src: Annotated[Path, typer.Argument(help="Input .vtok file.", dir_okay=False)],
    output: Output,
    max_tokens: Annotated[float, typer.Option(help="Keep at most this many tokens per frame in every block.", min=0.0)],
    force: Force = False,
) -> None:
    """Lower a .vtok file's budgets without re-encoding; the result decodes with the same model."""
    from vtok.codec import trim_file

    with _errors():
        r = trim_file(src=src, dst=output, max_tokens_per_frame=max_tokens, force=force)
    print(f"{r.path}: {r.tokens_after} tokens (from {r.tokens_before}), {r.bytes} bytes")


@app.command()
def bench(
    clips: Annotated[list[Path], typer.Argument(help="Video files, or folders of them.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.json, results.csv and plots.")],
    thresholds: Annotated[
        str,
        typer.Option(help="Comma-separated vtok thresholds (the full budget, and fixed 25/50/75% budgets, are added)."),
    ] = "0.001,0.003,0.01,0.02,0.05",
    codecs: Annotated[str, typer.Option(help="Comma-separated classical codecs.")] = "libx264,libx265,libsvtav1",
    models_: Annotated[str, typer.Option("--models", help="Comma-separated vtok models (default: all built in).")] = "",
    frames: Annotated[int, typer.Option(help="Frames per clip, from the start.", min=1)] = 64,
    size: Annotated[int, typer.Option(help="Centre crop size in pixels; 0 keeps the native size.", min=0)] = 256,
) -> None:
    """Rate-distortion and speed of vtok beside x264, x265 and AV1 on the same frames (resumable)."""
    from rich.console import Console
    from rich.table import Table

    from vtok.bench import bd_rates, elastic_gain, find_clips, run_bench, summary
    from vtok.model.registry import list_models

    with _errors():
        files = find_clips(clips)
        names = [m for m in models_.split(",") if m] or [e.name for e in list_models()]
        codec_list = [c for c in codecs.split(",") if c]
        try:
            t_list = [float(t) for t in thresholds.split(",") if t]
        except ValueError:
            raise UsageError(f"--thresholds {thresholds!r}: give comma-separated numbers, e.g. 0.003,0.01") from None
        try:
            with _progress("bench", len(files) * (len(names) + len(codec_list))) as advance:
                runs = run_bench(
                    clips=files,
                    out_dir=output,
                    thresholds=t_list,
                    codecs=codec_list,
                    models=names,
                    frames=frames,
                    size=size or None,
                    progress=lambda _: advance(1),
                )
        except UsageError as e:  # the library names its keyword; name the flag instead
            flag = {"thresholds": "--thresholds", "codecs": "--codecs", "models": "--models"}.get(e.option)
            raise UsageError(f"{flag}: {e}" if flag else str(e)) from None
    table = Table(
        title=f"{len({r.clip for r in runs})} clips, {frames} frames, "
        + (f"{size}x{size} centre crops" if size else "native size"),
        caption="means over clips; frames per second are medians",
    )
    for col in ("codec", "setting", "bits/pixel", "PSNR dB", "SSIM", "tokens/frame", "enc fps", "dec fps"):
        table.add_column(col, justify="left" if col in ("codec", "setting") else "right")
    for row in summary(runs):
        tokens = row["tokens_per_frame"]
        table.add_row(
            row["codec"],
            row["setting"],
            f"{row['bits_per_pixel']:.4f}",
            f"{row['psnr_db']:.2f}",
            f"{row['ssim']:.3f}",
            f"{tokens:.0f}" if tokens is not None else "",
            f"{row['encode_fps']:.1f}",
            f"{row['decode_fps']:.1f}",
        )
    console = Console()
    console.print(table)
    bd = Table(title="BD-rate against libx264 (negative: fewer bits at equal PSNR)")
    bd.add_column("codec")
    bd.add_column("BD-rate", justify="right")
    bd.add_column("clips", justify="right")
    for name, (value, clips) in bd_rates(runs).items():
        bd.add_row(name, f"{value:+.1f}%" if value is not None else "no PSNR overlap", str(clips))
    console.print(bd)
    for name in sorted({r.codec for r in runs if r.tokens_per_frame is not None}):
        gain, clips, ahead = elastic_gain(runs, name)
        if gain is not None:
            print(
                f"{name}: elastic budgets against fixed ones at equal tokens per frame: {gain:+.2f} dB "
                f"(mean over {clips} clips; elastic ahead on {ahead})"
            )
    print(f"results: {output / 'results.json'}, {output / 'results.csv'}, plots: {output}/*.png")


@app.command()
def models(as_json: Json = False) -> None:
    """List the built-in models, where each comes from, and its held-out quality."""
    from vtok.model.registry import list_models

    with _errors():
        entries = list_models()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "origin": e.origin,
                        "file": str(e.path),
                        "sha256": e.sha256,
                        "quantizer": e.config.quantizer,
                        "metrics": e.metrics,
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return
    for e in entries:
        print(f"{e.name}\t{e.config.quantizer['kind']}\t{e.origin}: {e.path}\t{e.metrics}")


@app.command()
def train(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Folders or files of videos and images, or one windows .safetensors saved by --save-windows."
        ),
    ],
    model: Annotated[
        str,
        typer.Option(help="Architecture to train: vtok-fsq, vtok-lfq, or the first design, vtok-fsq-s8 / vtok-lfq-s8."),
    ] = "vtok-fsq",
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for NAME.safetensors and manifest.json (not the shipped weights/)."),
    ] = Path("runs"),
    steps: Annotated[int, typer.Option(help="Stop after this many steps.")] = 1_000_000,
    minutes: Annotated[float, typer.Option(help="Stop after this many minutes; the LR schedule spans it.")] = 30.0,
    windows: Annotated[
        int, typer.Option(help="Sample this many fixed windows up front; 0 draws fresh ones every step.", min=0)
    ] = 0,
    save_windows: Annotated[Path | None, typer.Option(help="Save the fixed windows here.")] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Folder of decoded training frames [default: $VTOK_CACHE or ~/.cache/vtok/frames]."),
    ] = None,
    batch: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    crop: Annotated[int, typer.Option(help="Training crop size in pixels (a multiple of 32).")] = 96,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    masks_after: Annotated[
        float,
        typer.Option(help="Share of the schedule at the full budget before random keep masks start.", min=0, max=1),
    ] = 0.0,
    device: Annotated[str, typer.Option(help="cpu, cuda, or cuda:N.")] = "cpu",
    resume: Annotated[
        Path | None,
        typer.Option(help="A checkpoint to resume (weights, optimizer, schedule), or weights to fine-tune."),
    ] = None,
) -> None:
    """Train a tokenizer and write its weights and manifest entry."""
    from vtok.train.loop import run_training

    with _errors():
        entry = run_training(
            sources=sources,
            name=model,
            out_dir=out,
            steps=steps,
            minutes=minutes,
            windows=windows,
            save_windows_to=save_windows,
            batch=batch,
            crop=crop,
            lr=lr,
            device=device,
            resume=resume,
            log=_log,
            cache=cache,
            masks_after=masks_after,
        )
    print(f"{model}: {entry['file']} sha256 {entry['sha256']} {entry['metrics']}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vtok` script; `argv` defaults to sys.argv[1:]."""
    app(args=argv, prog_name="vtok")

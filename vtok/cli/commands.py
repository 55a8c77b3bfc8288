"""The `vtok` commands. Each parses its options, calls one library function and renders its result.

Results go to stdout; progress and errors go to stderr (vtok.cli.options).
"""

import json
from pathlib import Path
from typing import Annotated

import typer

import vtok.cli.options as opt
from vtok.cli.options import Device, Force, Json, ModelSpec, Output, errors, log, progress
from vtok.cli.options import warn as _warn
from vtok.cli.render import (
    aligned,
    bench_report,
    failure_lines,
    folder_summary,
    inspect_rows,
    model_rows,
    models_text,
    plural,
)
from vtok.cli.training import train
from vtok.errors import UsageError
from vtok.files import check_input

app = typer.Typer(
    name="vtok",
    help="A neural video codec: video to discrete FSQ/LFQ tokens in a .vtok file, and back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from vtok import __version__

        print(f"vtok {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """A neural video codec: video to discrete FSQ/LFQ tokens in a .vtok file, and back."""


@app.command()
def encode(
    src: Annotated[
        Path, typer.Argument(help="Input video (any file PyAV reads), or a folder of videos.", metavar="VIDEO|DIR")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The .vtok file; for a folder input, the output folder.", metavar="OUT"),
    ],
    model: ModelSpec = "vtok-fsq",
    threshold: opt.Threshold = 0.003,
    rlt_threshold: opt.RltThreshold = 6 / 255,
    no_rlt: opt.NoRlt = False,
    refine: opt.Refine = 0,
    device: Device = "auto",
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite the output if it exists; for a folder, redo every file.")
    ] = False,
    jobs: opt.Jobs = 1,
    glob: opt.Glob = None,
    ray: opt.Ray = False,
    ray_address: opt.RayAddress = None,
) -> None:
    """Tokenize a video into a .vtok file, or every video under a folder into a mirrored folder of them
    with a manifest (resumable: a second run does only what is new or changed)."""
    with errors():
        check_input(src, folder_ok=True)
    options = dict(model=model, threshold=threshold, rlt_threshold=0.0 if no_rlt else rlt_threshold, refine=refine,
                   device=device, force=force)  # fmt: skip
    if src.is_dir():
        _encode_folder(src, output, options, jobs=jobs, glob=glob, ray=ray, ray_address=ray_address)
        return
    from vtok.codec import encode_file

    with errors(), progress(f"encode {src.name}") as advance:
        given = {"jobs": jobs != 1, "glob": glob is not None, "ray": ray, "ray_address": ray_address is not None}
        if any(given.values()):
            first = next(k for k, v in given.items() if v)
            raise UsageError(f"{src}: is a file; this option is for a folder input", option=first)
        r = encode_file(src=src, dst=output, progress=advance, warn=_warn, **options)
    print(
        f"{r.path}: {plural(r.frames, 'frame')}, {plural(r.blocks, 'block')}, {plural(r.tokens, 'token')} "
        f"({r.full_tokens / max(r.tokens, 1):.2f}x fewer than the full budget), {r.bytes} bytes, "
        f"{r.decoder_passes:.2f} decoder passes per block"
        + (f", {plural(r.flagged_blocks, 'block')} miss the threshold at the full budget" if r.flagged_blocks else "")
    )


def _encode_folder(src: Path, output: Path, options: dict, **folder) -> None:
    """`vtok encode DIR -o OUTDIR`: vtok.folder.encode_folder; exit 1 if any file failed."""
    from vtok.folder import encode_folder

    stopped = "the files finished so far are in the manifest, and no partial output is left; run again to resume"
    with errors(interrupted=stopped), progress(f"encode {src.name}", "files") as advance:
        r = encode_folder(src=src, dst=output, progress=advance, warn=_warn, **options, **folder)
    print(folder_summary(r))
    if r.failed:
        for line in failure_lines(r.records):
            log(line)
        log(f"vtok: error: {r.failed} of {r.found} files failed; see {r.manifest}")
        raise typer.Exit(1)


@app.command()
def decode(
    src: Annotated[Path, typer.Argument(help="Input .vtok file.", dir_okay=False, metavar="VTOK")],
    output: Output,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Where the file's model is, if not built in: a folder or hf:owner/repo.",
            metavar="MODEL",
        ),
    ] = None,
    crf: Annotated[
        int,
        typer.Option(
            help="Quality on H.264's scale: 0 best, 51 worst (scaled to 0..63 for VP9).", min=0, max=51, metavar="N"
        ),
    ] = 18,
    lossless: Annotated[
        bool, typer.Option(help="Store the decoded RGB exactly (libx264rgb, or lossless VP9 for .webm).")
    ] = False,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Decode a .vtok file back to a video: .mp4, .mov or .mkv (H.264) or .webm (VP9), by the output's
    extension, with the source's audio, if it had any."""
    with errors():
        check_input(src)
    from vtok.codec import decode_file

    with errors(), progress(f"decode {src.name}") as advance:
        r = decode_file(src=src, dst=output, model=model, crf=crf, lossless=lossless, force=force, device=device,
                        progress=advance, warn=_warn)  # fmt: skip
    print(f"{r.path}: {plural(r.frames, 'frame')}")


@app.command()
def inspect(
    src: Annotated[Path, typer.Argument(help="A .vtok file.", dir_okay=False, metavar="VTOK")],
    as_json: Json = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also write a PNG chart of tokens per frame here.", metavar="PNG")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Only check every chunk's checksum and that the seek index agrees, decoding nothing."
        ),
    ] = False,
    force: Force = False,
) -> None:
    """Show what a .vtok file holds: header, tokens per frame, savings, bits per pixel, checksums."""
    with errors():
        check_input(src)
    from vtok.codec import inspect_file, verify_file

    with errors():
        if verify and plot is not None:
            raise UsageError("--verify only checks the file and draws no chart", option="plot")
        if verify:
            chunks = verify_file(src)
            print(
                json.dumps({"path": str(src), "chunks": chunks, "verified": True})
                if as_json
                else f"OK: {chunks} chunks, checksums and index agree"
            )
            return
        s = inspect_file(path=src, plot=plot, force=force)
    print(json.dumps(s, indent=2) if as_json else aligned(inspect_rows(s)))


@app.command()
def trim(
    src: Annotated[Path, typer.Argument(help="Input .vtok file.", dir_okay=False, metavar="VTOK")],
    output: Output,
    max_tokens: Annotated[
        float,
        typer.Option(
            help="Keep at most this many tokens per frame in every block, a short last block over its own "
            "frames; at least one token per tile stays.",
            min=0.0,
            metavar="N",
        ),
    ],
    force: Force = False,
) -> None:
    """Lower a .vtok file's budgets without re-encoding; the result decodes with the same model."""
    with errors():
        check_input(src)
    from vtok.codec import trim_file

    with errors():
        r = trim_file(src=src, dst=output, max_tokens_per_frame=max_tokens, force=force)
    print(f"{r.path}: {r.tokens_after} tokens (from {r.tokens_before}), {r.bytes} bytes")


@app.command()
def bench(
    clips: Annotated[list[Path], typer.Argument(help="Video files, or folders of them.", metavar="CLIPS")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for results.json, results.csv and plots.", metavar="DIR")
    ],
    thresholds: Annotated[
        str,
        typer.Option(
            help="Comma-separated vtok thresholds (the full budget, and fixed 25/50/75% budgets, are added).",
            metavar="LIST",
        ),
    ] = "0.001,0.003,0.01,0.02,0.05",
    codecs: Annotated[
        str, typer.Option(help="Comma-separated classical codecs.", metavar="LIST")
    ] = "libx264,libx265,libsvtav1",
    models_: Annotated[
        str, typer.Option("--models", help="Comma-separated vtok models (default: all built in).", metavar="LIST")
    ] = "",
    frames: Annotated[int, typer.Option(help="Frames per clip, from the start.", min=1, metavar="N")] = 64,
    size: Annotated[
        int, typer.Option(help="Centre crop size in pixels; 0 keeps the native size.", min=0, metavar="PIXELS")
    ] = 256,
    device: Device = "auto",
) -> None:
    """Rate-distortion and speed of vtok beside x264, x265 and AV1 on the same frames (resumable)."""
    from vtok.bench import find_clips, run_bench

    with errors(), progress("bench", "runs") as advance:
        try:
            t_list = [float(t) for t in thresholds.split(",") if t]
        except ValueError:
            raise UsageError(
                f"{thresholds!r}: give comma-separated numbers, e.g. 0.003,0.01", option="thresholds"
            ) from None
        runs = run_bench(
            clips=find_clips(clips),
            out_dir=output,
            thresholds=t_list,
            codecs=[c for c in codecs.split(",") if c],
            models=[m for m in models_.split(",") if m] or None,
            frames=frames,
            size=size or None,
            device=device,
            progress=advance,
        )
    bench_report(runs, frames=frames, size=size)
    print(f"results: {output / 'results.json'}, {output / 'results.csv'}, plots: {output}/*.png")


@app.command()
def models(as_json: Json = False) -> None:
    """List the built-in models, where each comes from, and its held-out quality."""
    from vtok.model.registry import DEFAULT_MODEL, list_models

    with errors():
        entries = list_models()
    if as_json:
        print(json.dumps(model_rows(entries, default=DEFAULT_MODEL), indent=2))
        return
    print(models_text(entries, default=DEFAULT_MODEL))


app.command()(train)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vtok` script; `argv` defaults to sys.argv[1:]."""
    from vtok.allocator import one_arena

    one_arena()  # before any thread allocates: about 0.1 GB less at the peak of a 720p decode
    app(args=argv, prog_name="vtok")

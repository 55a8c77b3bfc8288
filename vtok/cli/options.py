"""What every command shares: option types, error handling and progress."""

import contextlib
import errno
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from vtok.errors import UsageError, VtokError

__all__ = [
    "Output", "Force", "Device", "ModelSpec", "Json", "Threshold", "RltThreshold", "NoRlt", "Refine", "Jobs", "Glob",
    "Ray", "RayAddress", "errors", "progress", "log", "warn", "flag",
]  # fmt: skip

Output = Annotated[
    Path, typer.Option("--output", "-o", help="Where to write the result.", dir_okay=False, metavar="FILE")
]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output if it exists.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, or cuda[:N].", metavar="DEVICE")]
ModelSpec = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="A built-in name (see `vtok models`), a weights folder, or hf:owner/repo[@rev].",
        metavar="MODEL",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Threshold = Annotated[
    float,
    typer.Option(
        help="Target MSE per block, pixels on [-1,1] (0.003 is about 31.2 dB): each block gets the "
        "fewest tokens that meet it. 0 is the full budget.",
        min=0.0,
        metavar="MSE",
    ),
]
RltThreshold = Annotated[
    float,
    typer.Option(
        help="A 16x16 patch whose mean absolute difference (pixels on [0,1]) from the start of its run "
        "stays under this stores no tokens.",
        min=0.0,
        metavar="DIFF",
        show_default="6/255",
    ),
]
NoRlt = Annotated[bool, typer.Option("--no-rlt", help="Turn run-length tokenization off.")]
Refine = Annotated[
    int,
    typer.Option(
        help="Gradient steps on each block's latent against the decoder before it is quantized: with 30, "
        "+0.6 to +1.4 dB on the test clips, at about 9x the encode time. 0 is off.",
        min=0,
        metavar="STEPS",
    ),
]
# Folder inputs only (vtok.folder).
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs", "-j", help="Folder input: files encoded at once (processes, or Ray actors).", min=1, metavar="N"
    ),
]
Glob = Annotated[
    str | None,
    typer.Option(
        help="Folder input: take the files whose path under it matches this pattern ('*' also matches '/'), "
        "instead of every file with a video extension.",
        metavar="PATTERN",
    ),
]
Ray = Annotated[bool, typer.Option("--ray", help="Folder input: encode on Ray (pip install 'vtok[ray]').")]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Folder input: join the Ray cluster at this address (implies --ray) [default: $RAY_ADDRESS].",
        metavar="ADDRESS",
    ),
]

# Library keywords whose flag is not simply --keyword-with-dashes.
_FLAGS = {"max_tokens_per_frame": "--max-tokens", "out_dir": "--output", "dst": "--output"}


def flag(option: str) -> str:
    """The command-line flag of a library keyword: 'rlt_threshold' -> '--rlt-threshold'."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def log(message: str) -> None:
    """One line on stderr, at once (logs of long runs are read while they grow)."""
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A library warning (the `warn` callable of vtok.errors) as one line on stderr."""
    log(f"vtok: warning: {message}")


@contextlib.contextmanager
def errors(interrupted: str = "no output written") -> Iterator[None]:
    """Expected failures become one line on stderr without a traceback: exit 2 for a usage error,
    1 for any other VtokError or a full disk, 130 on Ctrl-C (saying `interrupted`). Anything else is
    a bug and keeps its traceback."""
    try:
        yield
    except VtokError as e:
        hint = f" (see {flag(e.option)})" if e.option else ""
        print(f"vtok: error: {e}{hint}", file=sys.stderr)
        raise typer.Exit(2 if isinstance(e, UsageError) else 1) from None
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"vtok: error: no space left on the device{where}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        print(f"vtok: interrupted; {interrupted}", file=sys.stderr)
        raise typer.Exit(130) from None


@contextlib.contextmanager
def progress(description: str, unit: str = "frames") -> Iterator[Callable[..., None]]:
    """Progress on stderr: a Rich bar on a terminal, else a plain line every 10 seconds (for logs).

    Yields advance(n, total=None, note=None): n more done, out of `total` (None while unknown); `note`,
    if given, replaces the text shown after the count (e.g. "1,234 frames, 40.1 frames/s").
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield _lines(description, unit)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit))
    with Progress(*columns, TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=console,
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task(description, total=None, note="")

        def advance(n: int, total: int | None = None, note: str | None = None) -> None:
            bar.update(task, advance=n, total=total, **({"note": note} if note is not None else {}))

        yield advance


def _lines(description: str, unit: str) -> Callable[..., None]:
    """advance() for logs: a line every 10 seconds, with the time left once the total is known."""
    start = time.monotonic()
    state = {"done": 0, "shown": start, "note": ""}

    def advance(n: int, total: int | None = None, note: str | None = None) -> None:
        state["done"] += n
        state["note"] = state["note"] if note is None else note
        now = time.monotonic()
        if now - state["shown"] < 10:
            return
        state["shown"], done = now, state["done"]
        left = f", {(now - start) / done * (total - done):.0f} s left" if total and done else ""
        note = f", {state['note']}" if state["note"] else ""
        log(f"{description}: {done}" + (f"/{total}" if total else "") + f" {unit}{note}{left}")

    return advance

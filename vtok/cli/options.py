"""What every command shares: option types, error handling and progress."""

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from vtok.errors import UsageError, VtokError

__all__ = ["Output", "Force", "Device", "ModelSpec", "Json", "errors", "progress", "log", "warn", "flag"]

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
def errors() -> Iterator[None]:
    """Expected failures become one line on stderr without a traceback: exit 2 for a usage error,
    1 for any other VtokError, 130 on Ctrl-C. Anything else is a bug and keeps its traceback."""
    try:
        yield
    except VtokError as e:
        hint = f" (see {flag(e.option)})" if e.option else ""
        print(f"vtok: error: {e}{hint}", file=sys.stderr)
        raise typer.Exit(2 if isinstance(e, UsageError) else 1) from None
    except KeyboardInterrupt:
        print("vtok: interrupted; no output written", file=sys.stderr)
        raise typer.Exit(130) from None


@contextlib.contextmanager
def progress(description: str, unit: str = "frames") -> Iterator[Callable[[int, "int | None"], None]]:
    """Progress on stderr: a Rich bar on a terminal, else a plain line every 10 seconds (for logs).

    Yields advance(n, total): n more done, out of `total` (None while unknown).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        state = {"done": 0, "shown": time.monotonic()}

        def line(n: int, total: int | None = None) -> None:
            state["done"] += n
            if time.monotonic() - state["shown"] >= 10:
                state["shown"] = time.monotonic()
                log(f"{description}: {state['done']}" + (f"/{total}" if total else "") + f" {unit}")

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit))
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n, total=None: bar.update(task, advance=n, total=total)

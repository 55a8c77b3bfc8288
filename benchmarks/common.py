"""What the benchmark scripts share: clip folders as arguments, clip loading and centre crops,
timing, and results written as JSON to `benchmarks/results/`.

Only vtok's public API is used here, so the scripts keep working while its internals move. PyAV
and torch are imported only where a function needs them: kernels.py runs where there is no PyAV.
"""

import argparse
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np

from vtok.files import write_json
from vtok.media.frames import centre_crop

RESULTS = Path(__file__).resolve().parent / "results"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov"}


def add_clip_arguments(parser: argparse.ArgumentParser, out_name: str) -> None:
    """Add `clips` (folders or files, required), `--limit N` and `--out` (default results/`out_name`)."""
    parser.add_argument("clips", nargs="+", type=Path, help="folders of clips, or clip files")
    parser.add_argument("--limit", type=int, help="take only the first N clips (sorted by name)")
    parser.add_argument("--out", type=Path, default=RESULTS / out_name, help="JSON file for the figures")


def find_clips(paths: list[Path], limit: int | None = None) -> list[Path]:
    """The video files among `paths` (a folder stands for its videos, sorted by name), the first `limit`."""
    clips = []
    for path in paths:
        if path.is_dir():
            clips += sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            clips.append(path)
        else:
            raise SystemExit(f"{path}: no such file or folder")
    if not clips:
        raise SystemExit(f"no clips in {', '.join(map(str, paths))}")
    return clips[:limit] if limit else clips


def load_clip(path: Path, frames: int, size: int = 256, multiple: int = 1) -> np.ndarray:
    """The first `frames` frames of `path`, cut to a multiple of `multiple` frames, centre-cropped to size x size."""
    from vtok.media.video import read_frames

    video = np.stack(list(islice(read_frames(path), frames)))
    return centre_crop(video[: len(video) // multiple * multiple], size)


def write_lossless(path: Path, frames: np.ndarray, rate: Fraction = Fraction(30)) -> Path:
    """Write uint8 (T, H, W, 3) frames to `path` losslessly, so an encode of it sees exactly these pixels."""
    from vtok.media.video import VideoWriter

    with VideoWriter(path, width=frames.shape[2], height=frames.shape[1], rate=rate, lossless=True) as out:
        for frame in frames:
            out.write(frame)
    return path


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec, in MB. Not ru_maxrss: Linux carries that
    across exec from the parent, so a child timed in a fresh process would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status: peak RSS needs Linux")


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of fn(*args, **kwargs), by the wall clock."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def save_results(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` atomically (its folder made if missing) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    print(f"wrote {path}", file=sys.stderr)

"""Folder encodes against plain single-file encodes of the same files: files/s, frames/s and overhead.

    python benchmarks/dataset.py CLIPS... [--limit 6] [--frames 32] [--size 256] [--threshold 0.003] \
        [--no-ray] [--out benchmarks/results/dataset.json]

The first --frames frames of each clip, centre-cropped to --size, are written
losslessly to a temporary folder first (not timed). Then, by the wall clock:

- single: one `encode_file` per clip, in this process, the model loaded once beforehand (the sum of
  the calls: the baseline);
- folder, --jobs 1: `encode_folder` in this process (model loading, walking and the manifest included);
- folder, --jobs 2: the same with two spawned processes of cores // 2 torch threads (process start-up,
  imports and model loading included);
- ray, 2 workers: `encode_folder(ray=True, jobs=2)` on a local Ray instance started beforehand (its
  start-up is timed apart; actor start-up and model loading are included).

Overhead is the wall time over the baseline's, minus 1: negative where parallel workers beat one
process. Run it without OMP_NUM_THREADS so that one process uses every core.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import add_clip_arguments, find_clips, load_clip, save_results, timed, write_lossless

from vtok.codec import encode_file
from vtok.folder import encode_folder
from vtok.model.registry import load


def prepare(clips: list[Path], folder: Path, frames: int, size: int) -> list[Path]:
    """Write the first `frames` frames of each clip, cropped, as a lossless clip under `folder`."""
    out = []
    for clip in clips:
        out.append(write_lossless(folder / f"{clip.stem}.mkv", load_clip(clip, frames, size)))
    return out


def row(name: str, seconds: float, files: int, frames: int, baseline: float) -> dict:
    return {
        "run": name,
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 3),
        "frames_per_s": round(frames / seconds, 1),
        "overhead": round(seconds / baseline - 1, 3),
    }


def measure(src: Path, work: Path, args: argparse.Namespace) -> tuple[list[dict], dict]:
    options = dict(threshold=args.threshold, device="cpu")
    model = load("vtok-fsq", "cpu")
    clips = sorted(src.iterdir())
    encode_file(src=clips[0], dst=work / "warm-up.vtok", model=model, **options)  # first calls are slower
    single = [timed(encode_file, src=p, dst=work / f"{p.stem}.vtok", model=model, **options) for p in clips]
    baseline, frames = sum(t for t, _ in single), sum(r.frames for _, r in single)
    files = len(single)
    rows = [row("single encode_file, summed", baseline, files, frames, baseline)]
    for jobs in (1, 2):
        seconds, r = timed(encode_folder, src=src, dst=work / f"jobs{jobs}", jobs=jobs, **options)
        assert r.ok == files and r.frames == frames, r
        rows.append(row(f"folder --jobs {jobs}", seconds, files, frames, baseline))
    extra = {}
    if not args.no_ray:
        import ray

        extra["ray_start_s"], _ = timed(ray.init, num_cpus=2, include_dashboard=False, logging_level="WARNING")
        seconds, r = timed(encode_folder, src=src, dst=work / "ray", jobs=2, ray=True, **options)
        assert r.ok == files and r.frames == frames, r
        rows.append(row("ray, 2 workers", seconds, files, frames, baseline))
        ray.shutdown()
    return rows, {"files": files, "frames": frames, **extra}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_clip_arguments(parser, "dataset.json")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip, from the start")
    parser.add_argument("--size", type=int, default=256, help="centre crop size in pixels")
    parser.add_argument("--threshold", type=float, default=0.003)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray run")
    args = parser.parse_args(argv)
    clips = find_clips(args.clips, args.limit or 6)
    with tempfile.TemporaryDirectory() as tmp:
        src, work = Path(tmp) / "clips", Path(tmp) / "out"
        src.mkdir(), work.mkdir()
        prepare(clips, src, args.frames, args.size)
        start = time.strftime("%Y-%m-%d %H:%M")
        rows, totals = measure(src, work, args)
    print(
        f"{totals['files']} files, {totals['frames']} frames"
        + (f"; Ray started in {totals['ray_start_s']:.1f} s (not in its row)" if "ray_start_s" in totals else "")
    )
    print(f"{'run':<28} {'seconds':>8} {'files/s':>8} {'frames/s':>9} {'overhead':>9}")
    for r in rows:
        print(
            f"{r['run']:<28} {r['seconds']:>8.2f} {r['files_per_s']:>8.3f} {r['frames_per_s']:>9.1f} "
            f"{100 * r['overhead']:>+8.1f}%"
        )
    data = {
        "date": start,
        "clips": [c.name for c in clips],
        "frames_per_clip": args.frames,
        "size": args.size,
        "threshold": args.threshold,
        "torch_threads_in_process": torch.get_num_threads(),  # single and --jobs 1; workers set their own
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "command": " ".join(["python", "benchmarks/dataset.py", *sys.argv[1:]]),
        **totals,
        "runs": rows,
    }
    save_results(args.out, data)


if __name__ == "__main__":
    main()

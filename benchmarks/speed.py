"""CPU speed of vtok: encode fps (full budget and a threshold search), decode fps and peak RSS, side by side.

    python benchmarks/speed.py CLIPS... [--limit 2] [--frames 32] [--sizes 256,720p] [--threads 1,2]
        [--threshold 0.003] [--repeats 3] [--baseline-git REV] [--out benchmarks/results/speed.json]

Each clip is cut to `--frames` frames, centre-cropped to 256x256 or resized to 1280x720, and written
losslessly once. Decode is timed twice: to .mp4 (H.264 at crf 18, what `vtok decode` writes by
default) and to lossless RGB .mkv (libx264rgb, a heavier writer). Every measurement (one encode or
decode of one clip) runs in a fresh process with torch's thread count set, so its peak RSS (VmHWM)
is its own. In that process the model's `encode` and `decode` calls are timed apart: `model_s` is
time inside the network; `read_s` decoding the source video (encode) or reading the .vtok file
(decode), `write_s` writing the .vtok file (encode) or the video (decode), both in wall time of
their own thread, beside the model; `io_s` is the total minus `model_s` (reading, writing and
budget bookkeeping that the model did not hide). With `--baseline-git REV`, the same
measurements run on a `git worktree` of REV too, interleaved with the current tree's (repeat by
repeat), so the ratios come from one run on one machine state; figures are medians over repeats.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import add_clip_arguments, find_clips, load_clip, peak_rss_mb, save_results, write_lossless

CHILD_FLAG = "--child"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DECODED = {"decode": ".mp4", "decode-lossless": ".mkv"}  # the decode steps and the files they write


def steps(threshold: float) -> list[tuple[str, float]]:
    """Each measurement of a clip: (step, threshold)."""
    return [("encode", 0.0), ("encode", threshold), ("decode", 0.0), ("decode-lossless", 0.0)]


def _timed(owner, name: str, totals: dict, key: str, generator: bool = False) -> None:
    """Wrap owner.name so that the wall time of each call (of a generator: of each item it makes)
    adds to totals[key]."""
    import functools
    import time

    original = getattr(owner, name)

    def timed_call(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            totals[key] += time.perf_counter() - start

    def timed_items(*a, **k):
        items = original(*a, **k)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                totals[key] += time.perf_counter() - start
            yield item

    setattr(owner, name, functools.wraps(original)(timed_items if generator else timed_call))


def _patch_timers(totals: dict) -> None:
    """Time the model (Tokenizer.encode and .decode: model_s), reading (the source's frames, or the
    .vtok file's blocks: read_s) and writing (.vtok blocks, or video frames: write_s). Reading and
    writing run beside the model in another thread, so the three overlap and can sum past the total."""
    import vtok.media.video
    from vtok.format import VtokReader, VtokWriter
    from vtok.model.tokenizer import Tokenizer

    for name in ("encode", "decode"):
        _timed(Tokenizer, name, totals, "model_s")
    _timed(vtok.media.video, "read_frames", totals, "read_s", generator=True)
    _timed(VtokReader, "states", totals, "read_s", generator=True)
    for owner, name in ((VtokWriter, "write_block"), (VtokWriter, "close"), (vtok.media.video.VideoWriter, "write"),
                        (vtok.media.video.VideoWriter, "close")):  # fmt: skip
        _timed(owner, name, totals, "write_s")  # close: an encoder's buffered frames go out there


def child(spec: dict) -> None:
    """In a fresh process: set threads, load the model, time one encode or decode; print JSON."""
    import time

    try:  # what the `vtok` command does first (absent from older trees)
        from vtok.allocator import one_arena

        one_arena()
    except ImportError:
        pass
    import torch

    torch.set_num_threads(spec["threads"])
    from vtok.codec import decode_file, encode_file
    from vtok.model.registry import load

    model = load(spec["model"], "cpu")
    totals = {"model_s": 0.0, "read_s": 0.0, "write_s": 0.0}
    _patch_timers(totals)
    start = time.perf_counter()
    if spec["step"] == "encode":
        src, dst, thr = Path(spec["src"]), Path(spec["dst"]), spec["threshold"]
        r = encode_file(src=src, dst=dst, model=model, threshold=thr, force=True)
        passes = r.decoder_passes
    else:
        lossless = spec["step"] == "decode-lossless"
        r = decode_file(src=Path(spec["src"]), dst=Path(spec["dst"]), model=model, lossless=lossless, force=True)
        passes = None
    seconds = time.perf_counter() - start
    rss_mb = peak_rss_mb()
    out = {"seconds": seconds, **totals, "frames": r.frames, "rss_mb": rss_mb, "passes": passes}
    print(json.dumps(out))


def run_child(spec: dict, root: Path) -> dict:
    """Run `child` on the code at `root` (this tree or a baseline worktree) and return its figures."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(spec["threads"])}
    out = subprocess.run(
        [sys.executable, __file__, CHILD_FLAG, json.dumps(spec)], capture_output=True, text=True, env=env, cwd=root
    )
    if out.returncode:
        raise SystemExit(f"child failed ({root}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(clips: list[Path], frames: int, sizes: list[str], folder: Path) -> list[tuple[str, str, Path]]:
    """Write each clip at each size losslessly: [(clip name, size, path)]."""
    import torch
    import torch.nn.functional as F

    made = []
    for clip in clips:
        for size in sizes:
            if size == "720p":
                from itertools import islice

                from vtok.media.video import read_frames

                video = np.stack(list(islice(read_frames(clip), frames)))  # the whole frame, resized
                t = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float()
                t = F.interpolate(t, size=(720, 1280), mode="bilinear", align_corners=False)
                video = t.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()
            else:
                video = load_clip(clip, frames, size=int(size))
            made.append((clip.stem, size, write_lossless(folder / f"{clip.stem}_{size}.mkv", video)))
    return made


def baseline_tree(rev: str, folder: Path) -> Path:
    """A detached `git worktree` of `rev` under `folder`."""
    path = folder / "baseline"
    cmd = ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def measure_all(args, made, trees: dict[str, Path], folder: Path) -> list[dict]:
    """Every (variant, clip, size, threads, step) measured `repeats` times, interleaved; medians."""
    raw: dict[tuple, list[dict]] = {}
    for _ in range(args.repeats):
        for name, size, src in made:
            for threads in args.threads:
                for variant, root in trees.items():
                    vt = folder / f"{variant}_{name}_{size}.vtok"
                    for step, thr in steps(args.threshold):
                        decode = step in DECODED
                        spec = {"step": step, "threads": threads, "model": args.model, "threshold": thr,
                                "src": str(vt if decode else src),
                                "dst": str(folder / f"{variant}{DECODED[step]}" if decode else vt)}  # fmt: skip
                        key = (variant, name, size, threads, step, thr)
                        raw.setdefault(key, []).append(run_child(spec, root))
    rows = []
    for (variant, name, size, threads, step, thr), runs in raw.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "model_s", "read_s", "write_s", "rss_mb")}
        frames = runs[0]["frames"]
        rows.append({"variant": variant, "clip": name, "size": size, "threads": threads,
                     "step": f"encode@{thr:g}" if step == "encode" else step, "fps": frames / med["seconds"],
                     "model_s": med["model_s"], "read_s": med["read_s"], "write_s": med["write_s"],
                     "io_s": med["seconds"] - med["model_s"], "seconds": med["seconds"],
                     "peak_rss_mb": med["rss_mb"], "passes": runs[0]["passes"], "frames": frames})  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    """Markdown table; with a baseline, a ratio column (this tree's fps / the baseline's)."""
    base = {(r["clip"], r["size"], r["threads"], r["step"]): r["fps"] for r in rows if r["variant"] == "baseline"}
    cols = ["variant", "clip", "size", "threads", "step", "fps", "model_s", "read_s", "write_s", "io_s", "peak_rss_mb",
            "passes"]  # fmt: skip
    print("| " + " | ".join(cols) + (" | vs baseline |" if base else " |"))
    print("|" + "---|" * (len(cols) + bool(base)))
    for r in sorted(rows, key=lambda r: (r["size"], r["clip"], r["step"], r["threads"], r["variant"])):
        cells = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        if base:
            b = base.get((r["clip"], r["size"], r["threads"], r["step"]))
            cells.append(f"{r['fps'] / b:.2f}x" if b and r["variant"] != "baseline" else "")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        child(json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p, "speed.json")
    p.add_argument("--model", default="vtok-fsq")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--sizes", default="256,720p", help="comma list of 256 (centre crop) and 720p")
    p.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    p.add_argument("--threshold", type=float, default=0.003)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline-git", metavar="REV", help="also measure a git worktree of REV, interleaved")
    args = p.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        made = prepare(find_clips(args.clips, args.limit), args.frames, args.sizes.split(","), folder)
        trees = {"current": REPO}
        if args.baseline_git:
            trees["baseline"] = baseline_tree(args.baseline_git, folder)
        try:
            rows = measure_all(args, made, trees, folder)
        finally:
            if args.baseline_git:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(trees["baseline"])])
    print_table(rows)
    save_results(args.out, rows)


if __name__ == "__main__":
    main()

"""Random access and the training loader on `.vtok` files of held-out clips: read latency, throughput.

    python benchmarks/access.py CLIPS... [--limit N] [--frames 128] [--size 256] [--threshold 0.003] \
        [--window 8] [--reads 200] [--model vtok-fsq] [--out benchmarks/results/access.json]

Each clip's first --frames frames, centre-cropped to --size (as benchmarks/quality.py does), are
written losslessly to a temporary folder and encoded there at --threshold. Then, on those files:

- random access: --reads random ranges [a, a + window) per file, each read through a file opened
  for it ("cold": the header, the index and every chunk the range needs, runs included) and through
  one reader kept open ("warm": its cache of two chunks may hold them). Median and 90th percentile
  milliseconds per read, and block chunks decompressed per cold read.
- the loader: every window of --window frames of every file, through `TokenWindows` (numpy) in
  order and shuffled, and through torch's DataLoader, shuffled, with `collate` and no workers (the
  reading, not the parallelism), in passes lasting a second or more. Tokens are the kept codes a
  window's sequence holds; throughput is tokens per second.
"""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import add_clip_arguments, find_clips, load_clip, save_results, write_lossless

import vtok
from vtok.codec import encode_file
from vtok.data import TokenWindows
from vtok.model.registry import load


def encode_clips(clips: list[Path], work: Path, args: argparse.Namespace) -> list[Path]:
    """Each clip cropped, written losslessly and encoded into `work`; the .vtok paths."""
    model = load(args.model, "cpu")
    out = []
    for clip in clips:
        lossless = write_lossless(work / f"{clip.stem}.mkv", load_clip(clip, args.frames, args.size))
        out.append(work / f"{clip.stem}.vtok")
        encode_file(src=lossless, dst=out[-1], model=model, threshold=args.threshold, device="cpu")
        lossless.unlink()
        print(f"encoded {clip.name}", file=sys.stderr)
    return out


def _ms(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def random_access(paths: list[Path], reads: int, window: int, seed: int = 0) -> dict:
    """Latency of random reads of `window` frames, cold and warm (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    cold, warm, chunks, by_clip = [], [], [], {}
    for path in paths:
        with vtok.open(path) as f:
            frames = f.header.frames
            f.tokens(0, min(window, frames))  # warm-up: imports, the layout's cached order
        starts = rng.integers(0, max(frames - window, 0) + 1, reads)
        for a in starts.tolist():
            t = time.perf_counter()
            with vtok.open(path) as f:
                f.tokens(a, min(a + window, frames))
                chunks.append(f.chunks_read)
            cold.append(time.perf_counter() - t)
        with vtok.open(path) as f:
            for a in starts.tolist():
                t = time.perf_counter()
                f.tokens(a, min(a + window, frames))
                warm.append(time.perf_counter() - t)
        by_clip[path.stem] = {"chunks": f.chunks, "chunks_per_cold_read": float(np.mean(chunks[-reads:]))}
    return {
        "reads": len(cold),
        "window_frames": window,
        "cold": _ms(cold),
        "warm": _ms(warm),
        "chunks_per_cold_read": float(np.mean(chunks)),
        "max_chunks_per_cold_read": int(max(chunks)),
        "by_clip": by_clip,
    }


def _throughput(one_pass: Callable[[], int], windows: int, least_s: float = 1.0) -> dict:
    """Tokens per second of `one_pass` (which returns the tokens it read), over passes lasting `least_s` in all."""
    one_pass()  # warm-up
    tokens, passes, t = 0, 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - t < least_s:
        tokens += one_pass()
        passes += 1
    seconds = time.perf_counter() - t
    return {"windows": windows, "passes": passes, "tokens_per_pass": tokens // passes, "tokens_per_s": tokens / seconds}


def loader_throughput(folder: Path, window: int) -> dict:
    """Tokens per second over every window of `folder`'s files: numpy alone, in order and shuffled
    (reads that do not go on from the last one walk back through runs), and through a DataLoader."""
    out = {}
    rng = np.random.default_rng(0)
    with TokenWindows(folder, frames=window) as data:
        n = len(data)
        out["numpy"] = _throughput(lambda: sum(len(item["tokens"]) for item in data), n)

        def shuffled() -> int:
            return sum(len(data[int(i)]["tokens"]) for i in rng.permutation(n))

        out["numpy_shuffled"] = _throughput(shuffled, n)
    try:
        from torch.utils.data import DataLoader

        from vtok.data import TokenDataset, collate
    except ImportError:
        return out
    with TokenDataset(folder, frames=window) as data:
        loader = DataLoader(data, batch_size=8, shuffle=True, collate_fn=collate)
        out["torch_shuffled"] = _throughput(lambda: sum(int(b["lengths"].sum()) for b in loader), n)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser, "access.json")
    parser.add_argument("--frames", type=int, default=128, help="frames per clip (a chunk holds 128)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threshold", type=float, default=0.003)
    parser.add_argument("--window", type=int, default=8, help="frames per random read and per loader window")
    parser.add_argument("--reads", type=int, default=200, help="random reads per file")
    parser.add_argument("--model", default="vtok-fsq")
    args = parser.parse_args(argv)
    clips = find_clips(args.clips, args.limit)
    with tempfile.TemporaryDirectory(prefix="vtok-access-") as tmp:
        paths = encode_clips(clips, Path(tmp), args)
        with vtok.open(paths[0]) as f:
            keyframe_interval = f.header.keyframe_interval
        setup = {"clips": [c.name for c in clips], "keyframe_interval": keyframe_interval}
        setup |= {k: getattr(args, k) for k in ("frames", "size", "threshold", "model", "window", "reads")}
        results = {
            "setup": setup,
            "random_access": random_access(paths, args.reads, args.window),
            "loader": loader_throughput(Path(tmp), args.window),
        }
    save_results(args.out, results)
    ra, ld = results["random_access"], results["loader"]
    print(f"random [a, a+{args.window}) reads over {len(paths)} files: median {ra['cold']['median_ms']:.2f} ms cold "
          f"(open + read, {ra['chunks_per_cold_read']:.2f} chunks each, at most {ra['max_chunks_per_cold_read']}), "
          f"{ra['warm']['median_ms']:.2f} ms with the file open")  # fmt: skip
    for kind, figures in ld.items():
        per_window = figures["tokens_per_pass"] / figures["windows"]
        print(f"loader ({kind.replace('_', ', ')}): {figures['tokens_per_s']:,.0f} tokens/s "
              f"({figures['windows']} windows of {per_window:,.0f} tokens)")  # fmt: skip


if __name__ == "__main__":
    main()

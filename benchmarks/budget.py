"""Elastic budgets and run-length tokenization on held-out clips: tokens saved, threshold held, cost.

    python benchmarks/budget.py [--clips ../shared/data/videos/test] [--frames 64] [--size 256] [--json out.json]

Each clip's first --frames frames, centre-cropped to --size (as benchmarks/quality.py does), are
written losslessly to a temporary file and encoded through `encode_file` at each threshold, with and
without RLT, and once at the fixed full budget. Every encode is decoded losslessly to check each
block's MSE against the threshold. Static-camera clips are those the data manifest calls so.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np

from vtok.bench.runner import centre_crop
from vtok.codec import decode_file, encode_file, inspect_file
from vtok.format import VtokReader
from vtok.media.video import VideoWriter, probe, read_frames

STATIC = {"arjun_vtest.avi", "arjun_car_traffic_small.mp4", "lamminhthien_overhead_crowd.avi"}
THRESHOLDS = (0.001, 0.003, 0.01)


def run_one(src: Path, work: Path, threshold: float, rlt: bool, frames: np.ndarray) -> dict:
    vt, mp4 = work / "c.vtok", work / "c.mp4"
    t = time.perf_counter()
    r = encode_file(
        src=src, dst=vt, threshold=threshold, rlt_threshold=6 / 255 if rlt else 0.0, force=True, device="cpu"
    )
    seconds = time.perf_counter() - t
    s = inspect_file(path=vt)
    decode_file(src=vt, dst=mp4, lossless=True, force=True, device="cpu")
    decoded = np.stack(list(read_frames(mp4))).astype(np.float64) / 127.5 - 1
    source = frames.astype(np.float64) / 127.5 - 1
    with VtokReader(vt) as reader:
        flagged = {b.index for b in reader.blocks() if b.missed_threshold}
        f = reader.header.block_frames
    block_mse = [float(np.mean((source[i : i + f] - decoded[i : i + f]) ** 2)) for i in range(0, len(source), f)]
    held = [m <= threshold * 1.01 or threshold == 0 for m in block_mse]  # 1%: 8-bit rounding on decode
    mse = float(np.mean((source - decoded) ** 2))
    return {
        "tokens": s["tokens"],
        "full_tokens": s["full_budget_tokens"],
        "tokens_per_frame": s["tokens"] / s["frames"],
        "rlt_share": s["rlt_share"],
        "elastic_share": s["elastic_share"],
        "blocks": len(block_mse),
        "blocks_meeting": int(sum(held)),
        "flagged": len(flagged),
        "violations": int(sum(1 for i, ok in enumerate(held) if not ok and i not in flagged)),
        "psnr_db": 10 * np.log10(4 / mse),
        "bits_per_pixel": s["bits_per_pixel"],
        "encode_fps": s["frames"] / seconds,
        "decoder_passes": r.decoder_passes,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=Path, default=Path("../shared/data/videos/test"))
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    clips = sorted(c for c in args.clips.iterdir() if c.suffix.lower() in {".mp4", ".avi", ".mkv", ".webm"})
    configs = [("fixed", 0.0, False)] + [
        (f"T={t:g}{' +RLT' if r else ''}", t, r) for t in THRESHOLDS for r in (False, True)
    ]
    rows: dict[str, dict[str, dict]] = {name: {} for name, _, _ in configs}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for clip in clips:
            frames = centre_crop(np.stack(list(islice(read_frames(clip), args.frames))), args.size)
            src = work / "src.mp4"
            with VideoWriter(
                src, width=args.size, height=args.size, rate=Fraction(probe(clip).rate), lossless=True
            ) as w:
                for frame in frames:
                    w.write(frame)
            for name, threshold, rlt in configs:
                rows[name][clip.name] = run_one(src, work, threshold, rlt, frames)
            print(
                f"{clip.name}: " + ", ".join(f"{n} {r[clip.name]['tokens_per_frame']:.0f}" for n, r in rows.items()),
                file=sys.stderr,
            )
    fixed_fps = statistics.median(r["encode_fps"] for r in rows["fixed"].values())
    print(
        f"{len(clips)} clips of {args.clips}, first {args.frames} frames, {args.size}x{args.size} centre crops; "
        f"savings = full-budget tokens / stored tokens, summed over clips"
    )
    print(
        "| config | tokens/frame | savings (all) | savings (static) | blocks meeting T | flagged | violations "
        "| PSNR dB | bits/pixel | encode fps | vs fixed | decoder passes |"
    )
    print("|---|" + "---|" * 11)
    summary = {}
    for name, per_clip in rows.items():
        r = list(per_clip.values())
        static = [v for k, v in per_clip.items() if k in STATIC]
        blocks = sum(v["blocks"] for v in r)
        fps = statistics.median(v["encode_fps"] for v in r)
        summary[name] = {
            "tokens_per_frame": statistics.mean(v["tokens_per_frame"] for v in r),
            "savings": sum(v["full_tokens"] for v in r) / max(1, sum(v["tokens"] for v in r)),
            "savings_static": sum(v["full_tokens"] for v in static) / max(1, sum(v["tokens"] for v in static)),
            "blocks_meeting": sum(v["blocks_meeting"] for v in r) / blocks,
            "flagged": sum(v["flagged"] for v in r) / blocks,
            "violations": sum(v["violations"] for v in r),
            "psnr_db": statistics.mean(v["psnr_db"] for v in r),
            "bits_per_pixel": statistics.mean(v["bits_per_pixel"] for v in r),
            "encode_fps": fps,
            "decoder_passes": statistics.mean(v["decoder_passes"] for v in r),
        }
        s = summary[name]
        print(
            f"| {name} | {s['tokens_per_frame']:.0f} | {s['savings']:.2f}x | {s['savings_static']:.2f}x | "
            f"{100 * s['blocks_meeting']:.0f}% | {100 * s['flagged']:.0f}% | {s['violations']} | {s['psnr_db']:.2f} "
            f"| {s['bits_per_pixel']:.4f} | {fps:.1f} | {fps / fixed_fps:.2f}x | {s['decoder_passes']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "per_clip": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

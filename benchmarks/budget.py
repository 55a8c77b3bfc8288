"""Elastic budgets and run-length tokenization on held-out clips: tokens saved, threshold held, cost.

    python benchmarks/budget.py CLIPS... [--limit N] [--frames 64] [--size 256] [--model vtok-fsq] \
        [--out benchmarks/results/budget.json]

Each clip's first --frames frames, centre-cropped to --size (as benchmarks/quality.py does), are
written losslessly to a temporary file and encoded through `encode_file` at each threshold, with and
without RLT, and once at the fixed full budget. Every encode is decoded losslessly to check each
block's MSE against the threshold. Static-camera clips are those the data manifest calls so. The
model is loaded once beforehand: encode fps exclude model loading.
"""

import argparse
import statistics
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from common import add_clip_arguments, find_clips, load_clip, save_results, timed, write_lossless

from vtok.codec import decode_file, encode_file, inspect_file
from vtok.format import VtokReader
from vtok.media.video import probe, read_frames
from vtok.metrics import MODEL_PEAK, psnr_from_mse
from vtok.model.registry import LoadedModel, load

STATIC = {"arjun_vtest.avi", "arjun_car_traffic_small.mp4", "lamminhthien_overhead_crowd.avi"}
THRESHOLDS = (0.001, 0.003, 0.01)
RLT_THRESHOLD = 6 / 255
CONFIGS = [("fixed", 0.0, False)]  # (name, threshold, runs on)
CONFIGS += [(f"T={t:g}{' +RLT' if rlt else ''}", t, rlt) for t in THRESHOLDS for rlt in (False, True)]


def block_errors(source: np.ndarray, vtok_path: Path, decoded_path: Path) -> tuple[list[float], set[int], float]:
    """MSE of each block on [-1, 1] pixels, the indices of the flagged blocks, and the MSE over all frames."""
    decoded = np.stack(list(read_frames(decoded_path))).astype(np.float64) / 127.5 - 1
    source = source.astype(np.float64) / 127.5 - 1
    with VtokReader(vtok_path) as reader:
        flagged = {b.index for b in reader.blocks() if b.missed_threshold}
        f = reader.header.block_frames
    block_mse = [float(np.mean((source[i : i + f] - decoded[i : i + f]) ** 2)) for i in range(0, len(source), f)]
    return block_mse, flagged, float(np.mean((source - decoded) ** 2))


def run_one(model: LoadedModel, src: Path, work: Path, threshold: float, rlt: bool, frames: np.ndarray) -> dict:
    """Encode `src` (the lossless copy of `frames`) at one config, timed, and check it block by block."""
    vt, mp4 = work / "c.vtok", work / "c.mp4"
    rlt_threshold = RLT_THRESHOLD if rlt else 0.0
    seconds, r = timed(
        encode_file, src=src, dst=vt, model=model, threshold=threshold, rlt_threshold=rlt_threshold, force=True
    )
    s = inspect_file(path=vt)
    decode_file(src=vt, dst=mp4, model=model, lossless=True, force=True)
    block_mse, flagged, mse = block_errors(frames, vt, mp4)
    held = [m <= threshold * 1.01 or threshold == 0 for m in block_mse]  # 1%: 8-bit rounding on decode
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
        "psnr_db": psnr_from_mse(mse, MODEL_PEAK),
        "bits_per_pixel": s["bits_per_pixel"],
        "encode_fps": s["frames"] / seconds,
        "decoder_passes": r.decoder_passes,
    }


def summarize(per_clip: dict[str, dict]) -> dict:
    """One config's figures over all clips (savings pooled, fps the median)."""
    r = list(per_clip.values())
    static = [v for k, v in per_clip.items() if k in STATIC]
    blocks = sum(v["blocks"] for v in r)
    return {
        "tokens_per_frame": statistics.mean(v["tokens_per_frame"] for v in r),
        "savings": sum(v["full_tokens"] for v in r) / max(1, sum(v["tokens"] for v in r)),
        "savings_static": sum(v["full_tokens"] for v in static) / max(1, sum(v["tokens"] for v in static)),
        "blocks_meeting": sum(v["blocks_meeting"] for v in r) / blocks,
        "flagged": sum(v["flagged"] for v in r) / blocks,
        "violations": sum(v["violations"] for v in r),
        "psnr_db": statistics.mean(v["psnr_db"] for v in r),
        "bits_per_pixel": statistics.mean(v["bits_per_pixel"] for v in r),
        "encode_fps": statistics.median(v["encode_fps"] for v in r),
        "decoder_passes": statistics.mean(v["decoder_passes"] for v in r),
    }


def print_table(summary: dict[str, dict], clips: int, args: argparse.Namespace) -> None:
    """Print the summary as a markdown table."""
    print(
        f"{clips} clips, first {args.frames} frames, {args.size}x{args.size} centre crops; "
        f"savings = full-budget tokens / stored tokens, summed over clips"
    )
    print(
        "| config | tokens/frame | savings (all) | savings (static) | blocks meeting T | flagged | violations "
        "| PSNR dB | bits/pixel | encode fps | vs fixed | decoder passes |"
    )
    print("|---|" + "---|" * 11)
    fixed_fps = summary["fixed"]["encode_fps"]
    for name, s in summary.items():
        print(
            f"| {name} | {s['tokens_per_frame']:.0f} | {s['savings']:.2f}x | {s['savings_static']:.2f}x | "
            f"{100 * s['blocks_meeting']:.0f}% | {100 * s['flagged']:.0f}% | {s['violations']} | {s['psnr_db']:.2f} "
            f"| {s['bits_per_pixel']:.4f} | {s['encode_fps']:.1f} | {s['encode_fps'] / fixed_fps:.2f}x "
            f"| {s['decoder_passes']:.2f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p, "budget.json")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", default="vtok-fsq", help="model spec (vtok --model)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = p.parse_args()
    clips = find_clips(args.clips, args.limit)
    model = load(args.model, args.device)
    rows: dict[str, dict[str, dict]] = {name: {} for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for clip in clips:
            frames = load_clip(clip, args.frames, args.size)
            src = write_lossless(work / "src.mp4", frames, Fraction(probe(clip).rate))
            for name, threshold, rlt in CONFIGS:
                rows[name][clip.name] = run_one(model, src, work, threshold, rlt, frames)
            print(
                f"{clip.name}: " + ", ".join(f"{n} {r[clip.name]['tokens_per_frame']:.0f}" for n, r in rows.items()),
                file=sys.stderr,
            )
    summary = {name: summarize(per_clip) for name, per_clip in rows.items()}
    print_table(summary, len(clips), args)
    save_results(args.out, {"summary": summary, "per_clip": rows})


if __name__ == "__main__":
    main()

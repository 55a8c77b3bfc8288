"""Encode and decode real clips with vtok; print quality, size, speed and peak memory.

    python benchmarks/roundtrip.py CLIPS... [--limit N] [--model vtok-fsq] [--threshold 0] \
        [--out benchmarks/results/roundtrip.json]

CLIPS are folders of clips or clip files; whole clips are coded, at their own size. Each encode
and decode runs in its own process, so its peak RSS is its own (the model included); each process
loads the model first and times only the `encode_file` or `decode_file` call. PSNR is RGB, 8-bit
peak, over all frames (from the pooled MSE), between the source and a lossless decode, so it
measures the tokenizer and not x264.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import add_clip_arguments, find_clips, peak_rss_mb, save_results, timed

from vtok.codec import decode_file, encode_file, inspect_file
from vtok.media.video import read_frames
from vtok.metrics import psnr_from_mse

CHILD_FLAG = "--child"
COLUMNS = [
    "clip",
    "size",
    "frames",
    "psnr_db",
    "bits_per_pixel",
    "tokens_per_frame",
    "encode_fps",
    "decode_fps",
    "encode_peak_rss_mb",
    "decode_peak_rss_mb",
    "flagged_blocks",
]


def child_step(step: str, src: str, dst: str, model_spec: str, threshold: float) -> None:
    """In the child process: load the model, time one encode or decode, print seconds, frames and peak RSS."""
    from vtok.model.registry import load

    model = load(model_spec, "cpu")
    if step == "encode":
        seconds, r = timed(encode_file, src=Path(src), dst=Path(dst), model=model, threshold=threshold, force=True)
    else:
        seconds, r = timed(decode_file, src=Path(src), dst=Path(dst), model=model, lossless=True, force=True)
    rss_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "frames": r.frames, "peak_rss_mb": rss_mb}))


def run_in_child(step: str, src: Path, dst: Path, model_spec: str, threshold: float) -> dict:
    """Run `child_step` in a fresh Python process and return what it printed."""
    out = subprocess.run(
        [sys.executable, __file__, CHILD_FLAG, step, str(src), str(dst), model_spec, str(threshold)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def psnr_files(a_path: Path, b_path: Path) -> float:
    """PSNR (RGB, 8-bit) of two videos, streamed frame by frame, from the MSE pooled over all frames."""
    total, n = 0.0, 0
    for a, b in zip(read_frames(a_path), read_frames(b_path), strict=True):
        total += float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        n += 1
    return psnr_from_mse(total / n)


def measure(clip: Path, model_spec: str, threshold: float) -> dict:
    """Round-trip one clip and return its row."""
    with tempfile.TemporaryDirectory() as d:
        vt, mp4 = Path(d) / "c.vtok", Path(d) / "c.mp4"
        enc = run_in_child("encode", clip, vt, model_spec, threshold)
        dec = run_in_child("decode", vt, mp4, model_spec, threshold)
        s = inspect_file(path=vt)
        return {
            "clip": clip.name,
            "size": f"{s['width']}x{s['height']}",
            "frames": s["frames"],
            "psnr_db": psnr_files(clip, mp4),
            "bits_per_pixel": s["bits_per_pixel"],
            "tokens_per_frame": s["tokens_per_frame"]["median"],
            "encode_fps": enc["frames"] / enc["seconds"],
            "decode_fps": dec["frames"] / dec["seconds"],
            "encode_peak_rss_mb": enc["peak_rss_mb"],
            "decode_peak_rss_mb": dec["peak_rss_mb"],
            "flagged_blocks": len(s["flagged_blocks"]),
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        child_step(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p, "roundtrip.json")
    p.add_argument("--model", default="vtok-fsq", help="model spec (vtok --model)")
    p.add_argument("--threshold", type=float, default=0.0)
    args = p.parse_args()
    print(f"cpu threads: {os.cpu_count()}", file=sys.stderr)
    rows = [measure(c, args.model, args.threshold) for c in find_clips(args.clips, args.limit)]
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    save_results(args.out, rows)


if __name__ == "__main__":
    main()

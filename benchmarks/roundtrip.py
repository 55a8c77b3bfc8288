"""Encode and decode real clips with vtok; print quality, size, speed and peak memory.

    python benchmarks/roundtrip.py CLIP... [--model vtok-fsq] [--threshold 0] [--json out.json]

Each encode and decode runs in its own process, so its peak RSS is its own. PSNR is RGB, 8-bit
peak, over all frames (from the pooled MSE), between the source and a lossless decode, so it
measures the tokenizer and not x264.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _child(step: str, src: str, dst: str, model: str, threshold: float) -> None:
    import resource

    from vtok.codec import decode_file, encode_file

    t = time.perf_counter()
    if step == "encode":
        r = encode_file(src=Path(src), dst=Path(dst), model=model, threshold=threshold, force=True, device="cpu")
    else:
        r = decode_file(src=Path(src), dst=Path(dst), lossless=True, force=True, device="cpu")
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "frames": r.frames, "peak_rss_mb": rss_mb}))


def _run(step: str, src: Path, dst: Path, model: str, threshold: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, str(src), str(dst), model, str(threshold)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def psnr_files(a_path: Path, b_path: Path) -> float:
    """PSNR (RGB, 8-bit) of two videos, streamed frame by frame, from the MSE pooled over all frames."""
    from vtok.media.video import read_frames

    total, n = 0.0, 0
    for a, b in zip(read_frames(a_path), read_frames(b_path), strict=True):
        total += float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        n += 1
    return 10 * np.log10(255**2 / (total / n))


def measure(clip: Path, model: str, threshold: float) -> dict:
    from vtok.codec import inspect_file

    with tempfile.TemporaryDirectory() as d:
        vt, mp4 = Path(d) / "c.vtok", Path(d) / "c.mp4"
        enc = _run("encode", clip, vt, model, threshold)
        dec = _run("decode", vt, mp4, model, threshold)
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
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clips", nargs="+", type=Path)
    p.add_argument("--model", default="vtok-fsq")
    p.add_argument("--threshold", type=float, default=0.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    print(f"cpu threads: {os.cpu_count()}", file=sys.stderr)
    rows = [measure(c, args.model, args.threshold) for c in args.clips]
    cols = [
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
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Tokenizer quality on held-out clips: PSNR against tokens per frame, and the threshold search.

    python benchmarks/quality.py [--clips ../shared/data/videos/test] [--frames 32] \
        [--models vtok-fsq vtok-lfq PATH#NAME ...] [--threshold 0.003] [--json out.json]

For each clip, the first --frames frames (whole blocks) are taken as a 256x256 centre crop (the
short side first scaled up to 256 where it is smaller). Codes are made once per clip; each budget
is a prefix of the coarse-to-fine order with the same number of tokens in every block, from 16
tokens per frame up to the full budget. A model with context decodes the blocks in order, each
seeing the previous block decoded at the same budget (block 0 is a keyframe). PSNR is RGB, 8-bit
peak, from the MSE pooled over the clip's frames; the table gives the mean over clips.

The threshold columns run the real `encode_file` (elastic budget and runs) on the same crops,
stored losslessly first: the share of blocks that meet T without a flag, and mean tokens per
frame. fps are whole-file `encode_file` and `decode_file` rates (to H.264 at crf 18; model
loading included), at the threads given.
"""

import argparse
import json
import math
import sys
import tempfile
import time
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from vtok.bench.runner import centre_crop, psnr
from vtok.codec import decode_file, encode_file
from vtok.format.layout import prefix_keep
from vtok.media.video import VideoWriter, read_frames
from vtok.model.pixels import to_frames, to_model
from vtok.model.registry import load_model, resolve

TOKENS_PER_FRAME = (16, 32, 64, 128, 256, 512, 1024)


@torch.inference_mode()
def curve(model, frames: np.ndarray, tokens_per_frame=TOKENS_PER_FRAME) -> tuple[dict, torch.Tensor]:
    """frames uint8 (T, H, W, 3), T a multiple of the block size -> ({tokens per frame: PSNR}, indices)."""
    cfg = model.config
    f = cfg.frames
    t, h, w, _ = frames.shape
    x = to_model(frames.reshape(t // f, f, h, w, 3), cfg.stride, "cpu")
    indices = torch.cat([model.encode(x[i : i + 2]) for i in range(0, len(x), 2)])
    rows, cols = indices.shape[1:]
    out = {}
    for tpf in tokens_per_frame:
        n = tpf * f * h * w // (256 * 256)  # per block, scaled to the frame's area
        if n > rows * cols:
            break
        keep = torch.from_numpy(prefix_keep(n, rows, cols, cfg.levels))[None]
        if cfg.context:
            ys, context = [], None
            for i in range(len(x)):
                ys.append(model.decode(indices[i : i + 1], keep, context))
                context = model.context_of(ys[-1])
            y = torch.cat(ys)
        else:
            y = torch.cat(
                [
                    model.decode(indices[i : i + 2], keep.expand(len(indices[i : i + 2]), -1, -1))
                    for i in range(0, len(x), 2)
                ]
            )
        out[tpf] = psnr(frames, to_frames(y, h, w).reshape(t, h, w, 3))
    return out, indices


def threshold_run(spec: str, frames: np.ndarray, threshold: float, tmp: Path) -> dict:
    """Encode frames uint8 (T, H, W, 3) at `threshold` with the real codec, then decode it."""
    src, dst, back = tmp / "crop.mp4", tmp / "crop.vtok", tmp / "back.mp4"
    with VideoWriter(src, width=frames.shape[2], height=frames.shape[1], rate=Fraction(30), lossless=True) as out:
        for frame in frames:
            out.write(frame)
    t0 = time.perf_counter()
    r = encode_file(src=src, dst=dst, model=spec, threshold=threshold, force=True, device="cpu")
    t1 = time.perf_counter()
    decode_file(src=dst, dst=tmp / "timed.mp4", model=spec, force=True, device="cpu")  # as users run it
    t2 = time.perf_counter()
    decode_file(src=dst, dst=back, model=spec, force=True, device="cpu", lossless=True)  # exact, for PSNR
    decoded = np.stack(list(read_frames(back)))
    return {
        "blocks": r.blocks,
        "flagged": r.flagged_blocks,
        "tokens_per_frame": r.tokens / r.frames,
        "psnr": psnr(frames, decoded),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "frames": r.frames,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=Path, default=Path("../shared/data/videos/test"))
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--models", nargs="*", default=["vtok-fsq", "vtok-lfq"], help="model specs (vtok --model)")
    p.add_argument("--threshold", type=float, default=0.003, help="0 skips the threshold runs")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    clips = sorted(c for c in args.clips.iterdir() if c.suffix.lower() in {".mp4", ".avi", ".mkv", ".webm"})
    results = {}
    for spec in args.models:
        entry = resolve(spec)
        model = load_model(entry)
        f = model.config.frames
        n = args.frames // f * f
        rows, counts = [], torch.zeros(model.codebook_size, dtype=torch.float64)
        runs = []
        for clip in clips:
            frames = np.stack(list(islice(read_frames(clip), n)))
            frames = centre_crop(frames[: len(frames) // f * f])
            points, indices = curve(model, frames)
            counts += torch.bincount(indices.reshape(-1), minlength=model.codebook_size).double()
            rows.append(points)
            line = ", ".join(f"{k} {v:.2f}" for k, v in points.items())
            if args.threshold > 0:
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(threshold_run(spec, frames, args.threshold, Path(tmp)))
                r = runs[-1]
                line += f"; T: {r['blocks'] - r['flagged']}/{r['blocks']} met, {r['tokens_per_frame']:.0f} tok/frame"
            print(f"{spec} {clip.name}: {line}", file=sys.stderr)
        prob = counts / counts.sum()
        res = {
            "psnr_by_tokens_per_frame": {k: float(np.mean([r[k] for r in rows])) for k in rows[0]},
            "perplexity": math.exp(-(prob[prob > 0] * prob[prob > 0].log()).sum().item()),
            "codebook_size": model.codebook_size,
            "clips": len(clips),
            "frames_per_clip": n,
            "sha256": entry.sha256,
        }
        if runs:
            blocks = sum(r["blocks"] for r in runs)
            res["threshold"] = {
                "T": args.threshold,
                "blocks_meeting_T": 1 - sum(r["flagged"] for r in runs) / blocks,
                "tokens_per_frame": float(np.mean([r["tokens_per_frame"] for r in runs])),
                "psnr": float(np.mean([r["psnr"] for r in runs])),
                "encode_fps": sum(r["frames"] for r in runs) / sum(r["encode_s"] for r in runs),
                "decode_fps": sum(r["frames"] for r in runs) / sum(r["decode_s"] for r in runs),
                "threads": torch.get_num_threads(),
            }
        results[spec] = res
    print(
        f"Mean PSNR (dB) over {len(clips)} clips of {args.clips}, first {n} frames, 256x256 centre crops, "
        "by tokens per frame (a prefix of the coarse-to-fine order in every block)."
    )
    widths = sorted({k for r in results.values() for k in r["psnr_by_tokens_per_frame"]})
    print("| model | " + " | ".join(str(k) for k in widths) + " | perplexity |")
    print("|---|" + "---|" * (len(widths) + 1))
    for spec, r in results.items():
        cells = [
            f"{r['psnr_by_tokens_per_frame'][k]:.2f}" if k in r["psnr_by_tokens_per_frame"] else "" for k in widths
        ]
        print(f"| {spec} | " + " | ".join(cells) + f" | {r['perplexity']:.0f} of {r['codebook_size']} |")
    if any("threshold" in r for r in results.values()):
        print(f"\nThreshold search (real encode, runs on), T = {args.threshold}:")
        print("| model | blocks meeting T | tokens per frame | PSNR | encode fps | decode fps | threads |")
        print("|---|---|---|---|---|---|---|")
        for spec, r in results.items():
            t = r.get("threshold")
            if t:
                print(
                    f"| {spec} | {100 * t['blocks_meeting_T']:.1f}% | {t['tokens_per_frame']:.0f} | {t['psnr']:.2f} | "
                    f"{t['encode_fps']:.1f} | {t['decode_fps']:.1f} | {t['threads']} |"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Tokenizer quality on held-out clips: PSNR against tokens per frame, and the threshold search.

    python benchmarks/quality.py CLIPS... [--limit N] [--frames 32] [--models vtok-fsq vtok-lfq PATH#NAME ...] \
        [--threshold 0.003] [--refine STEPS] [--out benchmarks/results/quality.json]

For each clip, the first --frames frames (whole blocks) are taken as a 256x256 centre crop (the
short side first scaled up to 256 where it is smaller). Codes are made once per clip; each budget
is a prefix of the coarse-to-fine order with the same number of tokens in every block, from 16
tokens per frame up to the full budget. A model with context decodes the blocks in order, each
seeing the previous block decoded at the same budget (block 0 is a keyframe). PSNR is RGB, 8-bit
peak, from the MSE pooled over the clip's frames; the table gives the mean over clips. With
--refine, the codes are refined against the decoder (vtok.model.refine) in the curve and the
threshold runs alike.

The threshold columns run the real `encode_file` (elastic budget and runs) on the same crops,
stored losslessly first: the share of blocks that meet T without a flag, and mean tokens per
frame. fps are whole-file `encode_file` and `decode_file` rates (to H.264 at crf 18), at the
threads given; each model is loaded once beforehand, so they exclude model loading.
"""

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import add_clip_arguments, find_clips, load_clip, save_results, timed, write_lossless

from vtok.codec import decode_file, encode_file
from vtok.format.layout import prefix_keep
from vtok.media.video import read_frames
from vtok.metrics import psnr
from vtok.model.pixels import to_frames, to_model
from vtok.model.refine import check_refine, refined_encode
from vtok.model.registry import LoadedModel, load

TOKENS_PER_FRAME = (16, 32, 64, 128, 256, 512, 1024)


def decode_at_budget(model: LoadedModel, indices: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Decode every block of `indices` with the keep mask `keep` (1, rows, cols); in order with context."""
    tokenizer = model.tokenizer
    if tokenizer.config.context:
        decoded, context = [], None
        for i in range(len(indices)):
            decoded.append(tokenizer.decode(indices[i : i + 1], keep, context))
            context = tokenizer.context_of(decoded[-1])
        return torch.cat(decoded)
    pairs = [indices[i : i + 2] for i in range(0, len(indices), 2)]
    return torch.cat([tokenizer.decode(pair, keep.expand(len(pair), -1, -1)) for pair in pairs])


@torch.inference_mode()
def curve(
    model: LoadedModel, frames: np.ndarray, tokens_per_frame=TOKENS_PER_FRAME, refine: int = 0
) -> tuple[dict, torch.Tensor]:
    """frames uint8 (T, H, W, 3), T a multiple of the block size -> ({tokens per frame: PSNR}, indices)."""
    cfg = model.tokenizer.config
    f = cfg.frames
    t, h, w, _ = frames.shape
    x = to_model(frames.reshape(t // f, f, h, w, 3), cfg.stride, model.device)
    indices = torch.cat([refined_encode(model.tokenizer, x[i : i + 2], refine) for i in range(0, len(x), 2)])
    rows, cols = indices.shape[1:]
    out = {}
    for tpf in tokens_per_frame:
        n = tpf * f * h * w // (256 * 256)  # per block, scaled to the frame's area
        if n > rows * cols:
            break
        keep = torch.from_numpy(prefix_keep(n, rows, cols, cfg.levels))[None].to(model.device)
        y = decode_at_budget(model, indices, keep)
        out[tpf] = psnr(frames, to_frames(y, h, w).reshape(t, h, w, 3))
    return out, indices


def threshold_run(model: LoadedModel, frames: np.ndarray, threshold: float, tmp: Path, refine: int = 0) -> dict:
    """Encode frames uint8 (T, H, W, 3) at `threshold` with the real codec, then decode it; time both."""
    src = write_lossless(tmp / "crop.mp4", frames)
    dst, back = tmp / "crop.vtok", tmp / "back.mp4"
    encode_s, r = timed(encode_file, src=src, dst=dst, model=model, threshold=threshold, refine=refine, force=True)
    decode_s, _ = timed(decode_file, src=dst, dst=tmp / "timed.mp4", model=model, force=True)  # as users run it
    decode_file(src=dst, dst=back, model=model, force=True, lossless=True)  # exact, for PSNR
    decoded = np.stack(list(read_frames(back)))
    return {
        "blocks": r.blocks,
        "flagged": r.flagged_blocks,
        "tokens_per_frame": r.tokens / r.frames,
        "psnr": psnr(frames, decoded),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "frames": r.frames,
    }


def threshold_summary(runs: list[dict], threshold: float) -> dict:
    """The threshold runs of one model over all clips, pooled."""
    blocks = sum(r["blocks"] for r in runs)
    frames = sum(r["frames"] for r in runs)
    return {
        "T": threshold,
        "blocks_meeting_T": 1 - sum(r["flagged"] for r in runs) / blocks,
        "tokens_per_frame": float(np.mean([r["tokens_per_frame"] for r in runs])),
        "psnr": float(np.mean([r["psnr"] for r in runs])),
        "encode_fps": frames / sum(r["encode_s"] for r in runs),
        "decode_fps": frames / sum(r["decode_s"] for r in runs),
        "threads": torch.get_num_threads(),
    }


def measure_model(spec: str, clips: list[Path], args: argparse.Namespace) -> dict:
    """Curves (and threshold runs unless --threshold 0) of one model over `clips`, as quality.json holds them."""
    model = load(spec, args.device)
    f = model.tokenizer.config.frames
    n = args.frames // f * f
    codebook_size = model.tokenizer.codebook_size
    curves, runs, counts = [], [], torch.zeros(codebook_size, dtype=torch.float64)
    for clip in clips:
        frames = load_clip(clip, n, 256, multiple=f)
        points, indices = curve(model, frames, refine=args.refine)
        counts += torch.bincount(indices.reshape(-1).cpu(), minlength=codebook_size).double()
        curves.append(points)
        line = ", ".join(f"{k} {v:.2f}" for k, v in points.items())
        if args.threshold > 0:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(threshold_run(model, frames, args.threshold, Path(tmp), args.refine))
            r = runs[-1]
            line += f"; T: {r['blocks'] - r['flagged']}/{r['blocks']} met, {r['tokens_per_frame']:.0f} tok/frame"
        print(f"{spec} {clip.name}: {line}", file=sys.stderr)
    prob = counts / counts.sum()
    prob = prob[prob > 0]
    result = {
        "psnr_by_tokens_per_frame": {k: float(np.mean([c[k] for c in curves])) for k in curves[0]},
        "perplexity": math.exp(-(prob * prob.log()).sum().item()),
        "codebook_size": codebook_size,
        "clips": len(clips),
        "frames_per_clip": n,
        "sha256": model.entry.sha256,
    }
    if args.refine:
        result["refine"] = args.refine
    if runs:
        result["threshold"] = threshold_summary(runs, args.threshold)
    return result


def print_tables(results: dict, clips: list[Path], args: argparse.Namespace) -> None:
    """Print the curves and the threshold runs as markdown tables."""
    frames = {r["frames_per_clip"] for r in results.values()}
    print(
        f"Mean PSNR (dB) over {len(clips)} clips, first {'/'.join(map(str, sorted(frames)))} frames, 256x256 "
        "centre crops, by tokens per frame (a prefix of the coarse-to-fine order in every block)."
    )
    widths = sorted({k for r in results.values() for k in r["psnr_by_tokens_per_frame"]})
    print("| model | " + " | ".join(str(k) for k in widths) + " | perplexity |")
    print("|---|" + "---|" * (len(widths) + 1))
    for spec, r in results.items():
        points = r["psnr_by_tokens_per_frame"]
        cells = [f"{points[k]:.2f}" if k in points else "" for k in widths]
        print(f"| {spec} | " + " | ".join(cells) + f" | {r['perplexity']:.0f} of {r['codebook_size']} |")
    if not any("threshold" in r for r in results.values()):
        return
    print(f"\nThreshold search (real encode, runs on), T = {args.threshold}:")
    print("| model | blocks meeting T | tokens per frame | PSNR | encode fps | decode fps | threads |")
    print("|---|---|---|---|---|---|---|")
    for spec, r in results.items():
        if t := r.get("threshold"):
            print(
                f"| {spec} | {100 * t['blocks_meeting_T']:.1f}% | {t['tokens_per_frame']:.0f} | {t['psnr']:.2f} | "
                f"{t['encode_fps']:.1f} | {t['decode_fps']:.1f} | {t['threads']} |"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(p, "quality.json")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--models", nargs="+", default=["vtok-fsq", "vtok-lfq"], help="model specs (vtok --model)")
    p.add_argument("--threshold", type=float, default=0.003, help="0 skips the threshold runs")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--refine", type=int, default=0, help="steps of vtok.model.refine for every block (vtok encode --refine)"
    )
    args = p.parse_args()
    check_refine(args.refine)
    clips = find_clips(args.clips, args.limit)
    results = {spec: measure_model(spec, clips, args) for spec in args.models}
    print_tables(results, clips, args)
    save_results(args.out, results)


if __name__ == "__main__":
    main()

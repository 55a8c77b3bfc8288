"""Tokenizer quality on held-out clips: PSNR by share of tokens kept, per model, and codebook use.

    python benchmarks/quality.py [--clips ../shared/data/videos/test] [--frames 16] [--json out.json]

For each clip, the first --frames frames (whole blocks) are taken twice: as a 256x256 centre crop
(the short side first scaled up to 256 where it is smaller) and at native size. Codes are made once
per clip; each budget is a prefix of the coarse-to-fine order. PSNR is RGB, 8-bit peak, from the
MSE pooled over the clip's frames; the table gives the mean over clips. Perplexity is exp of the
entropy of the code histogram over every clip's 256x256 codes.
"""

import argparse
import json
import math
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from vtok.bench import centre_crop, psnr
from vtok.codec import to_frames, to_model
from vtok.io import read_frames
from vtok.order import prefix_keep
from vtok.weights import list_models, load_model

SHARES = (0.10, 0.25, 0.50, 1.00)


@torch.inference_mode()
def measure(model, frames: np.ndarray, shares=SHARES) -> tuple[dict, torch.Tensor]:
    """frames uint8 (T, H, W, 3), T a multiple of the block size -> ({share: PSNR}, indices)."""
    f = model.config.frames
    t, h, w, _ = frames.shape
    x = to_model(frames.reshape(t // f, f, h, w, 3), model.config.stride, "cpu")
    indices = torch.cat([model.encode(x[i : i + 2]) for i in range(0, len(x), 2)])
    rows, cols = indices.shape[1:]
    out = {}
    for share in shares:
        keep = torch.from_numpy(prefix_keep(round(share * rows * cols), rows, cols)).expand_as(indices)
        y = torch.cat([model.decode(indices[i : i + 2], keep[i : i + 2]) for i in range(0, len(x), 2)])
        out[share] = psnr(frames, to_frames(y, h, w).reshape(t, h, w, 3))
    return out, indices


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=Path, default=Path("../shared/data/videos/test"))
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--models", nargs="*", default=None, help="default: every built-in model")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    clips = sorted(c for c in args.clips.iterdir() if c.suffix.lower() in {".mp4", ".avi", ".mkv", ".webm"})
    entries = [e for e in list_models() if args.models is None or e.name in args.models]
    results = {}
    for entry in entries:
        model = load_model(entry)
        frames_per_block = model.config.frames
        n = args.frames // frames_per_block * frames_per_block
        crop_rows, native_rows, counts = [], [], torch.zeros(model.codebook_size, dtype=torch.float64)
        for clip in clips:
            frames = np.stack(list(islice(read_frames(clip), n)))
            frames = frames[: len(frames) // frames_per_block * frames_per_block]
            crop, indices = measure(model, centre_crop(frames))
            counts += torch.bincount(indices.reshape(-1), minlength=model.codebook_size).double()
            native, _ = measure(model, frames, shares=(1.0,))
            crop_rows.append(crop)
            native_rows.append(native[1.0])
            print(
                f"{entry.name} {clip.name}: "
                + ", ".join(f"{int(s * 100)}% {v:.2f} dB" for s, v in crop.items())
                + f"; native {native[1.0]:.2f} dB",
                file=sys.stderr,
            )
        prob = counts / counts.sum()
        results[entry.name] = {
            "psnr_256_by_share": {f"{int(s * 100)}%": float(np.mean([r[s] for r in crop_rows])) for s in SHARES},
            "psnr_native_full": float(np.mean(native_rows)),
            "perplexity": math.exp(-(prob[prob > 0] * prob[prob > 0].log()).sum().item()),
            "codebook_size": model.codebook_size,
            "clips": len(clips),
            "frames_per_clip": n,
        }
    print(
        f"Mean PSNR (dB) over {len(clips)} clips of {args.clips}, first {n} frames; 256x256 centre crops "
        "by share of tokens kept (prefix of the coarse-to-fine order), and native size at the full budget."
    )
    print("| model | " + " | ".join(f"{int(s * 100)}%" for s in SHARES) + " | native 100% | perplexity |")
    print("|---|" + "---|" * (len(SHARES) + 2))
    for name, r in results.items():
        cells = [f"{v:.2f}" for v in r["psnr_256_by_share"].values()]
        print(
            f"| {name} | " + " | ".join(cells) + f" | {r['psnr_native_full']:.2f} | "
            f"{r['perplexity']:.0f} of {r['codebook_size']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The threshold search with and without its error predictor, side by side on the same blocks.

    OMP_NUM_THREADS=1 python benchmarks/search.py CLIPS... [--limit N] [--frames 64] \\
        [--thresholds 0.003 0.01] [--model vtok-fsq] [--out benchmarks/results/search.json]

Each clip's first --frames frames (256x256 centre crops) are encoded once; then, for each
threshold, the blocks are coded in order by vtok's BlockCoder (runs and elastic budgets, as
`vtok encode` does) twice, in turns per clip: measuring levels in every block ("measured"), and
starting from guessed errors ("guessed", the default). It prints decoder passes per block, tokens
per frame, the share of blocks that meet T, violations (unflagged blocks over T: must be 0), PSNR
and the time the search took, with the ratio of the two.
"""

import argparse
import math
import time
from fractions import Fraction

import torch
from common import add_clip_arguments, find_clips, load_clip, save_results

from vtok.codec.encode import BlockCoder, header_for
from vtok.format import stored_positions
from vtok.model.pixels import to_model
from vtok.model.registry import load

MODES = {"measured": False, "guessed": True}


def code_clip(model, x: torch.Tensor, codes: torch.Tensor, threshold: float, predict: bool) -> dict:
    """Code blocks x float (B, 3, F, S, S) with their codes (B, rows, cols) in order -> totals."""
    f, s, levels = x.shape[2], x.shape[-1], model.tokenizer.config.levels
    header = header_for(model, width=s, height=s, rate=Fraction(30), threshold=threshold)
    coder = BlockCoder(model, header, predict=predict)
    out = {"blocks": 0, "passes": 0, "tokens": 0, "met": 0, "violations": 0, "sq_err": 0.0, "seconds": 0.0}
    for i in range(len(x)):
        start = time.perf_counter()
        block = coder.code(x[i : i + 1], codes[i], f)
        out["seconds"] += time.perf_counter() - start
        b = block.budget
        out["blocks"] += 1
        out["passes"] += b.passes
        out["tokens"] += int(stored_positions(block.run, b.tile_levels, levels).sum())
        out["met"] += not b.missed
        out["violations"] += (not b.missed) and b.mse > threshold
        out["sq_err"] += b.mse
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(parser, "search.json")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.003, 0.01])
    parser.add_argument("--model", default="vtok-fsq")
    args = parser.parse_args()
    model = load(args.model, "cpu")
    cfg = model.tokenizer.config
    totals = {(t, m): {} for t in args.thresholds for m in MODES}
    with torch.inference_mode():
        for clip in find_clips(args.clips, args.limit):
            frames = load_clip(clip, args.frames, multiple=cfg.frames)
            t, h, w, _ = frames.shape
            x = to_model(frames.reshape(t // cfg.frames, cfg.frames, h, w, 3), cfg.stride, "cpu")
            codes = torch.cat([model.tokenizer.encode(x[i : i + 2]) for i in range(0, len(x), 2)])
            for threshold in args.thresholds:
                for mode, predict in MODES.items():
                    got = code_clip(model, x, codes, threshold, predict)
                    for k, v in got.items():
                        totals[threshold, mode][k] = totals[threshold, mode].get(k, 0) + v
            print(f"{clip.name}: {len(x)} blocks", flush=True)
    rows = []
    print("| T | search | passes per block | tokens per frame | blocks meeting T | violations | PSNR dB | search s "
          "| vs measured |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for threshold in args.thresholds:
        base = totals[threshold, "measured"]["seconds"]
        for mode in MODES:
            r = totals[threshold, mode]
            n = r["blocks"]
            row = {
                "threshold": threshold,
                "search": mode,
                "blocks": n,
                "passes_per_block": round(r["passes"] / n, 3),
                "tokens_per_frame": round(r["tokens"] / (n * cfg.frames), 1),
                "blocks_meeting_t": round(r["met"] / n, 4),
                "violations": r["violations"],
                "psnr_db": round(10 * math.log10(4 / (r["sq_err"] / n)), 2),
                "search_s": round(r["seconds"], 2),
                "speedup": round(base / r["seconds"], 2),
            }
            rows.append(row)
            print(f"| {threshold:g} | {mode} | {row['passes_per_block']:.2f} | {row['tokens_per_frame']:.0f} | "
                  f"{100 * row['blocks_meeting_t']:.1f}% | {row['violations']} | {row['psnr_db']:.2f} | "
                  f"{row['search_s']:.1f} | {row['speedup']:.2f}x |")  # fmt: skip
    save_results(args.out, {"model": args.model, "frames": args.frames, "rows": rows})


if __name__ == "__main__":
    main()

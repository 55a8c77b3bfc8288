"""The CPU's bf16 encoder against float32: how many codes change, what that does to PSNR, and the time.

    OMP_NUM_THREADS=1 python benchmarks/bf16.py ../shared/data/videos/test [--frames 32] [--rounds 3]
        [--model vtok-fsq] [--out benchmarks/results/bf16.json]

Each clip's first `--frames` frames, centre-cropped to 256x256, are encoded by a shipped model
(`--model`, vtok-fsq unless given) twice, with the encoder body in bf16 (the default where the CPU
has native bf16) and in float32 (VTOK_ENCODER_BF16=0), and both code sets are decoded by the same
decoder. Printed: the share of codes that differ, the full-budget PSNR of each, and the encode time
of each (medians over `--rounds` interleaved rounds, one thread). The same is then measured on one
1280x720 block of the first clip large enough, where the encoder's share of the time is largest.
"""

import argparse
import os
import statistics
import time
from itertools import islice

import numpy as np
import torch
from common import add_clip_arguments, find_clips, load_clip, save_results

from vtok.media.video import read_frames
from vtok.metrics import MODEL_PEAK, psnr_from_mse
from vtok.model import tokenizer
from vtok.model.pixels import to_model
from vtok.model.registry import load


def encode_with(model, x: torch.Tensor, bf16: bool) -> tuple[float, torch.Tensor]:
    """(seconds, codes) of one encode of x with the encoder body in bf16 or float32."""
    os.environ["VTOK_ENCODER_BF16"] = "1" if bf16 else "0"
    tokenizer.cpu_bf16.cache_clear()
    start = time.perf_counter()
    codes = model.encode(x)
    return time.perf_counter() - start, codes


def compare(model, x: torch.Tensor, rounds: int) -> dict:
    """Code agreement, PSNR of each code set at the full budget, and median encode ms per block."""
    times = {True: [], False: []}
    codes = {}
    for _ in range(rounds):
        for bf16 in (True, False):
            seconds, codes[bf16] = encode_with(model, x, bf16)
            times[bf16].append(seconds)
    psnr = {bf16: psnr_from_mse(float((model.decode(c) - x).square().mean()), MODEL_PEAK) for bf16, c in codes.items()}
    ms = {bf16: statistics.median(t) * 1000 / len(x) for bf16, t in times.items()}
    return {
        "codes_changed": float((codes[True] != codes[False]).float().mean()),
        "psnr_bf16_db": round(psnr[True], 3),
        "psnr_float32_db": round(psnr[False], 3),
        "encode_ms_bf16": round(ms[True], 1),
        "encode_ms_float32": round(ms[False], 1),
        "speedup": round(ms[False] / ms[True], 3),
    }


def first_720p_block(clips) -> torch.Tensor | None:
    """One block (1, 3, 4, 720, 1280) cut from the first clip at least that large, or None."""
    for clip in clips:
        frames = np.stack(list(islice(read_frames(clip), 4)))
        if frames.shape[1] >= 720 and frames.shape[2] >= 1280:
            y0, x0 = (frames.shape[1] - 720) // 2, (frames.shape[2] - 1280) // 2
            return to_model(np.ascontiguousarray(frames[None, :, y0 : y0 + 720, x0 : x0 + 1280]), 4)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_clip_arguments(parser, "bf16.json")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (a multiple of 4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--model", default="vtok-fsq", help="a shipped model's name, or FOLDER#NAME")
    args = parser.parse_args()
    if not tokenizer.cpu_bf16("encoder"):
        raise SystemExit("this CPU has no native bf16 (or VTOK_ENCODER_BF16=0): nothing to compare")
    model = load(args.model, "cpu").tokenizer
    clips = find_clips(args.clips, args.limit)
    rows = {}
    with torch.no_grad():
        for clip in clips:
            x = to_model(load_clip(clip, args.frames, 256, 4).reshape(-1, 4, 256, 256, 3), 4)
            rows[clip.stem] = compare(model, x, args.rounds)
            r = rows[clip.stem]
            print(
                f"{clip.stem:32s} changed {r['codes_changed']:.2%}  PSNR {r['psnr_bf16_db']:.3f} "
                f"(float32 {r['psnr_float32_db']:.3f})  {r['speedup']:.2f}x"
            )
        big = first_720p_block(clips)
        at_720p = compare(model, big, args.rounds) if big is not None else None
    summary = {
        key: round(statistics.mean(r[key] for r in rows.values()), 4)
        for key in ("codes_changed", "psnr_bf16_db", "psnr_float32_db")
    }
    summary["speedup_median"] = statistics.median(r["speedup"] for r in rows.values())
    print(
        f"256x256, {len(rows)} clips: {summary['codes_changed']:.2%} of codes changed, PSNR "
        f"{summary['psnr_bf16_db']:.3f} dB (float32 {summary['psnr_float32_db']:.3f}), encode "
        f"{summary['speedup_median']:.2f}x"
    )
    if at_720p:
        print(
            f"1280x720 block: {at_720p['codes_changed']:.2%} changed, PSNR {at_720p['psnr_bf16_db']:.3f} dB "
            f"(float32 {at_720p['psnr_float32_db']:.3f}), encode {at_720p['encode_ms_bf16']:.0f} ms "
            f"against {at_720p['encode_ms_float32']:.0f} ms ({at_720p['speedup']:.2f}x)"
        )
    results = {"model": args.model, "threads": torch.get_num_threads(), "frames": args.frames, "rounds": args.rounds}
    save_results(args.out, results | {"summary": summary, "clips": rows, "720p": at_720p})


if __name__ == "__main__":
    main()

"""Encode and decode speed of vtok's model path on one device: frames held in memory, no file I/O.

    python benchmarks/gpu_speed.py [--device auto] [--model vtok-fsq] [--clip FILE] [--sizes 256 720p]
        [--frames 128] [--thresholds 0 0.003] [--precisions fp32 bf16] [--repeat 3]
        [--out benchmarks/results/gpu_speed.json]

Encoding runs what `vtok encode` runs between reading frames and writing tokens: frames grouped and
batched into blocks (vtok.codec.batching), moved to the device (to_model), the encoder, and per
block the run tracker and the budget search (BlockCoder, vtok.budget.elastic.choose_budget).
Decoding runs what `vtok decode` runs between reading tokens and writing frames (decode_in_order,
to_frames). Files are neither read nor written, so it runs where PyAV is missing (the lent GPUs).

Frames: the first --frames of --clip (decoded once into the training frame cache, by PyAV or
OpenCV; looped if the clip is shorter), scaled to cover each size and centre-cropped; without
--clip, a synthetic moving pattern. fps: frames over wall seconds with the device synchronized,
the median of --repeat timed runs after one warm-up. bf16 runs the model under autocast (the
quantizer stays float32, as in training); each bf16 row is compared with the float32 one (codes
that agree, PSNR and token changes) and called safe only within BF16_SAFE_*.
"""

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import RESULTS, save_results

from vtok.codec.batching import batches, blocks_per_batch, group_blocks
from vtok.codec.encode import BlockCoder, CodedBlock, header_for
from vtok.format import Header, stored_positions
from vtok.metrics import psnr_from_mse
from vtok.model.pixels import to_frames, to_model
from vtok.model.registry import DEFAULT_MODEL, LoadedModel, load, pick_device

NAMED_SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
BF16_SAFE_PSNR_DB = 0.05  # PSNR that bf16 may lose against float32
BF16_SAFE_TOKENS = 0.01  # share of tokens that bf16 may add (the budget search sees its decoder)


def parse_size(text: str) -> tuple[int, int]:
    """'N' (N x N), '720p', '1080p' or 'HxW' -> (height, width)."""
    if text in NAMED_SIZES:
        return NAMED_SIZES[text]
    h, sep, w = text.partition("x")
    w = w if sep else h
    if not (h.isdigit() and w.isdigit() and int(h) >= 8 and int(w) >= 8):
        raise argparse.ArgumentTypeError(f"size {text!r}: use N (square), 720p, 1080p or HxW, at least 8 pixels")
    return int(h), int(w)


def _size_arg(text: str) -> str:
    parse_size(text)
    return text


def clip_frames(clip: Path, n: int, cache: Path) -> np.ndarray:
    """The first n frames of the video `clip`, uint8 (n, H, W, 3), looped if it is shorter."""
    from vtok.train.data import build_cache

    videos, _ = build_cache([clip], cache)
    if not videos:
        raise SystemExit(f"{clip}: not a video")
    frames = np.load(videos[0], mmap_mode="r")
    if len(frames) < n:
        frames = np.concatenate([frames] * -(-n // len(frames)))
    return np.array(frames[:n])  # a writable copy: torch takes no read-only arrays


def synthetic_frames(n: int, height: int, width: int) -> np.ndarray:
    """A moving pattern, uint8 (n, height, width, 3): drifting colour waves, a bright square crossing
    the frame, mild seeded noise. Nothing compresses it like real video; use it when no clip is there."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(0)
    side = max(4, height // 6)
    out = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        waves = np.stack([np.sin(6 * x + 0.1 * t), np.cos(5 * y - 0.07 * t), np.sin(4 * (x + y) + 0.05 * t)], -1)
        img = 127.5 + 100 * waves + rng.normal(0, 4, waves.shape)
        x0 = (4 * t) % max(1, width - side)
        img[(height - side) // 2 : (height + side) // 2, x0 : x0 + side] = 240
        out[t] = np.clip(img, 0, 255)
    return out


def fit(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, height, width, 3): scaled (bilinear, antialiased) to cover the
    size, then centre-cropped."""
    t, h, w, _ = frames.shape
    scale = max(height / h, width / w)
    sh, sw = max(height, round(h * scale)), max(width, round(w * scale))
    y0, x0 = (sh - height) // 2, (sw - width) // 2
    out = np.empty((t, height, width, 3), np.uint8)
    for i in range(0, t, 16):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + 16])).permute(0, 3, 1, 2).float()
        if (sh, sw) != (h, w):
            x = F.interpolate(x, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
        x = x[:, :, y0 : y0 + height, x0 : x0 + width].round().clamp(0, 255).byte()
        out[i : i + 16] = x.permute(0, 2, 3, 1).numpy()
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: str, repeat: int) -> tuple[float, object]:
    """(median seconds of `repeat` runs of fn(), device synchronized, after one warm-up; the last result)."""
    result = fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def encode_blocks(model: LoadedModel, header: Header, frames: np.ndarray) -> list[CodedBlock]:
    """What encode_file does between reading frames uint8 (T, H, W, 3) and writing tokens: one
    CodedBlock per block (its reconstruction dropped, as the writer drops it)."""
    coder, coded = BlockCoder(model, header), []
    per_batch = blocks_per_batch(header.width, header.height, header.block_frames)
    for items in batches(group_blocks(frames, header.block_frames), per_batch):
        x = to_model(np.stack([b for b, _ in items]), header.token_stride, model.device)
        codes = model.tokenizer.encode(x)
        for i, (_, real) in enumerate(items):
            block = coder.code(x[i : i + 1], codes[i], real)
            coded.append(replace(block, budget=replace(block.budget, pixels=None)))
    return coded


def decode_blocks(model: LoadedModel, header: Header, states: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """What decode_file does between reading tokens and writing frames. states: per block, what the
    reader gives (indices int64, keep bool, both (rows, cols)). Returns uint8 (blocks * F, H, W, 3)."""
    out, context, index = [], None, 0
    for group in batches(states, blocks_per_batch(header.width, header.height, header.block_frames)):
        indices = torch.from_numpy(np.stack([s[0] for s in group])).to(model.device)
        keep = torch.from_numpy(np.stack([s[1] for s in group])).to(model.device)
        keyframes = [header.is_keyframe(index + j) for j in range(len(group))]
        y, context = model.tokenizer.decode_in_order(indices, keep, keyframes, context)
        out.append(to_frames(y, header.height, header.width))
        index += len(group)
    return np.concatenate(out).reshape(-1, header.height, header.width, 3)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of uint8 frames a against b, (T, H, W, 3) each, from the pooled MSE, a frame at a time."""
    total = sum(float(np.square(x.astype(np.int32) - y).sum()) for x, y in zip(a, b, strict=True))
    return psnr_from_mse(total / a.size)


def run_case(model: LoadedModel, frames: np.ndarray, threshold: float, precision: str, repeat: int) -> dict:
    """Encode and decode `frames` at one threshold and precision: speed, tokens, passes, PSNR, codes."""
    n, h, w = frames.shape[:3]
    header = header_for(model, width=w, height=h, rate=Fraction(30), threshold=threshold)
    bf16 = torch.autocast(torch.device(model.device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), bf16:
        enc_s, coded = timed(lambda: encode_blocks(model, header, frames), model.device, repeat)
        states = [(b.indices, b.budget.keep.cpu().numpy()) for b in coded]
        dec_s, decoded = timed(lambda: decode_blocks(model, header, states), model.device, repeat)
    tokens = sum(int(stored_positions(b.run, b.budget.tile_levels, header.levels).sum()) for b in coded)
    return {
        "threshold": threshold,
        "precision": precision,
        "frames": n,
        "blocks": len(coded),
        "encode_fps": n / enc_s,
        "decode_fps": n / dec_s,
        "tokens_per_frame": tokens / n,
        "full_tokens_per_frame": header.tokens_per_block / header.block_frames,
        "decoder_passes": float(np.mean([b.budget.passes for b in coded])),
        "flagged_blocks": sum(b.budget.missed for b in coded),
        "psnr_db": psnr_db(decoded[:n], frames),
        "codes": np.stack([b.indices for b in coded]),  # dropped before saving
    }


def against_fp32(row: dict, fp32: dict) -> dict:
    """How a bf16 row differs from the float32 row of the same size and threshold. Safe: no more
    PSNR lost than BF16_SAFE_PSNR_DB and no more tokens than BF16_SAFE_TOKENS more; codes that
    differ are reported, not judged (any code decodes, and rounding moves a few across FSQ's steps)."""
    psnr_change = row["psnr_db"] - fp32["psnr_db"]
    token_change = row["tokens_per_frame"] / fp32["tokens_per_frame"] - 1
    return {
        "code_agreement": float((row["codes"] == fp32["codes"]).mean()),
        "psnr_change_db": psnr_change,
        "token_change": token_change,
        "encode_speedup": row["encode_fps"] / fp32["encode_fps"],
        "decode_speedup": row["decode_fps"] / fp32["decode_fps"],
        "safe": psnr_change >= -BF16_SAFE_PSNR_DB and token_change <= BF16_SAFE_TOKENS,
    }


def measure_size(model: LoadedModel, frames: np.ndarray, size: str, args: argparse.Namespace) -> list[dict]:
    """Every threshold and precision at one size; bf16 rows carry their comparison with float32."""
    rows = []
    for threshold in args.thresholds:
        fp32 = None
        for precision in args.precisions:
            row = {"size": size, "height": frames.shape[1], "width": frames.shape[2]}
            row |= run_case(model, frames, threshold, precision, args.repeat)
            if precision == "fp32":
                fp32 = row
            elif fp32 is not None:
                row["vs_fp32"] = against_fp32(row, fp32)
            print(_table_row(row), flush=True)
            rows.append(row)
    return rows


TABLE_HEAD = (
    "| size | threshold | precision | encode fps | decode fps | tokens/frame | passes/block | PSNR dB | vs fp32 |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _table_row(r: dict) -> str:
    vs = r.get("vs_fp32")
    note = f"codes {100 * vs['code_agreement']:.1f}%, {vs['psnr_change_db']:+.3f} dB" if vs else ""
    if vs:
        note += ", safe" if vs["safe"] else ", NOT safe"
    return (
        f"| {r['size']} | {r['threshold']:g} | {r['precision']} | {r['encode_fps']:.1f} | {r['decode_fps']:.1f} | "
        f"{r['tokens_per_frame']:.0f} / {r['full_tokens_per_frame']:.0f} | {r['decoder_passes']:.2f} | "
        f"{r['psnr_db']:.2f} | {note} |"
    )


def describe(device: str, model: LoadedModel) -> dict:
    """Where the figures come from: the device, the versions, and the kernels the encoder used."""
    from vtok import kernels

    backend = kernels.backend_for(torch.empty(1, device=device)).__name__.rsplit(".", 1)[-1]
    is_cuda = device.startswith("cuda")
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if is_cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": model.entry.name,
        "kernels": backend,
        "tf32_convolutions": bool(is_cuda and torch.backends.cudnn.allow_tf32),
        "threads": torch.get_num_threads(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--clip", type=Path, help="video whose first frames are coded (default: a synthetic pattern)")
    p.add_argument("--cache", type=Path, help="frame cache for the clip (default: the training cache)")
    p.add_argument("--sizes", nargs="+", type=_size_arg, default=["256", "720p"], help="N (square), 720p, 1080p or HxW")
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--thresholds", nargs="+", type=float, default=[0.0, 0.003], help="0: the full budget")
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up; the median counts")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_speed.json", help="JSON file for the figures")
    args = p.parse_args(argv)
    if args.frames < 1 or args.repeat < 1:
        p.error("--frames and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from vtok.train.data import default_cache

    model = load(args.model, pick_device(args.device))
    source = clip_frames(args.clip, args.frames, args.cache or default_cache()) if args.clip else None
    meta = describe(model.device, model) | {"source": args.clip.name if args.clip else "synthetic"}
    print(f"{meta['device_name']} ({model.device}), torch {meta['torch']}, kernels {meta['kernels']}, {meta['source']}")
    print(TABLE_HEAD, flush=True)
    rows = []
    for size in args.sizes:
        h, w = parse_size(size)
        frames = fit(source, h, w) if source is not None else synthetic_frames(args.frames, h, w)
        rows += measure_size(model, frames, size, args)
    meta |= {"repeat": args.repeat, "bf16_safe": {"psnr_loss_db": BF16_SAFE_PSNR_DB, "token_rise": BF16_SAFE_TOKENS}}
    save_results(args.out, {**meta, "runs": [{k: v for k, v in r.items() if k != "codes"} for r in rows]})


if __name__ == "__main__":
    main()

"""CPU inference backends side by side: eager, torch.compile and ONNX Runtime, on one thread.

    OMP_NUM_THREADS=1 python benchmarks/backends.py [--rounds 7] [--out benchmarks/results/backends.json]

One process, one thread, the shipped vtok-fsq model, real frames: a batch of 2 blocks of 256x256
centre crops of cotracker_cat.mp4, and 1 block of cotracker_apple.mp4 centre-cropped to 1280x720.
Each backend's encode and decode are timed in interleaved rounds after warm-up; figures are medians
in ms per block. Encode keeps the float64 last projection and the torch FSQ kernel (codes stay
thread-independent); only the encoder body (all but the last layer) and the decoder change backend.
torch.compile decodes under the same bf16 autocast as eager; ONNX Runtime decodes in float32 (its
CPU provider has no bf16 convolutions). Pixel differences are against eager's decode, and in
brackets against eager in float32.
`fsq` is the quantizer alone (vtok.kernels.fsq_indices), to size what fusing it could gain.
A backend whose package is missing, or whose compile or export fails, is reported with its error.
"""

import argparse
import statistics
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import RESULTS, load_clip, save_results

from vtok import kernels
from vtok.media.video import read_frames
from vtok.model.pixels import to_model
from vtok.model.registry import load
from vtok.model.tokenizer import cpu_bf16

CLIPS = Path("/work/shared/data/videos/test")


def inputs() -> dict[str, torch.Tensor]:
    """Pixels (B, 3, 4, H, W): 2 blocks at 256x256 and 1 block at 1280x720."""
    small = load_clip(CLIPS / "cotracker_cat.mp4", 8, 256, 4)
    big = np.stack(list(islice(read_frames(CLIPS / "cotracker_apple.mp4"), 4)))
    x0 = (big.shape[2] - 1280) // 2
    big = np.ascontiguousarray(big[:, :720, x0 : x0 + 1280])
    return {"256": to_model(small.reshape(-1, 4, 256, 256, 3), 4), "720p": to_model(big[None], 4)}


def unfold(x: torch.Tensor) -> torch.Tensor:
    b, _, f, h, w = x.shape
    return F.pixel_unshuffle(x.reshape(b, 3 * f, h, w), 4)


def encoder_with(tok, body):
    """Encode as Tokenizer.encode does, with `body` (pixels unfolded -> features) for encoder[:-1]."""
    last, levels = tok.encoder[-1], tok.quantizer.levels

    def encode(x):
        y = body(unfold(x))
        z = F.conv2d(y.double(), last.weight.double(), last.bias.double()).float()
        return kernels.fsq_indices(z, levels).long()

    return encode


def decoder_with(tok, pixels, bf16: bool):
    """Decode as Tokenizer.decode does (keep=None), with `pixels` (zq -> pixels) for tok.pixels."""

    def decode(indices):
        zq = tok.quantizer.dequantize(indices, dtype=torch.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return pixels(zq).float().clamp_(-1, 1)

    return decode


def compiled(tok, x, idx) -> tuple:
    """torch.compile (inductor) of the encoder body and of tok.pixels; compile time of the first calls."""
    body = torch.compile(tok.encoder[:-1], dynamic=False)
    pixels = torch.compile(tok.pixels, dynamic=False)
    enc, dec = encoder_with(tok, body), decoder_with(tok, pixels, cpu_bf16())
    start = time.perf_counter()
    enc(x), dec(idx)
    return enc, dec, time.perf_counter() - start


def onnx_session(module, example):
    import onnxruntime as ort

    program = torch.onnx.export(module.eval(), (example,), dynamo=True, optimize=True, verbose=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(program.model_proto.SerializeToString(), opts, ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda t: torch.from_numpy(session.run(None, {name: t.contiguous().numpy()})[0])


class _Pixels(torch.nn.Module):
    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def forward(self, zq):
        return self.tok.pixels(zq)


def onnx(tok, x, idx) -> tuple:
    """ONNX Runtime sessions (one export per size, float32) of the encoder body and of tok.pixels."""
    import onnxruntime  # noqa: F401  (fail here, cleanly, when it is missing)

    start = time.perf_counter()
    body = onnx_session(tok.encoder[:-1], unfold(x))
    pixels = onnx_session(_Pixels(tok), tok.quantizer.dequantize(idx, dtype=torch.float32))
    return encoder_with(tok, body), decoder_with(tok, pixels, False), time.perf_counter() - start


def fsq_only(tok, x) -> tuple:
    """The quantizer alone on this input's latent, as an 'encode' with no decode."""
    z = tok.exact_latent(x)
    return lambda _: kernels.fsq_indices(z, tok.quantizer.levels), None, 0.0


def setup(tok, x, idx) -> dict:
    """Backend name -> (encode, decode, setup seconds) or an error line."""
    backends = {"eager": (tok.encode, tok.decode, 0.0), "fsq": fsq_only(tok, x)}
    for name, make in (("compile", compiled), ("onnxruntime", onnx)):
        try:
            backends[name] = make(tok, x, idx)
        except Exception as e:  # noqa: BLE001  (a failed backend is a result, not a crash)
            backends[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    return backends


def measure(tok, x: torch.Tensor, rounds: int) -> dict:
    """Per backend: ms per block (median), ratio vs eager, code agreement, max pixel difference."""
    ref_idx = tok.encode(x)
    ref_px = tok.decode(ref_idx)
    f32_px = tok.pixels(tok.quantizer.dequantize(ref_idx, dtype=torch.float32)).clamp(-1, 1)
    backends = setup(tok, x, ref_idx)
    live = {k: v for k, v in backends.items() if not isinstance(v, str)}
    times = {k: {"encode": [], "decode": []} for k in live}
    outputs = {}
    for r in range(rounds + 1):  # round 0 warms up
        for name, (enc, dec, _) in live.items():
            t0 = time.perf_counter()
            codes = enc(x)
            t1 = time.perf_counter()
            px = dec(ref_idx) if dec else None
            t2 = time.perf_counter()
            if r:
                times[name]["encode"].append(t1 - t0)
                times[name]["decode"].append(t2 - t1)
            outputs[name] = codes, px
    out, blocks = {}, x.shape[0]
    for name, value in backends.items():
        if isinstance(value, str):
            out[name] = {"error": value}
            continue
        codes, px = outputs[name]
        row = {"setup_s": round(value[2], 2)}
        for step in ("encode", "decode") if value[1] else ("encode",):
            ms = statistics.median(times[name][step]) * 1000 / blocks
            eager = statistics.median(times["eager"][step]) * 1000 / blocks
            row[f"{step}_ms"], row[f"{step}_ratio"] = round(ms, 2), round(eager / ms, 3)
        if name != "fsq":
            row["codes_identical"] = float((codes.long() == ref_idx).float().mean())
            row["max_pixel_diff"] = float((px - ref_px).abs().max())
            row["max_pixel_diff_f32"] = float((px - f32_px).abs().max())  # against eager in float32
        out[name] = row
    out["fsq"]["encode_share"] = round(out["fsq"]["encode_ms"] / out["eager"]["encode_ms"], 4)
    return out


def table(results: dict) -> str:
    lines = [
        "| size | backend | encode ms/block | vs eager | decode ms/block | vs eager | identical codes | "
        "max pixel diff (vs f32) | compile/export s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, rows in results["sizes"].items():
        for name, r in rows.items():
            if "error" in r:
                lines.append(f"| {size} | {name} | failed: {r['error']} | | | | | | |")
                continue
            share = r.get("codes_identical")
            same = "" if share is None else f"{'yes' if share == 1 else 'no'} ({share:.4f})"
            diff = f"{r['max_pixel_diff']:.1e} ({r['max_pixel_diff_f32']:.1e})" if "max_pixel_diff" in r else ""
            vs = f"{r['encode_share']:.2%} of it" if name == "fsq" else f"{r['encode_ratio']}x"
            lines.append(
                f"| {size} | {name} | {r['encode_ms']} | {vs} | {r.get('decode_ms', '')} | "
                f"{str(r['decode_ratio']) + 'x' if 'decode_ratio' in r else ''} | {same} | {diff} | {r['setup_s']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after one warm-up round")
    parser.add_argument("--out", type=Path, default=RESULTS / "backends.json", help="JSON file for the figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tok = load("vtok-fsq", "cpu").tokenizer.eval()
    results = {"threads": 1, "rounds": args.rounds, "decoder_bf16": cpu_bf16(), "sizes": {}}
    for size, x in inputs().items():
        with torch.no_grad():
            results["sizes"][size] = measure(tok, x, args.rounds)
    print(table(results))
    save_results(args.out, results)


if __name__ == "__main__":
    main()

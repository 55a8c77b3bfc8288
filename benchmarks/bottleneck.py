"""Where a stride-4 FSQ tokenizer loses its full-budget quality: the rounding, or the output layer.

    python benchmarks/bottleneck.py CLIPS... [--models vtok-fsq PATH#NAME ...] [--frames 32]

On the same 256x256 centre crops as quality.py (first --frames frames), per clip and as a mean:
- PSNR with every token kept, as encoded (rounded latents), and from the latents the quantizer
  would round, unrounded. The gap bounds what finer rounding of the same channels could give a
  decoder that was trained on them (this one never saw unrounded latents).
- the share of the squared error that no decoder body can remove: the decoder's last 1x1
  convolution maps features to a 4x4x4 pixel patch, so every decoded patch lies in the affine
  span of its weights; the part of the source outside that span stays whatever the body does.
"""

import argparse
import math

import torch
import torch.nn.functional as F
from common import add_clip_arguments, find_clips, load_clip, save_results

from vtok.model.pixels import to_model
from vtok.model.registry import load


@torch.inference_mode()
def measure(spec: str, clip_frames) -> dict:
    """Figures of model `spec` over clips given as uint8 (T, H, W, 3) arrays."""
    tokenizer = load(spec).tokenizer
    cfg = tokenizer.config
    if cfg.stride != 4 or cfg.quantizer["kind"] != "fsq":
        raise SystemExit(f"{spec}: only stride-4 FSQ models have this layout")
    quantizer, head = tokenizer.quantizer, tokenizer.decoder.high[-1]
    span, _ = torch.linalg.qr(head.weight[:, :, 0, 0].double())  # (patch values, features), orthonormal
    half = torch.tensor(quantizer.levels).view(1, -1, 1, 1) // 2
    rows = []
    for frames in clip_frames:
        t, h, w, _ = frames.shape
        x = to_model(frames.reshape(t // cfg.frames, cfg.frames, h, w, 3), 4, "cpu")
        err = {"rounded": 0.0, "unrounded": 0.0, "outside": 0.0}
        for i in range(0, len(x), 2):
            block = x[i : i + 2]
            bounded = quantizer.bound(tokenizer.latent(block).float())
            for name, zq in (("rounded", bounded.round() / half), ("unrounded", bounded / half)):
                y = tokenizer.pixels(zq).float().clamp(-1, 1)
                err[name] += (y - block).square().sum().item()
            patches = F.pixel_unshuffle(block.flatten(1, 2), 4).double() - head.bias.double().view(1, -1, 1, 1)
            patches = patches.permute(0, 2, 3, 1).flatten(0, 2)
            err["outside"] += (patches - patches @ span @ span.T).square().sum().item()
        n = x.numel()
        rows.append(
            {
                "psnr_rounded": 10 * math.log10(4 * n / err["rounded"]),
                "psnr_unrounded": 10 * math.log10(4 * n / err["unrounded"]),
                "outside_share": err["outside"] / err["rounded"],
            }
        )
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} | {"clips": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_clip_arguments(parser, "bottleneck.json")
    parser.add_argument("--models", nargs="+", default=["vtok-fsq"], help="model specs")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip, from the start")
    args = parser.parse_args()
    clips = find_clips(args.clips, args.limit)
    clip_frames = [load_clip(c, args.frames, multiple=4) for c in clips]
    results = {}
    print("| model | PSNR rounded | PSNR unrounded | error outside the output layer's span |")
    print("|---|---|---|---|")
    for spec in args.models:
        r = results[spec] = measure(spec, clip_frames)
        print(f"| {spec} | {r['psnr_rounded']:.2f} | {r['psnr_unrounded']:.2f} | {100 * r['outside_share']:.1f}% |")
    save_results(args.out, {"clips": [c.name for c in clips], "frames": args.frames, "models": results})


if __name__ == "__main__":
    main()

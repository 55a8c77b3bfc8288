"""Train one candidate architecture from scratch for a fixed CPU time, for an equal-compute comparison.

    OMP_NUM_THREADS=1 python benchmarks/compare_architectures.py CANDIDATE --minutes 10 [--no-masks] -o DIR

Run two candidates side by side (one thread each: two multi-threaded torch processes run 14x
slower), then compare them on the test clips:

    python benchmarks/quality.py --threshold 0 --models DIR/A#A DIR/B#B --json out.json

Every candidate gets the same sampler (fresh windows from ../shared/data/*/train), batch, crop,
learning rate and held-out windows (8 frames, from the last tenth of each training video; a model
without context codes them as two independent blocks). Candidates: see CANDIDATES.
"""

import argparse
import json
from pathlib import Path

from vtok.model.architectures import ARCHITECTURES, ModelConfig
from vtok.train import TrainConfig, WindowSampler, export, train_model
from vtok.train.data import build_cache, default_cache

_FINE = dict(width=128, latent_width=256, encoder_depth=2, stride=4, levels=4)
CANDIDATES = {
    "s8": ARCHITECTURES["vtok-fsq-s8"],  # the first design: one token per 4x8x8 pixels
    "s4": ModelConfig(**_FINE, decoder_depth=2),  # one token per 4x4x4 pixels, a fourth level
    "s4ctx": ModelConfig(**_FINE, decoder_depth=2, context=True),  # + the previous block as context
    "s4ctx_deep": ModelConfig(**_FINE, decoder_depth=3, context=True),  # + a deeper decoder
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidate", choices=sorted(CANDIDATES))
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-masks", action="store_true", help="train the full budget only")
    p.add_argument(
        "--sources",
        nargs="+",
        type=Path,
        default=[Path("../shared/data/videos/train"), Path("../shared/data/images/train")],
    )
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    config = CANDIDATES[args.candidate]
    videos, images = build_cache(args.sources, default_cache())
    frames = config.frames * (2 if config.context else 1)
    val = WindowSampler(videos, [], frames=8, size=args.crop, seed=1, part="heldout").batch(32)
    sampler = WindowSampler(videos, images, frames=frames, size=args.crop, seed=0)
    name = args.candidate + ("_nomask" if args.no_masks else "")
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    schedule = TrainConfig(
        steps=10**9,
        minutes=args.minutes,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        masks_after=1.0 if args.no_masks else 0.0,  # 1.0: the schedule never reaches the masks
    )
    result = train_model(
        sampler,
        config,
        schedule,
        val=val,
        checkpoint=out / "checkpoint.safetensors",
        log=lambda m: print(m, flush=True),
    )
    export(result, name=name, config=config, out_dir=out, data=[str(s) for s in args.sources])
    print(json.dumps({"name": name, "steps": result.steps, "seconds": round(result.seconds), **result.metrics}))


if __name__ == "__main__":
    main()

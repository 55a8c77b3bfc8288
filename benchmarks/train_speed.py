"""Training throughput of each setting, side by side in one run: samples/s and pixels/s.

    python benchmarks/train_speed.py [--model vtok-fsq] [--batch 8 [16 ...]] [--crop 96] [--steps 12]
        [--threads 1] [--settings fp32 bf16 bf16-channels-last bf16-compile bf16-channels-last-autograd-norm ...]

One step is what `vtok train` does: a forward pass over the window's blocks (two consecutive
blocks for a model with context), the loss, backward and AdamW. Every setting is timed at every
batch size given, in turns (round robin, --rounds times), so a change in machine load hits them all
alike; the table gives the median step time of each, and its pixels/s against the first row. A
sample is one window; pixels count every frame of it.
`autograd-norm` leaves the channel norms' gradient to autograd instead of their written-out one;
`mean-norm` also takes mean(1) over channels instead of a sum times 1/C: the norm as it was.
An LFQ model's step includes its commitment and entropy terms, as in training; `no-entropy` drops
the entropy penalty (`vtok train --entropy-weight 0`).
"""

import argparse
import statistics
import time
import types

import numpy as np
import torch

from vtok.model.architectures import ARCHITECTURES
from vtok.model.layers import ChannelNorm
from vtok.model.pixels import to_model
from vtok.model.tokenizer import Tokenizer
from vtok.train import MaskSampler
from vtok.train.loop import _reconstruction_loss, blocks_forward, quantizer_loss


def _autograd_norm(norm: ChannelNorm, x: torch.Tensor) -> torch.Tensor:
    """The channel norm's formula as it stands, its gradient left to autograd."""
    mean_square = x.square().sum(1, keepdim=True) * (1.0 / x.shape[1])
    return x * torch.rsqrt(mean_square + 1e-6) * norm.weight.to(x.dtype)


def _mean_norm(norm: ChannelNorm, x: torch.Tensor) -> torch.Tensor:
    """The channel norm as it was: mean(1), slow in bf16 on the CPU, and autograd's gradient."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-6) * norm.weight.to(x.dtype)


def _step_fn(name: str, setting: str, batch: int, crop: int):
    config = ARCHITECTURES[name]
    model = Tokenizer(config)
    norm = _autograd_norm if "autograd-norm" in setting else _mean_norm if "mean-norm" in setting else None
    for module in model.modules() if norm else ():
        if isinstance(module, ChannelNorm):
            module.forward = types.MethodType(norm, module)
    if "channels-last" in setting:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(blocks_forward) if "compile" in setting else blocks_forward
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bf = config.frames
    f = bf * (2 if config.context else 1)
    rng = np.random.default_rng(0)
    x = to_model(rng.integers(0, 256, (batch, f, crop, crop, 3), dtype=np.uint8))
    masks = MaskSampler(crop // config.stride, crop // config.stride, "cpu", config.levels)
    gen = torch.Generator().manual_seed(0)
    bf16 = setting.startswith("bf16")

    def step() -> None:
        keeps = [masks(batch, gen) for _ in range(f // bf)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ys, z = forward(model, x, keeps)
            loss, _ = _reconstruction_loss("mse", ys, x)
            loss = loss + quantizer_loss(model, z, 0.0 if "no-entropy" in setting else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vtok-fsq")
    p.add_argument("--batch", type=int, nargs="+", default=[8], help="windows per step; several are timed in turns")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--steps", type=int, default=4, help="timed steps per setting per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--settings",
        nargs="*",
        default=[
            "fp32",
            "bf16",
            "bf16-channels-last",
            "bf16-compile",
            "bf16-channels-last-autograd-norm",
            "bf16-channels-last-mean-norm",
        ],
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    several = len(args.batch) > 1
    fns = {
        f"{s}, batch {b}" if several else s: (_step_fn(args.model, s, b, args.crop), b)
        for s in args.settings
        for b in args.batch
    }
    times: dict[str, list[float]] = {row: [] for row in fns}
    for (step, _), _ in fns.values():  # warm-up, compilation included
        for _ in range(2):
            step()
    for _ in range(args.rounds):
        for row, ((step, _), _) in fns.items():
            for _ in range(args.steps):
                t = time.perf_counter()
                step()
                times[row].append(time.perf_counter() - t)
    batches = ", ".join(map(str, args.batch))
    print(f"{args.model}, batch {batches}, crop {args.crop}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"| setting | step s (median) | samples/s | Mpixels/s | vs {next(iter(fns))} |")
    print("|---|---|---|---|---|")
    base = None
    for row, ts in times.items():
        med = statistics.median(ts)
        (_, frames), batch = fns[row]
        pixels = batch * frames * args.crop**2 / med  # per second
        base = base or pixels
        print(f"| {row} | {med:.3f} | {batch / med:.1f} | {pixels / 1e6:.2f} | {pixels / base:.2f}x |")


if __name__ == "__main__":
    main()

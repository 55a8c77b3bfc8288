"""GPU kernel bandwidth: each vtok kernel against torch eager, torch.compile and a device copy.

    python benchmarks/kernels.py [--size 720p|256] [--batch 8]

Bytes counted are the fewest a kernel must move: its inputs read once and its outputs written once
(FSQ/LFQ: the float32 latent in, the uint16 indices out; RLT: block and run start in, the static map
out, plus the moved patches written back, counted as the whole start for an all-moved block).
Times are medians of CUDA-event-timed runs after warm-up. Needs CUDA and CuPy.
"""

import argparse
import statistics
import sys

import torch


def _time(fn, repeat: int = 50) -> float:
    """Median milliseconds of fn() between CUDA events, after warm-up."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["256", "720p"], default="720p")
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/kernels.py needs CUDA", file=sys.stderr)
        sys.exit(1)
    from vtok.kernels import cupy_impl, torch_ref

    h, w = (256, 256) if args.size == "256" else (720, 1280)
    b = args.batch
    levels = (8, 8, 8, 5, 5, 5)
    z6 = torch.randn(b, 6, h // 8, w // 8, device="cuda") * 2
    z16 = torch.randn(b, 16, h // 8, w // 8, device="cuda")
    block = torch.rand(3, 4, h, w, device="cuda") * 2 - 1
    start = block + (torch.rand_like(block) - 0.5) * 0.02

    big = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    copy_ms = _time(lambda: big.clone())
    copy_gbs = 2 * big.numel() / copy_ms / 1e6

    compiled_fsq = torch.compile(lambda z: torch_ref.fsq_indices(z, levels))
    compiled_lfq = torch.compile(torch_ref.lfq_indices)
    compiled_rlt = torch.compile(lambda x, s: torch_ref.rlt_update(x, s, 6 / 255))
    rows = [
        (
            "fsq",
            z6.numel() * 4 + b * (h // 8) * (w // 8) * 2,
            lambda: cupy_impl.fsq_indices(z6, levels),
            lambda: torch_ref.fsq_indices(z6, levels),
            lambda: compiled_fsq(z6),
        ),
        (
            "lfq",
            z16.numel() * 4 + b * (h // 8) * (w // 8) * 2,
            lambda: cupy_impl.lfq_indices(z16),
            lambda: torch_ref.lfq_indices(z16),
            lambda: compiled_lfq(z16),
        ),
        (
            "rlt",
            2 * block.numel() * 4,
            lambda: cupy_impl.rlt_update(block, start.clone(), 6 / 255),
            lambda: torch_ref.rlt_update(block, start.clone(), 6 / 255),
            lambda: compiled_rlt(block, start.clone()),
        ),
    ]
    clone_ms = _time(lambda: start.clone())  # the rlt rows clone `start` so every run sees the same input
    print(f"{torch.cuda.get_device_name()}: device copy {copy_gbs:.0f} GB/s; {args.size}, batch {b}")
    print("| kernel | bytes | cupy GB/s | % of copy | torch eager GB/s | torch.compile GB/s | cupy vs eager |")
    print("|---|---|---|---|---|---|---|")
    for name, nbytes, cupy_fn, eager_fn, compiled_fn in rows:
        extra = clone_ms if name == "rlt" else 0.0
        ms = [max(_time(f) - extra, 1e-6) for f in (cupy_fn, eager_fn, compiled_fn)]
        gbs = [nbytes / m / 1e6 for m in ms]
        print(
            f"| {name} | {nbytes / 1e6:.1f} MB | {gbs[0]:.0f} | {100 * gbs[0] / copy_gbs:.0f}% | {gbs[1]:.0f} | "
            f"{gbs[2]:.0f} | {ms[1] / ms[0]:.1f}x |"
        )


if __name__ == "__main__":
    main()

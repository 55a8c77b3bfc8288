"""GPU kernel bandwidth: each vtok kernel against torch eager, torch.compile and a device copy.

    python benchmarks/kernels.py [--size 720p|256] [--batch 8] [--out benchmarks/results/kernels.json]

Bytes counted are the fewest a kernel must move: its inputs read once and its outputs written once
(FSQ/LFQ: the float32 latent in, the uint16 indices out; RLT: block and run start in, the static map
out, plus the moved patches written back, counted as the whole start for an all-moved block).
Times are medians of CUDA-event-timed runs after warm-up. Needs CUDA and CuPy. The inputs are
random tensors; no clips are read.
"""

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from common import RESULTS, save_results


def cuda_ms(fn, repeat: int = 50) -> float:
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


class KernelCase(NamedTuple):
    """One kernel: the bytes it must move, its three versions, and setup work each run also does."""

    name: str
    nbytes: int
    cupy: Callable
    eager: Callable
    compiled: Callable
    overhead: Callable | None = None  # timed alone and subtracted


def device_copy_gbs() -> float:
    """GB/s of cloning 256 MiB on the GPU (read once, written once): the ceiling for a kernel."""
    big = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    return 2 * big.numel() / cuda_ms(lambda: big.clone()) / 1e6


def kernel_cases(h: int, w: int, b: int) -> list[KernelCase]:
    """The fsq, lfq and rlt kernels on random inputs of frame size h x w, batch b."""
    from vtok.kernels import cupy_impl, torch_ref

    levels = (8, 8, 8, 5, 5, 5)
    z6 = torch.randn(b, 6, h // 8, w // 8, device="cuda") * 2
    z16 = torch.randn(b, 16, h // 8, w // 8, device="cuda")
    block = torch.rand(3, 4, h, w, device="cuda") * 2 - 1
    start = block + (torch.rand_like(block) - 0.5) * 0.02
    compiled_fsq = torch.compile(lambda z: torch_ref.fsq_indices(z, levels))
    compiled_lfq = torch.compile(torch_ref.lfq_indices)
    compiled_rlt = torch.compile(lambda x, s: torch_ref.rlt_update(x, s, 6 / 255))
    return [
        KernelCase(
            "fsq",
            z6.numel() * 4 + b * (h // 8) * (w // 8) * 2,
            lambda: cupy_impl.fsq_indices(z6, levels),
            lambda: torch_ref.fsq_indices(z6, levels),
            lambda: compiled_fsq(z6),
        ),
        KernelCase(
            "lfq",
            z16.numel() * 4 + b * (h // 8) * (w // 8) * 2,
            lambda: cupy_impl.lfq_indices(z16),
            lambda: torch_ref.lfq_indices(z16),
            lambda: compiled_lfq(z16),
        ),
        KernelCase(
            "rlt",  # each run clones `start`, so that every run sees the same input
            2 * block.numel() * 4,
            lambda: cupy_impl.rlt_update(block, start.clone(), 6 / 255),
            lambda: torch_ref.rlt_update(block, start.clone(), 6 / 255),
            lambda: compiled_rlt(block, start.clone()),
            lambda: start.clone(),
        ),
    ]


def measure(case: KernelCase, copy_gbs: float) -> dict:
    """GB/s of one kernel's three versions, against the device copy. A version that fails (say,
    torch.compile without a working compiler) gets None and its error; the others still count."""
    extra = cuda_ms(case.overhead) if case.overhead else 0.0
    row: dict = {"kernel": case.name, "bytes": case.nbytes}
    for version, fn in (("cupy", case.cupy), ("eager", case.eager), ("compiled", case.compiled)):
        try:
            row[f"{version}_gbs"] = case.nbytes / max(cuda_ms(fn) - extra, 1e-6) / 1e6
        except Exception as e:  # recorded, and the next version is still measured
            row[f"{version}_gbs"], row[f"{version}_error"] = None, f"{type(e).__name__}: {e}"[:300]
    cupy, eager = row["cupy_gbs"], row["eager_gbs"]
    row["share_of_copy"] = cupy / copy_gbs if cupy else None
    row["cupy_vs_eager"] = cupy / eager if cupy and eager else None
    return row


def _cell(value: float | None, fmt: str, unit: str = "") -> str:
    return "failed" if value is None else format(value, fmt) + unit


def _table_row(r: dict) -> str:
    """One kernel's row of the printed table; a failed version reads 'failed'."""
    share = r["share_of_copy"] and 100 * r["share_of_copy"]
    cells = [f"{r['bytes'] / 1e6:.1f} MB", _cell(r["cupy_gbs"], ".0f"), _cell(share, ".0f", "%")]
    cells += [_cell(r["eager_gbs"], ".0f"), _cell(r["compiled_gbs"], ".0f"), _cell(r["cupy_vs_eager"], ".1f", "x")]
    return f"| {r['kernel']} | " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["256", "720p"], default="720p")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=RESULTS / "kernels.json", help="JSON file for the figures")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/kernels.py needs CUDA", file=sys.stderr)
        sys.exit(1)
    h, w = (256, 256) if args.size == "256" else (720, 1280)
    copy_gbs = device_copy_gbs()
    rows = [measure(case, copy_gbs) for case in kernel_cases(h, w, args.batch)]
    device = torch.cuda.get_device_name()
    print(f"{device}: device copy {copy_gbs:.0f} GB/s; {args.size}, batch {args.batch}")
    print("| kernel | bytes | cupy GB/s | % of copy | torch eager GB/s | torch.compile GB/s | cupy vs eager |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(_table_row(r))
    meta = {"device": device, "copy_gbs": copy_gbs, "size": args.size, "batch": args.batch}
    save_results(args.out, {**meta, "kernels": rows})


if __name__ == "__main__":
    main()

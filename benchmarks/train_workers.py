"""Training throughput of whole `vtok train` runs by threads and worker processes: samples/s.

    python benchmarks/train_workers.py SOURCES... [--model vtok-fsq] [--batch 8] [--crop 96]
        [--minutes 1.5] [--rounds 2] [--settings 1:1 2:1 2:2]

A setting T:W runs `vtok train --workers W` with OMP_NUM_THREADS=T, which the workers share (so
2:2 is two processes of one thread each). Each run trains from scratch for --minutes on fresh
windows from SOURCES; its rate is the steps and seconds its manifest records (training only: the
frame cache is filled before the first run). Settings run in turns, --rounds times, so that a change
in machine load hits them all alike; the table gives the median of each. A sample is one window
of one worker; pixels count every frame of it. Run it on an idle machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vtok.model.tokenizer import ARCHITECTURES


def _run(sources: list[str], setting: str, args: argparse.Namespace, out: Path) -> float:
    """Windows per second of one `vtok train` run at `setting` (T:W)."""
    threads, workers = setting.split(":")
    command = [
        *(sys.executable, "-m", "vtok", "train", *sources, "--model", args.model, "--device", "cpu"),
        *("--batch", str(args.batch), "--crop", str(args.crop), "--minutes", str(args.minutes)),
        *("--workers", workers, "--lr", "3e-4", "--force", "-o", str(out)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    training = json.loads((out / "manifest.json").read_text())["models"][args.model]["training"]
    return training["steps"] * args.batch * int(workers) / training["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+")
    p.add_argument("--model", default="vtok-fsq", choices=list(ARCHITECTURES))
    p.add_argument("--batch", type=int, default=8, help="windows per step, per worker")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--minutes", type=float, default=1.5, help="of training per run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=["1:1", "2:1", "2:2"], help="THREADS:WORKERS")
    args = p.parse_args()
    rates: dict[str, list[float]] = {s: [] for s in args.settings}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for s in args.settings:
                rates[s].append(_run(args.sources, s, args, Path(tmp)))
                print(f"round {r + 1}: {s} {rates[s][-1]:.1f} samples/s", file=sys.stderr)
    frames = ARCHITECTURES[args.model].frames * (2 if ARCHITECTURES[args.model].context else 1)
    run = f"{args.minutes} min a run, median of {args.rounds}"
    print(f"{args.model}, batch {args.batch} per worker, crop {args.crop}, {run}")
    print("| threads | workers | samples/s | Mpixels/s | vs first |")
    print("|---|---|---|---|---|")
    base = statistics.median(rates[args.settings[0]])
    for s, rs in rates.items():
        med = statistics.median(rs)
        threads, workers = s.split(":")
        print(f"| {threads} | {workers} | {med:.1f} | {med * frames * args.crop**2 / 1e6:.2f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()

"""Draw PSNR against tokens per frame from `quality.py` JSON files, one curve per model.

    python benchmarks/plot_quality.py a.json [b.json ...] [--out benchmarks/results/quality.png] [--title TEXT]

The README's figure: python benchmarks/plot_quality.py benchmarks/results/quality.json
benchmarks/results/quality_first_design.json --title "PSNR against tokens per frame, 18 test clips,
256x256, first 32 frames"
"""

import argparse
import json
from pathlib import Path

from common import RESULTS

from vtok.files import atomic_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-o", "--out", type=Path, default=RESULTS / "quality.png")
    p.add_argument("--title", default="PSNR against tokens per frame (256x256 centre crops, mean over clips)")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = set()
    for path in args.files:
        for spec, r in json.loads(path.read_text()).items():
            if spec in drawn:  # the same model measured in two files
                continue
            drawn.add(spec)
            points = sorted((int(k), v) for k, v in r["psnr_by_tokens_per_frame"].items())
            ax.plot(*zip(*points, strict=True), marker="o", label=spec.rpartition("#")[2] or spec)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(args.title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=110)


if __name__ == "__main__":
    main()

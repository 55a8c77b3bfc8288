"""Rewrite README.md's result tables from the JSON in benchmarks/results/.

    python benchmarks/tables.py            # rewrite the tables in README.md
    python benchmarks/tables.py --check    # exit 1 if README.md is out of date

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in README.md; NAME picks
its data: quality (quality.json, then quality_first_design.json), threshold (quality.json),
budget (budget.json), bench (bench/results.json) and architectures (architectures.json). The
README shows chosen rows of budget and bench (BUDGET_ROWS, BENCH_ROWS); the JSON holds them all.
"""

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKED = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)

# (config in budget.json, its label in the README)
BUDGET_ROWS = [
    ("fixed", "fixed full budget"),
    ("T=0.003", "T=0.003"),
    ("T=0.003 +RLT", "T=0.003 + RLT"),
    ("T=0.01", "T=0.01"),
    ("T=0.01 +RLT", "T=0.01 + RLT"),
]
# (codec, its settings in the order shown); bench/results.csv has every setting
BENCH_ROWS = [
    ("vtok-fsq", ["T=0.003", "T=0.01", "T=0.02", "T=0.05", "full", "fixed=75%", "fixed=50%", "fixed=25%"]),
    ("vtok-lfq", ["T=0.01", "T=0.05", "full", "fixed=50%"]),
    ("libx264", ["crf=51", "crf=44", "crf=37"]),
    ("libx265", ["crf=39"]),
    ("libsvtav1", ["crf=58"]),
]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; an empty cell is written as `| |`."""

    def line(cells: list[str]) -> str:
        return "|" + "".join(f" {cell} |" if cell else " |" for cell in cells)

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def read_json(path: Path) -> dict:
    """The JSON at `path`, or a one-line error naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: missing (README.md has a table for it)") from None


def by_budget(models: dict) -> list[str]:
    """Model names, largest full budget (newest design) first, then by name."""
    return sorted(models, key=lambda m: (-max(map(int, models[m]["psnr_by_tokens_per_frame"])), m))


def curve_table(files: list[Path]) -> str:
    """PSNR by tokens per frame and perplexity; a model in a later file replaces one of the same name.
    The best PSNR of each file's rows is bold."""
    models, source = {}, {}
    for i, path in enumerate(files):
        for name, result in read_json(path).items():
            models[name], source[name] = result, i
    budgets = sorted({int(k) for r in models.values() for k in r["psnr_by_tokens_per_frame"]})
    best = {}
    for name, r in models.items():
        best[source[name]] = max(best.get(source[name], 0.0), *r["psnr_by_tokens_per_frame"].values())
    rows = []
    for name in by_budget(models):
        curve = models[name]["psnr_by_tokens_per_frame"]
        cells = [curve.get(str(b)) for b in budgets]
        cells = ["" if v is None else f"**{v:.2f}**" if v == best[source[name]] else f"{v:.2f}" for v in cells]
        rows.append([name, *cells, f"{models[name]['perplexity']:.0f} of {models[name]['codebook_size']}"])
    return markdown(["model", *map(str, budgets), "perplexity"], rows)


def threshold_table(results: Path) -> str:
    """The threshold search with the real codec, per model of quality.json."""
    models = read_json(results / "quality.json")
    rows = []
    for name in by_budget(models):
        if t := models[name].get("threshold"):
            rows.append(
                [
                    name,
                    f"{100 * t['blocks_meeting_T']:.1f}%",
                    f"{t['tokens_per_frame']:.0f}",
                    f"{t['psnr']:.2f}",
                    f"{t['encode_fps']:.1f}",
                    f"{t['decode_fps']:.1f}",
                ]
            )
    header = ["model", "blocks meeting T", "tokens per frame", "PSNR dB", "encode fps", "decode fps"]
    return markdown(header, rows)


def budget_table(results: Path) -> str:
    """Elastic budgets and runs: the BUDGET_ROWS of budget.json's summary."""
    summary = read_json(results / "budget.json")["summary"]
    rows = []
    for config, label in BUDGET_ROWS:
        if (s := summary.get(config)) is None:
            print(f"budget.json has no {config!r}; its row is left out", file=sys.stderr)
            continue
        rows.append(
            [
                label,
                f"{s['tokens_per_frame']:.0f}",
                f"{s['savings']:.2f}x",
                f"{s['savings_static']:.2f}x",
                f"{100 * s['flagged']:.0f}%",
                str(s["violations"]),
                f"{s['psnr_db']:.2f}",
                f"{s['encode_fps']:.1f}",
            ]
        )
    header = ["config", "tokens/frame", "savings", "savings, static cameras", "flagged", "violations", "PSNR dB"]
    return markdown([*header, "encode fps"], rows)


def setting_label(setting: str) -> str:
    """`full` -> `full budget`, `fixed=75%` -> `fixed 75%`; others as they are."""
    return "full budget" if setting == "full" else setting.replace("fixed=", "fixed ")


def bench_row(codec: str, setting: str, runs: list[dict]) -> list[str]:
    """One codec setting over clips: means of quality and size, medians of speed."""

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in runs)

    tokens = "" if runs[0]["tokens_per_frame"] is None else f"{mean('tokens_per_frame'):.0f}"
    return [
        codec,
        setting_label(setting),
        f"{mean('bits_per_pixel'):.4f}",
        f"{mean('psnr_db'):.2f}",
        f"{mean('ssim'):.3f}",
        tokens,
        f"{statistics.median(r['encode_fps'] for r in runs):.1f}",
        f"{statistics.median(r['decode_fps'] for r in runs):.1f}",
    ]


def bench_table(results: Path) -> str:
    """vtok beside classical codecs: the BENCH_ROWS of `vtok bench`'s results.json."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for run in read_json(results / "bench" / "results.json")["runs"]:
        runs.setdefault((run["codec"], run["setting"]), []).append(run)
    rows = []
    for codec, settings in BENCH_ROWS:
        for setting in settings:
            if (codec, setting) in runs:
                rows.append(bench_row(codec, setting, runs[(codec, setting)]))
            else:
                print(f"bench/results.json has no {codec} {setting}; its row is left out", file=sys.stderr)
    header = ["codec", "setting", "bits/pixel", "PSNR dB", "SSIM", "tokens/frame", "encode fps", "decode fps"]
    return markdown(header, rows)


TABLES: dict[str, Callable[[Path], str]] = {
    "quality": lambda results: curve_table([results / "quality.json", results / "quality_first_design.json"]),
    "threshold": threshold_table,
    "budget": budget_table,
    "bench": bench_table,
    "architectures": lambda results: curve_table([results / "architectures.json"]),
}


def render(readme: str, results: Path) -> str:
    """`readme` with every marked table rewritten from the JSON in `results`."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"README.md marks an unknown table {name!r}; known: {', '.join(TABLES)}")
        return f"{match[1]}\n{TABLES[name](results)}\n\n{match[4]}"

    return MARKED.sub(fill, readme)


def stale_tables(readme: str, results: Path) -> list[str]:
    """Names of the marked tables in `readme` that differ from what the JSON gives."""
    fresh = {m["name"]: m["body"] for m in MARKED.finditer(render(readme, results))}
    return [m["name"] for m in MARKED.finditer(readme) if fresh[m["name"]] != m["body"]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if README.md is out of date")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    readme = args.readme.read_text()
    if not MARKED.search(readme):
        raise SystemExit(f"{args.readme}: no <!-- table:NAME --> markers")
    stale = stale_tables(readme, args.results)
    if args.check:
        if stale:
            print(f"{args.readme}: out of date ({', '.join(stale)}); run python benchmarks/tables.py", file=sys.stderr)
        return 1 if stale else 0
    if stale:
        from vtok.files import write_text

        write_text(args.readme, render(readme, args.results))
    print(f"{args.readme}: {len(stale)} table(s) rewritten" + (f" ({', '.join(stale)})" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

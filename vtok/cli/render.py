"""How results look on the terminal: plain aligned text, and Rich tables for `bench`."""

import numpy as np

__all__ = [
    "aligned",
    "inspect_rows",
    "model_rows",
    "models_text",
    "plural",
    "sparkline",
    "folder_summary",
    "failure_lines",
]


def aligned(rows: list[tuple[str, str]]) -> str:
    """'key  value' lines, the values aligned in one column."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def plural(n: int, word: str) -> str:
    """'1 frame', '2 frames', '1,024 tokens'."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def sparkline(values: list[float], top: float, width: int = 64) -> str:
    """A one-line chart of `values` scaled to `top`, squeezed to at most `width` columns (each the mean)."""
    if not values:
        return ""
    bars = " ▁▂▃▄▅▆▇█"
    groups = np.array_split(np.asarray(values, float), min(width, len(values)))
    return "".join(bars[min(8, round(8 * g.mean() / top))] if top > 0 else bars[0] for g in groups)


def _quantizer(q: dict) -> str:
    return f"FSQ levels {tuple(q['levels'])}" if q["kind"] == "fsq" else f"LFQ {q['bits']} bits"


def _blocks(s: dict) -> str:
    keyframes = f"a keyframe every {s['keyframe_interval']} blocks, " if s["keyframe_interval"] else ""
    runs = f"under {s['rlt_threshold'] * 255:.1f}/255" if s["rlt_threshold"] > 0 else "off"
    return (
        f"{plural(s['blocks'], 'block')} of {plural(s['block_frames'], 'frame')}, grid {s['grid'][0]}x{s['grid'][1]} "
        f"(one token per {s['token_stride']}x{s['token_stride']} pixels), {keyframes}"
        f"threshold {s['threshold']:g}, runs {runs}"
    )


def _saved(s: dict) -> str:
    levels = "/".join(s["tile_levels"]) + ": " + "/".join(str(v) for v in s["tile_levels"].values())
    return (
        f"{s['savings']:.2f}x fewer than the full budget: runs {100 * s['rlt_share']:.1f}%, "
        f"elastic budget {100 * s['elastic_share']:.1f}% (tiles at levels {levels})"
    )


def _figure(value: float, spec: str = ".1f") -> str:
    """`value` formatted by `spec`, or to two significant digits under 1, so that a small figure
    (a quarter token per frame, a ratio under 1:1) never reads as 0."""
    return format(value, spec) if value == 0 or abs(value) >= 1 else f"{value:.2g}"


def _per_frame_chart(s: dict) -> str:
    """Tokens per frame block by block, each against its own full budget (a short last block's is
    higher), and the full budget."""
    tpf, values = s["tokens_per_frame"], s["tokens_per_frame_by_block"]
    budgets = [tpf["full_budget"]] * len(values)
    if budgets:
        budgets[-1] = tpf["full_budget_last_block"]
    shares = [v / b if b else 0.0 for v, b in zip(values, budgets, strict=True)]
    last = ""
    if values and tpf["full_budget_last_block"] != tpf["full_budget"]:
        frames = s["frames"] - (s["blocks"] - 1) * s["block_frames"]
        last = f"; {_figure(tpf['full_budget_last_block'], ',.0f')} in the last block, of {plural(frames, 'frame')}"
    return sparkline(shares, 1.0) + f" (full budget {_figure(tpf['full_budget'], ',.0f')}{last})"


def _flagged(flagged: list[int], shown: int = 20) -> str:
    """How many blocks miss the threshold, and the first `shown` of them."""
    verb = "misses" if len(flagged) == 1 else "miss"
    text = f"{plural(len(flagged), 'block')} {verb} the threshold even at the full budget"
    if flagged:
        text += ": " + ", ".join(str(b) for b in flagged[:shown])
    if len(flagged) > shown:
        text += f" … and {len(flagged) - shown} more"
    return text


def inspect_rows(s: dict) -> list[tuple[str, str]]:
    """The rows `vtok inspect` prints, from the dict of vtok.codec.inspect.inspect_file."""
    tpf = s["tokens_per_frame"]
    audio = f" (video only; audio {s['audio_bytes']:,} bytes)" if s["audio"] else ""
    return [
        ("file", f"{s['path']} (format version {s['format_version']}, {s['file_bytes']:,} bytes, "
                 f"{s['chunks']} block chunks, checksums {s['checksums']})"),
        ("model", f"{s['model']} (sha256 {s['model_sha256'][:16]}…), {_quantizer(s['quantizer'])}, "
                  f"{s['codebook_size']:,} codes"),
        ("video", f"{s['width']}x{s['height']}, {plural(s['frames'], 'frame')} at {s['rate']} fps ({s['fps']}), "
                  f"source {s['source']}" + (", with audio" if s["audio"] else "")
                  + (f", shown turned {s['rotation']}° clockwise" if s["rotation"] else "")),
        ("blocks", _blocks(s)),
        ("tokens", f"{s['tokens']:,} of a full budget of {s['full_budget_tokens']:,}; per frame min "
                   f"{_figure(tpf['min'])}, median {_figure(tpf['median'])}, max {_figure(tpf['max'])}"),
        ("saved", _saved(s)),
        ("per frame", _per_frame_chart(s)),
        ("size", f"{s['bits_per_pixel']:.4f} bits per pixel, {_figure(s['compression_ratio'], '.0f')}:1 "
                 f"against raw RGB{audio}"),
        ("flagged", _flagged(s["flagged_blocks"])),
    ] + [("note", note) for note in s["source_notes"]]  # fmt: skip


def model_rows(entries: list, default: str) -> list[dict]:
    """The JSON of `vtok models --json`: one dict per ModelEntry."""
    return [
        {
            "name": e.name,
            "default": e.name == default,
            "origin": e.origin,
            "file": str(e.path),
            "sha256": e.sha256,
            "quantizer": e.config.quantizer,
            "metrics": e.metrics,
        }
        for e in entries
    ]


def _quality(metrics: dict) -> str:
    by_budget = metrics.get("test_psnr_256x256_by_tokens_per_frame_db") or {}
    parts = []
    if by_budget:
        top = max(by_budget, key=int)
        parts.append(f"{by_budget[top]:.2f} dB at {top} tokens per frame on the test clips")
    at_t = metrics.get("test_threshold_0.003")
    if at_t:
        parts.append(f"{100 * at_t['blocks_meeting_T']:.0f}% of blocks meet T=0.003")
    if not parts and "heldout_windows_psnr_db" in metrics:
        parts.append(f"{metrics['heldout_windows_psnr_db']:.2f} dB on held-out training windows")
    return ", ".join(parts) or "not measured"


def models_text(entries: list, default: str) -> str:
    """`vtok models`: one paragraph per ModelEntry, the default marked."""
    paragraphs = []
    for e in entries:
        stride = e.config.stride
        rows = [
            ("quantizer", f"{_quantizer(e.config.quantizer)}, one token per {stride}x{stride} pixels"),
            ("quality", _quality(e.metrics)),
            ("file", f"{e.path} ({e.origin}, sha256 {e.sha256[:16]}…)"),
        ]
        title = e.name + (" (default)" if e.name == default else "")
        paragraphs.append(title + "\n" + "\n".join("  " + line for line in aligned(rows).splitlines()))
    return "\n\n".join(paragraphs)


def bench_report(runs: list, *, frames: int, size: int) -> None:
    """Print `vtok bench`'s tables: means per codec and setting, BD-rates, and elastic gains."""
    from rich.console import Console
    from rich.table import Table

    from vtok.bench import bd_rates, elastic_gain, summary

    crop = f"{size}x{size} centre crops" if size else "native size"
    table = Table(
        title=f"{len({r.clip for r in runs})} clips, {frames} frames, {crop}",
        caption="means over clips; frames per second are medians",
    )
    for col in ("codec", "setting", "bits/pixel", "PSNR dB", "SSIM", "tokens/frame", "enc fps", "dec fps"):
        table.add_column(col, justify="left" if col in ("codec", "setting") else "right")
    for row in summary(runs):
        tokens = row["tokens_per_frame"]
        table.add_row(
            row["codec"],
            row["setting"],
            f"{row['bits_per_pixel']:.4f}",
            f"{row['psnr_db']:.2f}",
            f"{row['ssim']:.3f}",
            f"{tokens:.0f}" if tokens is not None else "",
            f"{row['encode_fps']:.1f}",
            f"{row['decode_fps']:.1f}",
        )
    bd = Table(title="BD-rate against libx264 (negative: fewer bits at equal PSNR)")
    for col, justify in (("codec", "left"), ("BD-rate", "right"), ("clips", "right")):
        bd.add_column(col, justify=justify)
    for name, (value, clips) in bd_rates(runs).items():
        bd.add_row(name, f"{value:+.1f}%" if value is not None else "no PSNR overlap", str(clips))
    console = Console()
    console.print(table)
    console.print(bd)
    for name in sorted({r.codec for r in runs if r.tokens_per_frame is not None}):
        gain, clips, ahead = elastic_gain(runs, name)
        if gain is not None:
            print(
                f"{name}: elastic budgets against fixed ones at equal tokens per frame: {gain:+.2f} dB "
                f"(mean over {clips} clips; elastic ahead on {ahead})"
            )


def folder_summary(r) -> str:
    """One line for a vtok.folder.FolderResult: what was done, and where the manifest is."""
    rate = f" ({r.frames / r.seconds:.1f} frames/s)" if r.frames and r.seconds else ""
    parts = [f"{r.ok} encoded", f"{r.current} already done", f"{r.failed} failed"] + (
        [f"{r.skipped} skipped"] if r.skipped else []
    )
    return (
        f"{r.out_dir}: {r.found} files: {', '.join(parts)}; {r.frames:,} frames, {r.tokens:,} tokens "
        f"in {r.seconds:.1f} s{rate}; manifest {r.manifest}"
    )


def failure_lines(records: list, limit: int = 20) -> list[str]:
    """A line per file that failed or was skipped, at most `limit` (the manifest has them all)."""
    bad = [r for r in records if r.status != "ok"]
    lines = [f"vtok: {r.status}: {r.source}: {r.error}" for r in bad[:limit]]
    return lines + ([f"vtok: ... and {len(bad) - limit} more"] if len(bad) > limit else [])

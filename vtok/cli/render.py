"""How results look on the terminal: plain aligned text, and Rich tables for `bench`."""

import numpy as np

__all__ = ["aligned", "inspect_rows", "model_rows", "sparkline", "folder_summary", "failure_lines"]


def aligned(rows: list[tuple[str, str]]) -> str:
    """'key  value' lines, the values aligned in one column."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


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
        f"{s['blocks']} of {s['block_frames']} frames, grid {s['grid'][0]}x{s['grid'][1]} "
        f"(one token per {s['token_stride']}x{s['token_stride']} pixels), {keyframes}"
        f"threshold {s['threshold']:g}, runs {runs}"
    )


def _saved(s: dict) -> str:
    levels = "/".join(s["tile_levels"]) + ": " + "/".join(str(v) for v in s["tile_levels"].values())
    return (
        f"{s['savings']:.2f}x fewer than the full budget: runs {100 * s['rlt_share']:.1f}%, "
        f"elastic budget {100 * s['elastic_share']:.1f}% (tiles at levels {levels})"
    )


def inspect_rows(s: dict) -> list[tuple[str, str]]:
    """The rows `vtok inspect` prints, from the dict of vtok.codec.inspect.inspect_file."""
    tpf = s["tokens_per_frame"]
    audio = f" (video only; audio {s['audio_bytes']:,} bytes)" if s["audio"] else ""
    flagged = s["flagged_blocks"]
    return [
        ("file", f"{s['path']} ({s['file_bytes']:,} bytes, {s['chunks']} block chunks, checksums {s['checksums']})"),
        ("model", f"{s['model']} (sha256 {s['model_sha256'][:16]}…), {_quantizer(s['quantizer'])}, "
                  f"{s['codebook_size']:,} codes"),
        ("video", f"{s['width']}x{s['height']}, {s['frames']} frames at {s['rate']} fps ({s['fps']}), "
                  f"source {s['source']}" + (", with audio" if s["audio"] else "")
                  + (f", shown turned {s['rotation']}° clockwise" if s["rotation"] else "")),
        ("blocks", _blocks(s)),
        ("tokens", f"{s['tokens']:,} of a full budget of {s['full_budget_tokens']:,}; per frame min "
                   f"{tpf['min']:.1f}, median {tpf['median']:.1f}, max {tpf['max']:.1f}"),
        ("saved", _saved(s)),
        ("per frame", sparkline(s["tokens_per_frame_by_block"], tpf["full_budget"])
                      + f" (full budget {tpf['full_budget']:.0f})"),
        ("size", f"{s['bits_per_pixel']:.4f} bits per pixel, {s['compression_ratio']:.0f}:1 against raw RGB{audio}"),
        ("flagged", f"{len(flagged)} blocks miss the threshold even at the full budget"
                    + (f": {flagged[:20]}" if flagged else "")),
    ] + [("note", note) for note in s["source_notes"]]  # fmt: skip


def model_rows(entries: list) -> list[dict]:
    """The JSON of `vtok models --json`: one dict per ModelEntry."""
    return [
        {
            "name": e.name,
            "origin": e.origin,
            "file": str(e.path),
            "sha256": e.sha256,
            "quantizer": e.config.quantizer,
            "metrics": e.metrics,
        }
        for e in entries
    ]


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

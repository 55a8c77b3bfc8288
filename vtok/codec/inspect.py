"""What a `.vtok` file holds, in figures: `vtok inspect`. Reads every chunk, so every checksum is verified."""

from pathlib import Path

import numpy as np

from vtok.extras import require
from vtok.files import atomic_path, check_output
from vtok.format import VtokReader

__all__ = ["inspect_file", "verify_file", "plot_tokens"]


def inspect_file(*, path: Path, plot: Path | None = None, force: bool = False) -> dict:
    """Summarise the `.vtok` file at `path` as a JSON-ready dict (key `tokens`: total stored tokens).

    Tokens per frame are a block's tokens over the frames it holds, so a short last block, which
    codes a whole grid for fewer frames, has its own, higher full budget (`full_budget_last_block`).

    Savings are counted against the fixed full budget (one token per position in every block):
    `rlt_share` is the share of it that runs made unnecessary, `elastic_share` the share the
    per-tile budgets left out, and `savings` the full budget over the tokens stored.
    Bits per pixel and the compression ratio count the file without its audio chunk.
    Raises ContainerError if any part of the file is truncated or fails its checksum.
    plot: also write a PNG of tokens per frame there (needs matplotlib; an existing file only with `force`).
    """
    path = Path(path)
    if plot is not None:
        require("matplotlib")  # before reading: fail fast
        check_output(path, Path(plot), force)
    with VtokReader(path) as reader:
        h, format_version = reader.header, reader.format_version
        codes, frames, runs, flagged, level_counts = _tally(reader)
        audio = reader.audio()
        chunks = reader.chunks
    size = path.stat().st_size
    audio_bytes = len(audio) if audio is not None else 0
    video_bytes = size - audio_bytes  # the rate of the tokens, comparable with video codecs
    pixels = h.width * h.height * max(h.frames, 1)
    full = h.tokens_per_block * h.blocks
    stored, rlt_saved = int(sum(codes)), int(sum(runs))
    stats = (
        {"path": str(path), "format_version": format_version}
        | _header_figures(h)
        | {
            "tokens": stored,
            "full_budget_tokens": int(full),
            "savings": full / max(stored, 1),
            "rlt_share": rlt_saved / full if full else 0.0,
            "elastic_share": (full - rlt_saved - stored) / full if full else 0.0,
            "tile_levels": {str(k): int(v) for k, v in enumerate(level_counts)},
        }
        | _per_frame_figures(h, codes, frames)
        | {
            "flagged_blocks": flagged,
            "file_bytes": size,
            "audio_bytes": audio_bytes,
            "bits_per_pixel": video_bytes * 8 / pixels,
            "compression_ratio": pixels * 3 / video_bytes,
            "audio": audio is not None,
            "chunks": chunks,
            "checksums": "ok",
        }
    )
    if plot is not None:
        plot_tokens(stats, Path(plot))
    return stats


def verify_file(path: Path) -> int:
    """Check every chunk's checksum in the `.vtok` file at `path`, and that its seek index agrees with
    its block chunks, decompressing no block; returns the number of chunks.

    Raises ContainerError naming the first chunk that fails (its type and offset; for a block
    chunk, its index entry and first block).
    """
    with VtokReader(Path(path)) as reader:
        return reader.verify()


def _tally(reader: VtokReader) -> tuple[list[int], list[int], list[int], list[int], np.ndarray]:
    """Per block: codes stored, frames, positions in runs; the flagged blocks; tiles at each level."""
    h = reader.header
    codes, frames, runs, flagged, level_counts = [], [], [], [], np.zeros(h.levels, np.int64)
    for block in reader.blocks():
        codes.append(block.codes.size)
        frames.append(block.frames)
        runs.append(int(block.run_mask.sum()))
        level_counts += np.bincount(block.tile_levels.reshape(-1), minlength=h.levels)
        if block.missed_threshold:
            flagged.append(block.index)
    return codes, frames, runs, flagged, level_counts


def _per_frame_figures(h, codes: list[int], frames: list[int]) -> dict:
    """Tokens per frame: each block's tokens over the frames it holds; min, median and max over
    frames; the full budget of a whole block, and of the last (higher where it is short: it codes a
    whole grid for fewer frames)."""
    per_block = np.array(codes, float) / np.maximum(frames, 1)
    per_frame = np.repeat(per_block, frames)
    return {
        "tokens_per_frame": {
            "min": float(per_frame.min()) if per_frame.size else 0.0,
            "median": float(np.median(per_frame)) if per_frame.size else 0.0,
            "max": float(per_frame.max()) if per_frame.size else 0.0,
            "full_budget": h.tokens_per_block / h.block_frames,
            "full_budget_last_block": h.tokens_per_block / (frames[-1] if frames else h.block_frames),
        },
        "tokens_per_frame_by_block": [round(v, 2) for v in per_block.tolist()],
    }


def _header_figures(h) -> dict:
    """What the header alone says."""
    return {
        "model": h.model,
        "model_sha256": h.model_sha256,
        "quantizer": h.quantizer,
        "codebook_size": h.codebook_size,
        "width": h.width,
        "height": h.height,
        "frames": h.frames,
        "rate": f"{h.rate.numerator}/{h.rate.denominator}",
        "fps": round(float(h.rate), 4),
        "block_frames": h.block_frames,
        "blocks": h.blocks,
        "grid": list(h.grid),
        "token_stride": h.token_stride,
        "keyframe_interval": h.keyframe_interval,
        "threshold": h.threshold,
        "rlt_threshold": h.rlt_threshold,
        "source": h.source,
        "source_duration_s": h.source_duration_s,
        "rotation": h.rotation,
        "source_notes": list(h.source_notes),
    }


def plot_tokens(stats: dict, out: Path) -> None:
    """Write a PNG of tokens per frame, block by block, against the full budget, flagged blocks marked."""
    require("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    per_block = stats["tokens_per_frame_by_block"]
    t = np.arange(len(per_block)) * stats["block_frames"]
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=120)
    ax.step(t, per_block, where="post", label="tokens per frame")
    tpf = stats["tokens_per_frame"]
    ax.axhline(tpf["full_budget"], color="grey", ls="--", label="full budget")
    if per_block and tpf["full_budget_last_block"] != tpf["full_budget"]:  # a short last block
        ax.hlines(tpf["full_budget_last_block"], t[-1], stats["frames"], color="grey", ls="--")
    for b in stats["flagged_blocks"]:
        ax.axvspan(b * stats["block_frames"], (b + 1) * stats["block_frames"], color="red", alpha=0.2)
    ax.set_xlabel("frame")
    ax.set_ylabel("tokens per frame")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"{Path(stats['path']).name}: {stats['savings']:.2f}x fewer tokens than the full budget "
        f"(runs {100 * stats['rlt_share']:.0f}%, elastic {100 * stats['elastic_share']:.0f}%)"
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp)
    plt.close(fig)

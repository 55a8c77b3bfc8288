"""What a `.vtok` file holds, in figures: `vtok inspect`. Reads every chunk, so every checksum is verified."""

from pathlib import Path

import numpy as np

from vtok.container import VtokReader

__all__ = ["inspect_file"]


def inspect_file(*, path: Path) -> dict:
    """Summarise the `.vtok` file at `path` as a JSON-ready dict (key `tokens`: total stored tokens).

    Bits per pixel and the compression ratio count the file without its audio chunk.

    Raises ContainerError if any part of the file is truncated or fails its checksum.
    """
    path = Path(path)
    with VtokReader(path) as reader:
        h = reader.header
        codes, frames, runs, flagged = [], [], 0, []
        for block in reader.blocks():
            codes.append(block.codes.size)
            frames.append(block.frames)
            runs += int(block.run_mask.sum())
            if block.missed_threshold:
                flagged.append(block.index)
        audio = reader.audio()
        chunks = reader.chunks
    size = path.stat().st_size
    audio_bytes = len(audio) if audio is not None else 0
    video_bytes = size - audio_bytes  # the rate of the tokens, comparable with video codecs
    per_frame = np.repeat(np.array(codes, float) / np.maximum(frames, 1), frames)
    pixels = h.width * h.height * max(h.frames, 1)
    full = h.tokens_per_block * h.blocks
    return {
        "path": str(path),
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
        "threshold": h.threshold,
        "source": h.source,
        "source_duration_s": h.source_duration_s,
        "tokens": int(sum(codes)),
        "full_budget_tokens": int(full),
        "tokens_per_frame": {
            "min": float(per_frame.min()) if per_frame.size else 0.0,
            "median": float(np.median(per_frame)) if per_frame.size else 0.0,
            "max": float(per_frame.max()) if per_frame.size else 0.0,
        },
        "run_share": runs / full if full else 0.0,
        "flagged_blocks": flagged,
        "file_bytes": size,
        "audio_bytes": audio_bytes,
        "bits_per_pixel": video_bytes * 8 / pixels,
        "compression_ratio": pixels * 3 / video_bytes,
        "audio": audio is not None,
        "chunks": chunks,
        "checksums": "ok",
    }

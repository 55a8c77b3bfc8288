"""Decode a `.vtok` file back to a video (the format its extension names), with the source's audio
if it had any and its rotation as a display matrix."""

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vtok.codec.batching import batches, blocks_per_batch, prefetch
from vtok.codec.encode import Progress
from vtok.errors import ModelError, UsageError, Warn, default_warn
from vtok.files import atomic_path, check_output
from vtok.format import Header, VtokReader
from vtok.model.pixels import to_frames
from vtok.model.registry import LoadedModel, load, pick_device, resolve

__all__ = ["decode_file", "DecodeResult", "load_for_file"]


@dataclass(frozen=True)
class DecodeResult:
    path: Path
    frames: int


def load_for_file(header: Header, model: "str | LoadedModel | None" = None, device: str = "auto") -> LoadedModel:
    """The model that made a file, loaded: the one its header names, or `model`. Its weights must be
    the ones that made the file (sha256), and its token layout the file's."""
    try:
        loaded = load(model or resolve(header.model), device)
    except ModelError as e:
        if model:
            raise
        raise ModelError(
            f"file was made by model {header.model!r}, which is not available here ({e})", option="model"
        ) from None
    entry, cfg = loaded.entry, loaded.tokenizer.config
    if entry.sha256 != header.model_sha256:
        raise ModelError(
            f"file was made by {header.model} with weights sha256 {header.model_sha256[:12]}…, but "
            f"{entry.name} here has {entry.sha256[:12]}…: re-encode the source, or give the weights that made it",
            option="model",
        )
    if (cfg.stride, cfg.levels) != (header.token_stride, header.levels) or (
        cfg.context and not header.keyframe_interval
    ):
        raise ModelError(f"the file's token layout does not match model {entry.name}'s", option="model")
    return loaded


def decode_file(
    *,
    src: Path,
    dst: Path,
    model: "str | LoadedModel | None" = None,
    crf: int = 18,
    lossless: bool = False,
    force: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> DecodeResult:
    """Decode the `.vtok` file `src` to the video `dst`, in the format its extension names: .mp4, .mov
    or .mkv with H.264, .webm with VP9 (vtok.media.video.OUTPUT_FORMATS). crf: 0..51 on H.264's
    scale; lossless: the decoded RGB exactly. warn: called with one sentence for what the format
    made change (audio re-encoded); default a VtokWarning.
    """
    from vtok.media.video import VideoWriter, output_format

    src, dst, warn = Path(src), Path(dst), warn or default_warn
    if not 0 <= crf <= 51:
        raise UsageError(f"crf must be in 0..51, not {crf}", option="crf")
    fmt = output_format(dst)  # an extension we cannot write fails before any work
    pick_device(device)  # so does a bad device name
    with VtokReader(src) as reader:
        h = reader.header
        check_output(src, dst, force)
        loaded = load_for_file(h, model, device)
        with (
            atomic_path(dst) as tmp,
            VideoWriter(tmp, width=h.width, height=h.height, rate=h.rate, crf=crf, lossless=lossless,
                        audio=reader.audio(), container_format=fmt, rotation=h.rotation) as out,
            torch.inference_mode(),
            closing(prefetch(decoded_blocks(reader, loaded), depth=1)) as clips,  # beside the writer, 1 ahead
        ):  # fmt: skip
            written = 0
            for clip in clips:
                for frame in clip:
                    out.write(frame)
                written += len(clip)
                if progress:
                    progress(len(clip), h.frames)
    for note in out.notes:
        warn(f"{dst}: {note}")
    return DecodeResult(path=dst, frames=written)


def decoded_blocks(reader: VtokReader, model: LoadedModel):
    """Every block of `reader` decoded, in order: uint8 (frames, H, W, 3), the real frames only."""
    h, tokenizer = reader.header, model.tokenizer
    index, context = 0, None
    for states in batches(reader.states(), blocks_per_batch(h.width, h.height, h.block_frames)):
        indices = torch.from_numpy(np.stack([s.indices for s in states])).to(model.device)
        keep = torch.from_numpy(np.stack([s.keep for s in states])).to(model.device)
        keyframes = [h.is_keyframe(index + j) for j in range(len(states))]
        y, context = tokenizer.decode_in_order(indices, keep, keyframes, context)
        for clip in to_frames(y, h.height, h.width, overwrite=True):  # context_of copied what it needs
            yield clip[: h.block_length(index)]
            index += 1
        del y  # before the next batch is decoded, not after: 45 MB at 720p

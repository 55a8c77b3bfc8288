"""Encode a video file to `.vtok`, and decode a `.vtok` back to mp4: the two halves of the codec.

Frames stream through in batches of a few blocks, so memory stays bounded whatever the video's
length. Frames are padded (edge pixels repeated) to a multiple of the token stride and cropped back
on decode; the last block is padded by repeating its last frame, and the true count is recorded.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from vtok.budget.elastic import choose_budget
from vtok.budget.runs import DEFAULT_THRESHOLD as RLT_DEFAULT
from vtok.budget.runs import RunTracker
from vtok.errors import MediaError, ModelError
from vtok.files import check_output
from vtok.format import FLAG_MISSED_THRESHOLD, Header, VtokReader, VtokWriter, stored_positions
from vtok.model.pixels import to_frames, to_model
from vtok.model.registry import DEFAULT_MODEL, ModelEntry, load_model, resolve

__all__ = ["encode_file", "decode_file", "EncodeResult", "DecodeResult"]

T = TypeVar("T")
Progress = Callable[[int], None]  # called with the number of frames just finished

# Pixels per forward pass, to bound memory: about four 256x256 blocks, or one 720p block.
_BATCH_PIXELS = 4 * 1280 * 736
KEYFRAME_INTERVAL = 8  # blocks (32 frames) between keyframes, for models with context


@dataclass(frozen=True)
class EncodeResult:
    path: Path
    frames: int
    blocks: int
    tokens: int
    full_tokens: int  # what the fixed full budget would store
    bytes: int
    flagged_blocks: int
    decoder_passes: float  # mean per block, spent by the budget search


@dataclass(frozen=True)
class DecodeResult:
    path: Path
    frames: int


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but CUDA is not available")
    return device


def _blocks(frames: Iterator[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Group frames uint8 (H, W, 3) into blocks uint8 (size, H, W, 3); pad the last by repetition.

    Yields (block, number of real frames in it).
    """
    buffer: list[np.ndarray] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == size:
            yield np.stack(buffer), size
            buffer = []
    if buffer:
        real = len(buffer)
        yield np.stack(buffer + [buffer[-1]] * (size - real)), real


def _batches(items: Iterator[T], n: int) -> Iterator[list[T]]:
    """Group items into lists of n (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _batch_blocks(width: int, height: int, frames_per_block: int) -> int:
    return max(1, _BATCH_PIXELS // (frames_per_block * width * height))


def encode_file(
    *,
    src: Path,
    dst: Path,
    model: str = DEFAULT_MODEL,
    threshold: float = 0.0,
    rlt_threshold: float = RLT_DEFAULT,
    force: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
) -> EncodeResult:
    """Tokenize the video `src` into the `.vtok` file `dst`.

    threshold: MSE per block with pixels on [-1, 1] (0.003 is about 31.2 dB); each block gets the
      fewest tokens that meet it (vtok.budget.elastic), and blocks that miss it even at the full budget are
      flagged. 0 means the full budget everywhere.
    rlt_threshold: mean absolute difference (on [0, 1] pixels) under which a 16x16 patch continues
      its run and stores no tokens (vtok.budget.runs); 0 turns run-length tokenization off.
    """
    from vtok.media.video import extract_audio, probe, read_frames

    src, dst = Path(src), Path(dst)
    if threshold < 0 or rlt_threshold < 0:
        raise ValueError("thresholds must be >= 0")
    info = probe(src)
    check_output(src, dst, force)
    device = _pick_device(device)
    entry = resolve(model)
    net = load_model(entry, device)
    cfg = net.config
    header = Header(
        model=entry.name,
        model_sha256=entry.sha256,
        model_config=cfg.to_dict(),
        quantizer=dict(cfg.quantizer),
        codebook_size=net.codebook_size,
        block_frames=cfg.frames,
        width=info.width,
        height=info.height,
        frames=0,
        rate=info.rate,
        threshold=threshold,
        rlt_threshold=rlt_threshold,
        source=src.name,
        source_duration_s=info.duration_s,
        token_stride=cfg.stride,
        levels=cfg.levels,
        keyframe_interval=KEYFRAME_INTERVAL if cfg.context else 0,
    )
    frames = tokens = flagged = passes = blocks = 0
    batch = _batch_blocks(info.width, info.height, cfg.frames)
    tracker = RunTracker(rlt_threshold, cfg.stride)
    prev_indices = prev_keep = context = None
    with VtokWriter(dst, header) as writer, torch.inference_mode():
        for items in _batches(_blocks(read_frames(src), cfg.frames), batch):
            real = [n for _, n in items]
            x = to_model(np.stack([b for b, _ in items]), cfg.stride, device)
            codes = net.encode(x)
            for i, n in enumerate(real):
                if header.is_keyframe(blocks):
                    tracker.restart()
                    context = None
                run = tracker.update(x[i])
                if prev_indices is None:
                    prev_indices, prev_keep = codes[i], torch.zeros_like(run)
                indices = torch.where(run, prev_indices, codes[i])
                budget = choose_budget(
                    net,
                    x[i : i + 1],
                    indices[None],
                    run,
                    run & prev_keep,
                    frames=n,
                    height=info.height,
                    width=info.width,
                    threshold=threshold,
                    context=context,
                )
                if budget.pixels is not None:
                    context = net.context_of(budget.pixels)  # what the decoder will have for the next block
                run_np = run.cpu().numpy()
                writer.write_block(
                    indices.cpu().numpy(),
                    frames=n,
                    run_mask=run_np,
                    tile_levels=budget.tile_levels,
                    flags=FLAG_MISSED_THRESHOLD if budget.missed else 0,
                )
                prev_indices, prev_keep = indices, budget.keep
                tokens += int(stored_positions(run_np, budget.tile_levels, cfg.levels).sum())
                flagged += budget.missed
                passes += budget.passes
                blocks += 1
            frames += sum(real)
            if progress:
                progress(sum(real))
        if frames == 0:
            raise MediaError(f"{src}: has no frames")
        if info.has_audio:
            audio = extract_audio(src)
            if audio:
                writer.add_audio(audio)
        writer.close(frames=frames)
    return EncodeResult(
        path=dst,
        frames=frames,
        blocks=blocks,
        tokens=tokens,
        full_tokens=blocks * header.tokens_per_block,
        bytes=dst.stat().st_size,
        flagged_blocks=flagged,
        decoder_passes=passes / max(blocks, 1),
    )


def model_for(header: Header, spec: str | None) -> ModelEntry:
    """The model that made a file: by its header name, or `spec`; its sha256 must match the header's."""
    try:
        entry = resolve(spec or header.model)
    except ModelError:
        if spec:
            raise
        raise ModelError(
            f"file was made by model {header.model!r}, which is not available here (pass --model to point at it)"
        ) from None
    if entry.sha256 != header.model_sha256:
        raise ModelError(
            f"file was made by {header.model} with weights sha256 {header.model_sha256[:12]}…, "
            f"but {entry.name} here has {entry.sha256[:12]}… (re-encode the source, or pass --model "
            "with the weights that made it)"
        )
    return entry


def decode_file(
    *,
    src: Path,
    dst: Path,
    model: str | None = None,
    crf: int = 18,
    lossless: bool = False,
    force: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
) -> DecodeResult:
    """Decode the `.vtok` file `src` to an H.264 mp4 `dst`, with the source's audio if it had any."""
    from vtok.media.video import VideoWriter

    src, dst = Path(src), Path(dst)
    if not 0 <= crf <= 51:
        raise ValueError("crf must be in 0..51")
    with VtokReader(src) as reader:
        h = reader.header
        check_output(src, dst, force)
        device = _pick_device(device)
        net = load_model(model_for(h, model), device)
        cfg = net.config
        if (cfg.stride, cfg.levels, cfg.context) != (h.token_stride, h.levels, h.keyframe_interval > 0):
            raise ModelError(f"{src}: its token layout does not match model {h.model}'s")
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
        written = 0
        try:
            with (
                VideoWriter(
                    tmp,
                    width=h.width,
                    height=h.height,
                    rate=h.rate,
                    crf=crf,
                    lossless=lossless,
                    audio=reader.audio(),
                ) as out,
                torch.inference_mode(),
            ):
                batch = _batch_blocks(h.width, h.height, h.block_frames)
                block, context = 0, None
                for states in _batches(reader.states(), batch):
                    indices = torch.from_numpy(np.stack([s.indices for s in states])).to(device)
                    keep = torch.from_numpy(np.stack([s.keep for s in states])).to(device)
                    if net.config.context:  # each block needs the one before it, decoded
                        ys = []
                        for j in range(len(states)):
                            if h.is_keyframe(block + j):
                                context = None
                            ys.append(net.decode(indices[j : j + 1], keep[j : j + 1], context))
                            context = net.context_of(ys[-1])
                        y = torch.cat(ys)
                    else:
                        y = net.decode(indices, keep)
                    frames = to_frames(y, h.height, h.width)
                    for clip in frames:
                        real = min(h.block_frames, h.frames - block * h.block_frames)
                        for frame in clip[:real]:
                            out.write(frame)
                        written += real
                        block += 1
                        if progress:
                            progress(real)
            tmp.replace(dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return DecodeResult(path=dst, frames=written)

"""Encode a video file to `.vtok`: frames stream through in batches of blocks, so memory stays
bounded whatever the video's length.

Frames are padded (edge pixels repeated) to a multiple of the token stride and cropped back on
decode; the last block is padded by repeating its last frame, and the true count is recorded.
"""

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vtok.budget.elastic import Budget, choose_budget
from vtok.budget.predict import ErrorPredictor
from vtok.budget.runs import DEFAULT_THRESHOLD as RLT_DEFAULT
from vtok.budget.runs import RunTracker
from vtok.codec.batching import batches, blocks_per_batch, group_blocks, prefetch
from vtok.errors import MediaError, UsageError, Warn, default_warn
from vtok.files import check_output
from vtok.format import FLAG_MISSED_THRESHOLD, Header, VtokWriter
from vtok.model.pixels import to_model
from vtok.model.refine import check_refine, refined_encode
from vtok.model.registry import DEFAULT_MODEL, LoadedModel, load, pick_device

__all__ = [
    "encode_file",
    "check_thresholds",
    "EncodeResult",
    "BlockCoder",
    "CodedBlock",
    "header_for",
    "Progress",
    "KEYFRAME_INTERVAL",
    "RUN_KEYFRAME_INTERVAL",
]

Progress = Callable[[int, "int | None"], None]  # (frames just finished, total expected or None)
KEYFRAME_INTERVAL = 8  # blocks (32 frames) between keyframes, for models with context
# blocks (128 frames) between keyframes for models without context: runs restart there, so a random
# read never walks back further than one chunk, at a small cost in tokens on static footage
RUN_KEYFRAME_INTERVAL = 32


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
class CodedBlock:
    """One block, ready to write: indices int64 (rows, cols) with runs resolved, run bool (rows, cols)."""

    indices: np.ndarray
    run: np.ndarray
    budget: Budget
    frames: int


class BlockCoder:
    """The coding state that runs from block to block, in one place: the run starts (vtok.budget.runs),
    the previous block's codes and keep mask (runs reuse them), and, for a model with context, the
    last frame the decoder will have seen. Keyframes restart all of it, but for the threshold
    search's error predictor, which lives only in the encoder."""

    def __init__(self, model: LoadedModel, header: Header, *, predict: bool = True):
        """predict: start each block's threshold search from guessed errors (vtok.budget.predict);
        False measures levels in every block, as before the predictor (for benchmarks)."""
        self.tokenizer, self.header = model.tokenizer, header
        self.tracker = RunTracker(header.rlt_threshold, header.token_stride)
        self.index = 0
        self.prev_indices: torch.Tensor | None = None
        self.prev_keep: torch.Tensor | None = None
        self.context: torch.Tensor | None = None
        searching = predict and header.threshold > 0
        self.predictor = ErrorPredictor(header.levels, header.token_stride) if searching else None

    def code(self, x: torch.Tensor, codes: torch.Tensor, frames: int) -> CodedBlock:
        """x: float (1, 3, F, H', W') in [-1, 1]; codes: int64 (rows, cols), its encoder output;
        frames: how many of the F frames are real."""
        h = self.header
        if h.is_keyframe(self.index):
            self.tracker.restart()
            self.context = None
        run = self.tracker.update(x[0])
        if self.prev_indices is None:
            self.prev_indices, self.prev_keep = codes, torch.zeros_like(run)
        indices = torch.where(run, self.prev_indices, codes)
        budget = choose_budget(
            self.tokenizer,
            x,
            indices[None],
            run,
            run & self.prev_keep,
            frames=frames,
            height=h.height,
            width=h.width,
            threshold=h.threshold,
            context=self.context,
            predictor=self.predictor,
        )
        if budget.pixels is not None:
            self.context = self.tokenizer.context_of(budget.pixels)  # what the decoder will have next
        self.prev_indices, self.prev_keep = indices, budget.keep
        self.index += 1
        return CodedBlock(indices.cpu().numpy(), run.cpu().numpy(), budget, frames)


def header_for(model: LoadedModel, *, width: int, height: int, rate, source: str = "", duration_s: float = 0.0,
               threshold: float = 0.0, rlt_threshold: float = RLT_DEFAULT) -> Header:  # fmt: skip
    """The header of a file that `model` will fill; its frame count is set when the file is closed."""
    cfg = model.tokenizer.config
    return Header(
        model=model.entry.name,
        model_sha256=model.entry.sha256,
        model_config=cfg.to_dict(),
        quantizer=dict(cfg.quantizer),
        codebook_size=model.tokenizer.codebook_size,
        block_frames=cfg.frames,
        width=width,
        height=height,
        frames=0,
        rate=rate,
        threshold=threshold,
        rlt_threshold=rlt_threshold,
        source=source,
        source_duration_s=duration_s,
        token_stride=cfg.stride,
        levels=cfg.levels,
        keyframe_interval=KEYFRAME_INTERVAL if cfg.context else RUN_KEYFRAME_INTERVAL,
    )


@dataclass
class _Tally:
    frames: int = 0
    blocks: int = 0
    tokens: int = 0
    flagged: int = 0
    passes: int = 0

    def add(self, block: CodedBlock, tokens: int) -> None:
        self.frames += block.frames
        self.blocks += 1
        self.tokens += tokens
        self.flagged += block.budget.missed
        self.passes += block.budget.passes


def check_thresholds(**thresholds: float) -> None:
    """Refuse a negative threshold, naming its option (threshold=..., rlt_threshold=...)."""
    for name, value in thresholds.items():
        if value < 0:
            raise UsageError(f"{name.replace('_', ' ')} must be >= 0, not {value:g}", option=name)


def _code_blocks(frames: Iterator[np.ndarray], model: LoadedModel, writer: VtokWriter, progress: Progress | None,
                 total: int | None, refine: int) -> _Tally:  # fmt: skip
    """Code `frames`, uint8 (H, W, 3) each, block by block into `writer`; `total`: frames expected, if
    known; `refine`: steps of vtok.model.refine per batch of blocks."""
    header = writer.header
    coder, tally = BlockCoder(model, header), _Tally()
    per_batch = blocks_per_batch(header.width, header.height, header.block_frames)
    # the source decodes in a thread, a batch ahead of the model; closing() stops it on an error
    with closing(prefetch(batches(group_blocks(frames, header.block_frames), per_batch))) as ahead:
        for items in ahead:
            x = to_model(np.stack([b for b, _ in items]), header.token_stride, model.device)
            codes = refined_encode(model.tokenizer, x, refine)
            for i, (_, real) in enumerate(items):
                block = coder.code(x[i : i + 1], codes[i], real)
                flags = FLAG_MISSED_THRESHOLD if block.budget.missed else 0
                tokens = writer.write_block(block.indices, frames=real, run_mask=block.run,
                                            tile_levels=block.budget.tile_levels, flags=flags)  # fmt: skip
                tally.add(block, tokens)
            if progress:
                progress(sum(real for _, real in items), total)
    return tally


def encode_file(
    *,
    src: Path,
    dst: Path,
    model: "str | LoadedModel" = DEFAULT_MODEL,
    threshold: float = 0.0,
    rlt_threshold: float = RLT_DEFAULT,
    refine: int = 0,
    force: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
    warn: Warn | None = None,
) -> EncodeResult:
    """Tokenize the video `src` into the `.vtok` file `dst`.

    model: a spec (vtok.model.registry), or a LoadedModel to reuse (then `device` is its own).
    threshold: MSE per block with pixels on [-1, 1] (0.003 is about 31.2 dB); each block gets the
      fewest tokens that meet it (vtok.budget.elastic), and blocks that miss it even at the full
      budget are flagged. 0 means the full budget everywhere.
    rlt_threshold: mean absolute difference (on [0, 1] pixels) under which a 16x16 patch continues
      its run and stores no tokens (vtok.budget.runs); 0 turns run-length tokenization off.
    refine: gradient steps on each block's latent against the decoder (vtok.model.refine); 0: none.
    warn: called with one sentence for each thing changed on the way (vtok.errors.Warn): a source
      read differently from what it states (also noted in the header's source_notes), or an output
      name that suggests another format. Default: a VtokWarning.
    """
    from vtok.media.video import SourceReport, extract_audio, probe, read_frames

    src, dst, warn = Path(src), Path(dst), warn or default_warn
    check_thresholds(threshold=threshold, rlt_threshold=rlt_threshold)
    check_refine(refine)
    pick_device(device)  # a bad device name fails before any work
    info = probe(src)
    check_output(src, dst, force)
    if dst.suffix and dst.suffix.lower() != ".vtok":
        warn(f"{dst}: written as a .vtok file whatever its extension (decode it to get a video)")
    loaded = load(model, device)
    header = header_for(loaded, width=info.width, height=info.height, rate=info.rate, source=src.name,
                        duration_s=info.duration_s, threshold=threshold, rlt_threshold=rlt_threshold)  # fmt: skip
    report = SourceReport()
    with VtokWriter(dst, header) as writer, torch.inference_mode():
        tally = _code_blocks(read_frames(src, report), loaded, writer, progress, info.frames_hint or None, refine)
        if tally.frames == 0:
            raise MediaError(f"{src}: has no frames")
        for note in report.notes:
            warn(f"{src}: {note}")
        audio = extract_audio(src) if info.has_audio else None
        if audio:
            writer.add_audio(audio)
        writer.close(frames=tally.frames, rotation=report.rotation, source_notes=tuple(report.notes))
    return EncodeResult(
        path=dst,
        frames=tally.frames,
        blocks=tally.blocks,
        tokens=tally.tokens,
        full_tokens=tally.blocks * header.tokens_per_block,
        bytes=dst.stat().st_size,
        flagged_blocks=tally.flagged,
        decoder_passes=tally.passes / max(tally.blocks, 1),
    )

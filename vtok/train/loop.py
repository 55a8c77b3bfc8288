"""The training loop: `train_model` draws windows from a sampler, codes and decodes them, and steps
AdamW on the reconstruction error; `evaluate` gives the held-out figures it logs.

A model with temporal context trains on pairs of consecutive blocks: the first is decoded as a
keyframe at a random budget, and its last decoded frame is the context of the second, so the
model learns to live with a poorer context as well as a good one.
"""

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vtok.errors import VtokError
from vtok.format.layout import prefix_keep
from vtok.metrics import MODEL_PEAK, psnr_from_mse
from vtok.model.architectures import ModelConfig
from vtok.model.pixels import to_model
from vtok.model.tokenizer import Tokenizer
from vtok.train.checkpoint import Progress, TrainResult, float_state, load_weights, lr_scales, restore, save_checkpoint
from vtok.train.config import DEFAULT_ENTROPY_WEIGHT, TrainConfig
from vtok.train.masks import MaskSampler

__all__ = ["blocks_forward", "quantizer_loss", "train_model", "evaluate"]

LOG_EVERY = 30  # seconds between progress lines
CHECKPOINT_EVERY = 60  # seconds between checkpoints
WARMUP_STEPS = 200  # fresh Adam moments: the learning rate ramps up over these
VAL_WINDOWS = 32  # held-out windows drawn from the sampler when none are given
LOG_MSE_FLOOR = 1e-4  # log-mse loss: errors under about 40 dB stop pulling harder


def blocks_forward(
    model: Tokenizer, x: torch.Tensor, keeps: list[torch.Tensor | None]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Code and decode the consecutive blocks of x float (B, 3, n*F, S, S) in [-1, 1], each with its
    keep mask bool (B, h, w) or None (the full budget).

    The first block is a keyframe; with context, each later block sees the last frame the previous
    one decoded to (no gradient flows back through it, as none would at run time). Returns the
    reconstructions, each (B, 3, F, S, S), and the latents of every block (n*B, D, h, w).
    """
    f = model.config.frames
    n = x.shape[2] // f
    blocks = torch.cat([x[:, :, i * f : (i + 1) * f] for i in range(n)])
    z = model.latent(blocks).float()
    zq, _ = model.quantizer(z)
    out, context = [], None
    for i, part in enumerate(zq.chunk(n)):
        y = model.pixels(part, keeps[i], context)
        out.append(y)
        context = model.context_of(y)
    return out, z


def _blocks_per_window(frames: int, config: ModelConfig) -> int:
    """Blocks in a window of `frames` frames; a model with context needs at least two."""
    n = frames // config.frames
    if frames % config.frames or n < (2 if config.context else 1):
        raise VtokError(
            f"windows of {frames} frames do not fit this model (blocks of {config.frames}, context {config.context})"
        )
    return n


def _learning_rate(peak: float, progress: float, warm: float) -> float:
    """A cosine from `peak` down to 2% of it over the schedule (progress 0 to 1), times the warm-up."""
    return peak * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def _reconstruction_loss(kind: str, ys: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, plain MSE) of the n reconstructions ys, each (B, 3, F, S, S), against
    x (B, 3, n*F, S, S); kind "mse" or "log-mse" (vtok.train.config.TrainConfig)."""
    f = ys[0].shape[2]
    errors = torch.stack(
        [(y.float() - x[:, :, i * f : (i + 1) * f]).square().mean((1, 2, 3, 4)) for i, y in enumerate(ys)]
    )
    mse = errors.mean()
    return (errors.add(LOG_MSE_FLOOR).log().mean() if kind == "log-mse" else mse), mse


def quantizer_loss(model: Tokenizer, z: torch.Tensor, entropy_weight: float | None) -> torch.Tensor | float:
    """An LFQ model's commitment and entropy terms on its latents z (N, D, h, w); 0 for FSQ.

    They keep codes near the corners and all of them in use; entropy_weight None means
    DEFAULT_ENTROPY_WEIGHT, and at 0 the penalty is skipped: its softmax over the sub-codes costs
    4% of a step (1.04x; batch 8, crop 96, one thread: `benchmarks/train_speed.py --model vtok-lfq`)."""
    if model.config.quantizer["kind"] != "lfq":
        return 0.0
    q = model.quantizer
    weight = DEFAULT_ENTROPY_WEIGHT if entropy_weight is None else entropy_weight
    loss = 0.1 * q.commitment(z)
    return loss + weight * q.entropy_penalty(z) if weight else loss


def _step(
    model: Tokenizer, opt: torch.optim.Optimizer, x: torch.Tensor, keeps: list, train: TrainConfig
) -> torch.Tensor:
    """One AdamW step on the reconstruction loss of x float (B, 3, n*F, S, S); returns the plain MSE."""
    device_type = "cuda" if train.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16):
        ys, z = blocks_forward(model, x, keeps)
        loss, mse = _reconstruction_loss(train.loss, ys, x)
        loss = loss + quantizer_loss(model, z, train.entropy_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return mse.detach()


def _start(
    config: ModelConfig, train: TrainConfig, init: dict | None, log: Callable[[str], None]
) -> tuple[Tokenizer, torch.optim.Optimizer, Progress]:
    """The model (from `init` where given, channels-last), its AdamW and the place in the schedule."""
    model = Tokenizer(config).to(train.device)
    new = load_weights(model, init, log)
    opt = torch.optim.AdamW(_param_groups(model, lr_scales(model, init, new, train.resumed_lr)), betas=(0.9, 0.99))
    done = restore(opt, model, init, log)
    return model.to(memory_format=torch.channels_last), opt, done  # 1.14x on this CPU (benchmarks/train_speed.py)


def _param_groups(model: Tokenizer, scales: dict[str, float]) -> list[dict]:
    """AdamW parameter groups, one per share of the learning rate (`scale`), no weight decay."""
    groups: dict[float, list] = {}
    for name, p in model.named_parameters():
        groups.setdefault(scales[name], []).append(p)
    return [{"params": ps, "scale": scale, "weight_decay": 0.0} for scale, ps in groups.items()]


def train_model(
    sampler,
    config: ModelConfig,
    train: TrainConfig,
    *,
    val: np.ndarray | None = None,
    init: dict | None = None,
    checkpoint: Path | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a `config` model until `train.steps` or `train.minutes` run out, whichever first.

    sampler: has `batch(n)` -> uint8 windows (n, frames, S, S, 3), frames = F (one block) or 2F
      (two consecutive blocks, needed by a model with context); S a multiple of 32.
    val: held-out uint8 windows of the same frame count for the logged figures; default: one batch
      drawn from the sampler up front.
    train: its schedule, loss weights, device and seed, not its model, data or output fields. Keep
      masks (`full_share` of them full) start after `masks_after` of the schedule (TrainConfig).
    The forward pass runs under bf16 autocast (on the CPU too: AVX-512 bf16 trains 1.5x faster) with
    channels-last weights. `init`: a checkpoint or weights to start from (`checkpoint.load_weights`,
    `checkpoint.restore`); layers it had train at `train.resumed_lr` of the learning rate.
    `checkpoint` is rewritten every minute.
    """
    torch.manual_seed(train.seed)
    gen = torch.Generator().manual_seed(train.seed)
    probe = sampler.batch(1)
    n_blocks = _blocks_per_window(probe.shape[1], config)
    if val is None:
        val = sampler.batch(VAL_WINDOWS)
    model, opt, done = _start(config, train, init, log)
    side = probe.shape[2] // config.stride
    masks = MaskSampler(side, side, train.device, config.levels, train.full_share, train.prefix_scale)
    start, last_log, last_ckpt, step = time.perf_counter(), 0.0, time.perf_counter(), done.step

    def elapsed() -> float:
        return done.seconds + time.perf_counter() - start

    while step < train.steps:
        progress = max(step / train.steps, elapsed() / (60 * train.minutes))
        if progress >= 1:
            break
        warm = 1.0 if done.resumed else min(1.0, (step - done.step + 1) / WARMUP_STEPS)
        lr = _learning_rate(train.lr, progress, warm)
        for group in opt.param_groups:
            group["lr"] = lr * group["scale"]
        x = to_model(sampler.batch(train.batch), device=train.device)
        keeps = [masks(train.batch, gen) if progress >= train.masks_after else None for _ in range(n_blocks)]
        loss = _step(model, opt, x, keeps, train)
        step += 1
        if time.perf_counter() - last_log > LOG_EVERY or step == done.step + 1:
            last_log = time.perf_counter()
            _log_step(log, model, val, train.device, step, loss.item(), lr, elapsed())
        if checkpoint is not None and time.perf_counter() - last_ckpt > CHECKPOINT_EVERY:
            last_ckpt = time.perf_counter()
            save_checkpoint(checkpoint, model, opt, step=step, seconds=elapsed())
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, opt, step=step, seconds=elapsed())
    metrics = evaluate(model, val, train.device)
    log(f"done: {step} steps in {elapsed():.0f}s, held-out {metrics}")
    return TrainResult(steps=step, seconds=elapsed(), metrics=metrics, state=float_state(model))


def _log_step(
    log: Callable[[str], None],
    model: Tokenizer,
    val: np.ndarray,
    device: str,
    step: int,
    loss: float,
    lr: float,
    seconds: float,
) -> None:
    """Log one progress line: the step's loss, the held-out figures, the learning rate, the time."""
    m = evaluate(model, val, device)
    log(
        f"step {step} loss {loss:.5f} heldout {m['psnr_db']:.2f} dB "
        f"(25% of tokens {m['psnr_25pct_db']:.2f} dB, perplexity {m['perplexity']:.0f}) "
        f"lr {lr:.2e} {seconds:.0f}s"
    )


@torch.no_grad()
def evaluate(model: Tokenizer, val: np.ndarray, device: str) -> dict:
    """Held-out figures over uint8 windows (N, n*F, S, S, 3), in float32, blocks decoded in order.

    psnr_db at the full budget and psnr_25pct_db with a 25% prefix of the coarse-to-fine order
    (pixels on [-1, 1]; with context, each block sees the previous one decoded at the same budget),
    and the perplexity of the codes: exp of the entropy of their histogram.
    """
    model.eval()
    f, levels = model.config.frames, model.config.levels
    full, part, counts = [], [], torch.zeros(model.codebook_size, dtype=torch.float64)
    for i in range(0, len(val), 8):
        x = to_model(val[i : i + 8], device=device)
        n = x.shape[2] // f
        blocks = [x[:, :, j * f : (j + 1) * f] for j in range(n)]
        indices = [model.encode(b) for b in blocks]
        h, w = indices[0].shape[1:]
        quarter = torch.from_numpy(prefix_keep(h * w // 4, h, w, levels)).to(device).expand(len(x), h, w)
        for keep, out in ((None, full), (quarter, part)):
            context = None
            for b, idx in zip(blocks, indices, strict=True):
                y = model.decode(idx, keep, context)
                out.append(F.mse_loss(y, b).item())
                context = model.context_of(y)
        for idx in indices:
            counts += torch.bincount(idx.reshape(-1).cpu(), minlength=model.codebook_size).double()
    model.train()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {
        "psnr_db": round(psnr_from_mse(float(np.mean(full)), MODEL_PEAK), 2),
        "psnr_25pct_db": round(psnr_from_mse(float(np.mean(part)), MODEL_PEAK), 2),
        "perplexity": round(math.exp(entropy), 1),
    }

"""Train a tokenizer on folders of videos and images: `vtok train`.

From folders, every step draws fresh windows from a frame cache (vtok.train.data), and the last tenth
of each video is held out for the logged figures. Fixed windows can also be sampled once and saved
to one safetensors file, to train elsewhere, for example on a machine that has no PyAV.

A model with temporal context trains on pairs of consecutive blocks: the first is decoded as a
keyframe at a random budget, and its last decoded frame is the context of the second, so the
model learns to live with a poorer context as well as a good one.
"""

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from vtok.errors import MediaError, VtokError
from vtok.format.layout import position_levels, prefix_keep, prefix_order, tile_size
from vtok.media.find import find_media
from vtok.model.pixels import to_model
from vtok.model.tokenizer import ARCHITECTURES, ModelConfig, Tokenizer
from vtok.train.data import WindowSampler, build_cache, pan_window

__all__ = ["sample_windows", "train_model", "TrainResult", "FixedWindows"]


def _crop(frames: np.ndarray, size: int, rng: random.Random) -> np.ndarray | None:
    """frames uint8 (F, H, W, 3) -> a random size x size crop, after a random 1x or 2x downscale."""
    f, h, w, _ = frames.shape
    if rng.random() < 0.5 and min(h, w) >= 2 * size:
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, scale_factor=0.5, mode="area", antialias=False)
        frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        h, w = frames.shape[1:3]
    if min(h, w) < size:
        return None
    y0, x0 = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
    return frames[:, y0 : y0 + size, x0 : x0 + size]


def sample_windows(
    paths: list[Path],
    *,
    count: int,
    size: int = 128,
    frames: int = 4,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Crop `count` random windows uint8 (count, frames, size, size, 3) from videos and images.

    Videos get windows in proportion to the square root of their length; images (about one
    window in ten) become slowly panning stills. Each video is streamed once, so memory stays
    bounded by one window per pending start.
    """
    from vtok.media.video import read_frames  # PyAV is needed only when sampling from media files

    rng = random.Random(seed)
    videos, images = find_media(paths)
    if not videos and not images:
        raise MediaError("no videos or images found in " + ", ".join(map(str, paths)))
    n_images = min(len(images) and max(1, count // 10), count)
    lengths = []
    for v in videos:
        from vtok.media.video import probe

        lengths.append(max(probe(v).frames_hint, 2 * frames))
    weights = [math.sqrt(n) for n in lengths]
    quota = [0] * len(videos)
    for _ in range(count - n_images if videos else 0):
        quota[rng.choices(range(len(videos)), weights)[0]] += 1

    windows: list[np.ndarray] = []
    for i, (video, n) in enumerate(zip(videos, quota, strict=True)):
        starts = sorted(rng.randrange(max(1, lengths[i] - frames)) for _ in range(n))
        buffer: list[np.ndarray] = []
        for t, frame in enumerate(read_frames(video)):
            buffer = (buffer + [frame])[-frames:]
            while starts and t == starts[0] + frames - 1:
                starts.pop(0)
                crop = _crop(np.stack(buffer), size, rng)
                if crop is not None:
                    windows.append(crop)
        if progress:
            progress(i + 1, len(videos) + (1 if images else 0))
    from vtok.media.video import read_frames as read_image  # PyAV reads still images as one-frame videos

    while images and len(windows) < count:
        image = next(read_image(rng.choice(images)))
        window = pan_window(image, frames, size, rng)
        if window is not None:
            windows.append(window)
    rng.shuffle(windows)
    return np.stack(windows[:count])


@dataclass
class TrainResult:
    steps: int
    seconds: float
    metrics: dict  # held-out figures: PSNR at full and partial budgets, codebook perplexity
    state: dict  # float32 state dict of the trained model


def _psnr(mse: float) -> float:
    return 10 * math.log10(4.0 / max(mse, 1e-12))  # pixels span [-1, 1]: peak-to-peak 2


class FixedWindows:
    """Windows sampled once (uint8 (N, F, S, S, 3)), served as random crops, flipped at random."""

    def __init__(self, windows: np.ndarray, *, size: int, seed: int = 0):
        if windows.shape[2] < size or windows.shape[3] < size:
            raise VtokError(f"windows of {windows.shape[2]}x{windows.shape[3]} pixels are smaller than crop {size}")
        self.windows, self.size, self.frames = windows, size, windows.shape[1]
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> np.ndarray:
        """uint8 (n, F, size, size, 3)."""
        s = self.size
        idx = self.rng.integers(0, len(self.windows), n)
        y0, x0 = (
            self.rng.integers(0, self.windows.shape[2] - s + 1),
            self.rng.integers(0, self.windows.shape[3] - s + 1),
        )
        x = self.windows[idx, :, y0 : y0 + s, x0 : x0 + s]
        return x[:, :, :, ::-1] if self.rng.random() < 0.5 else x


class _MaskSampler:
    """Random keep masks bool (B, h, w) for training the decoder to infill dropped tokens.

    A third of the samples keep everything, a third keep a random prefix of the coarse-to-fine
    order (from one token per tile up), and a third give each tile a random level, as the
    per-tile elastic budget does.
    """

    def __init__(self, h: int, w: int, device: str, levels: int = 3):
        self.n = h * w
        self.n_levels, self.tile = levels, tile_size(levels)
        rank = np.empty(self.n, np.int64)
        rank[prefix_order(h, w, levels)] = np.arange(self.n)
        self.rank = torch.from_numpy(rank.reshape(h, w)).to(device)
        self.levels = torch.from_numpy(position_levels(h, w, levels).astype(np.int64)).to(device)
        self.tiles = (-(-h // self.tile), -(-w // self.tile))

    def __call__(self, b: int, gen: torch.Generator) -> torch.Tensor:
        h, w = self.rank.shape
        device = self.rank.device
        mode = torch.randint(0, 3, (b,), generator=gen).to(device)
        n = torch.randint(max(1, self.n // self.tile**2), self.n + 1, (b,), generator=gen).to(device)
        prefix = self.rank.unsqueeze(0) < n.view(b, 1, 1)
        tile_levels = torch.randint(0, self.n_levels, (b, *self.tiles), generator=gen).to(device)
        t = self.tile
        per_position = tile_levels.repeat_interleave(t, 1).repeat_interleave(t, 2)[:, :h, :w]
        tiles = self.levels.unsqueeze(0) <= per_position
        full = torch.ones_like(prefix)
        m = mode.view(b, 1, 1)
        return torch.where(m == 0, full, torch.where(m == 1, prefix, tiles))


def _adapt(state: dict, model: Tokenizer, log: Callable[[str], None]) -> dict:
    """Fit the weights of a related model to `model`, to start training from them.

    A convolution that took fewer input channels (the decoder before it took a keep mask) gets zero
    weights for the new ones, so the old behaviour is kept. A tensor of any other shape (the layers
    around a different quantizer) keeps `model`'s fresh initialisation.
    """
    own = model.state_dict()
    if not any(k in own and v.shape == own[k].shape for k, v in state.items()):
        raise VtokError("the weights to resume from share no layer with this architecture")
    out = {k: v for k, v in own.items() if k not in state}  # layers the old model lacked start fresh
    for k, v in state.items():
        want = own.get(k)
        if want is None:
            log(f"{k}: not in this architecture; dropped")
        elif v.shape == want.shape:
            out[k] = v
        elif (
            v.dim() == 4
            and v.shape[0] == want.shape[0]
            and v.shape[1] < want.shape[1]
            and v.shape[2:] == want.shape[2:]
        ):
            out[k] = torch.cat([v, v.new_zeros(v.shape[0], want.shape[1] - v.shape[1], *v.shape[2:])], 1)
        else:
            log(f"{k}: {tuple(v.shape)} does not fit {tuple(want.shape)}; starting it fresh")
            out[k] = want
    return out


def _optimizer_state(opt: torch.optim.Optimizer, model: Tokenizer) -> dict:
    """AdamW moments as flat tensors named after their parameters, for a safetensors checkpoint."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, st in opt.state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"optimizer.{key}.{names[id(p)]}"] = st[key].detach().float().cpu().contiguous()
        out[f"optimizer.step.{names[id(p)]}"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    return out


def _load_optimizer_state(opt: torch.optim.Optimizer, model: Tokenizer, state: dict) -> bool:
    """Restore AdamW moments saved by `_optimizer_state`; True if every parameter got its own."""
    restored = 0
    for name, p in model.named_parameters():
        moment = state.get(f"optimizer.exp_avg.{name}")
        if moment is None or moment.shape != p.shape:  # a layer new to, or reshaped in, this architecture
            continue
        restored += 1
        opt.state[p] = {
            "step": state[f"optimizer.step.{name}"].reshape(()).clone(),
            "exp_avg": state[f"optimizer.exp_avg.{name}"].to(p.device).clone(),
            "exp_avg_sq": state[f"optimizer.exp_avg_sq.{name}"].to(p.device).clone(),
        }
    return restored == len(list(model.parameters()))


def _blocks_forward(
    model: Tokenizer, x: torch.Tensor, keeps: list[torch.Tensor]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Code and decode the consecutive blocks of x (B, 3, n*F, S, S), each with its keep mask.

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


def train_model(
    sampler,
    *,
    config: ModelConfig,
    steps: int,
    minutes: float,
    batch: int = 16,
    lr: float = 1e-3,
    device: str = "cpu",
    seed: int = 0,
    val: np.ndarray | None = None,
    init: dict | None = None,
    checkpoint: Path | None = None,
    masks_after: float = 0.0,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train until `steps` or `minutes` run out, whichever first.

    sampler: has `batch(n)` -> uint8 windows (n, frames, S, S, 3), frames = F (one block) or 2F
      (two consecutive blocks, needed by a model with context); S a multiple of 32.
    val: held-out uint8 windows of the same frame count for the logged figures; default: one batch
      drawn from the sampler up front.
    masks_after: the share of the schedule (0 to 1) trained at the full budget before random keep
      masks start (they cost 1 dB or more at the full budget early on; TRAINING.md).
    The learning rate follows a cosine over that budget. The forward pass runs under bf16 autocast
    (on the CPU too: AVX-512 bf16 trains 1.5x faster), with channels-last weights. `init` is a
    state dict to start from: plain weights (fine-tuning), or a checkpoint written to
    `checkpoint`, which also restores the optimizer and the place in the schedule (resuming).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    f = config.frames
    probe = sampler.batch(1)
    n_blocks = probe.shape[1] // f
    if probe.shape[1] % f or n_blocks < (2 if config.context else 1):
        raise VtokError(
            f"windows of {probe.shape[1]} frames do not fit this model (blocks of {f}, context {config.context})"
        )
    if val is None:
        val = sampler.batch(32)
    model = Tokenizer(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    done_steps, done_seconds, resumed = 0, 0.0, False
    if init is not None:
        weights = {k: v for k, v in init.items() if not k.startswith(("optimizer.", "progress."))}
        model.load_state_dict(_adapt(weights, model, log), strict=True)
        if "progress.step" in init:
            if _load_optimizer_state(opt, model, init):
                resumed = True
                done_steps = int(init["progress.step"].item())
                done_seconds = float(init["progress.seconds"].item())
                log(f"resuming at step {done_steps} ({done_seconds:.0f}s trained)")
            else:  # a related architecture: its moments only where they fit, and a schedule of its own
                log("the checkpoint is of a related architecture: starting a new schedule from its weights")
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    model = model.to(memory_format=torch.channels_last)  # 1.14x on this CPU (benchmarks/train_speed.py)
    lfq = config.quantizer["kind"] == "lfq"
    side = probe.shape[2] // config.stride
    masks = _MaskSampler(side, side, device, config.levels)
    start, last_log, last_ckpt, step = time.perf_counter(), 0.0, time.perf_counter(), done_steps

    def elapsed() -> float:
        return done_seconds + time.perf_counter() - start

    def save_checkpoint() -> None:
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors |= _optimizer_state(opt, model)
        tensors["progress.step"] = torch.tensor([float(step)])
        tensors["progress.seconds"] = torch.tensor([elapsed()])
        _save_atomic(checkpoint, tensors)

    while step < steps:
        progress = max(step / steps, elapsed() / (60 * minutes))
        if progress >= 1:
            break
        for group in opt.param_groups:
            warm = 1.0 if resumed else min(1.0, (step - done_steps + 1) / 200)  # fresh Adam moments warm up
            group["lr"] = lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        x = to_model(sampler.batch(batch), device=device)
        keeps = [masks(batch, gen) if progress >= masks_after else None for _ in range(n_blocks)]
        with torch.autocast(device_type, dtype=torch.bfloat16):
            ys, z = _blocks_forward(model, x, keeps)
            loss = sum(F.mse_loss(y.float(), x[:, :, i * f : (i + 1) * f]) for i, y in enumerate(ys)) / n_blocks
            if lfq:
                q = model.quantizer
                loss = loss + 0.1 * q.commitment(z) + 0.01 * q.entropy_penalty(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if time.perf_counter() - last_log > 30 or step == done_steps + 1:
            last_log = time.perf_counter()
            m = evaluate(model, val, device)
            log(
                f"step {step} loss {loss.item():.5f} heldout {m['psnr_db']:.2f} dB "
                f"(25% of tokens {m['psnr_25pct_db']:.2f} dB, perplexity {m['perplexity']:.0f}) "
                f"lr {opt.param_groups[0]['lr']:.2e} {elapsed():.0f}s"
            )
        if checkpoint is not None and time.perf_counter() - last_ckpt > 60:
            last_ckpt = time.perf_counter()
            save_checkpoint()
    if checkpoint is not None:
        save_checkpoint()
    metrics = evaluate(model, val, device)
    log(f"done: {step} steps in {elapsed():.0f}s, held-out {metrics}")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    return TrainResult(steps=step, seconds=elapsed(), metrics=metrics, state=state)


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
        "psnr_db": round(_psnr(float(np.mean(full))), 2),
        "psnr_25pct_db": round(_psnr(float(np.mean(part))), 2),
        "perplexity": round(math.exp(entropy), 1),
    }


def _save_atomic(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    tmp = path.with_name(path.name + ".part")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def load_windows(path: Path) -> np.ndarray:
    """Windows saved by `save_windows`: uint8 (N, F, S, S, 3)."""
    return load_numpy(str(path))["windows"]


def save_windows(path: Path, windows: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".part")
    save_numpy({"windows": np.ascontiguousarray(windows)}, str(tmp))
    tmp.replace(path)


def export(result: TrainResult, *, name: str, config: ModelConfig, out_dir: Path, data: list[str]) -> dict:
    """Write `out_dir/NAME.safetensors` (float16) and its entry in `out_dir/manifest.json`; return the entry."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    half = {k: v.half() if v.is_floating_point() else v for k, v in result.state.items()}
    _save_atomic(weights, half, metadata={"name": name})
    entry = {
        "file": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "config": config.to_dict(),
        "training": {"data": data, "steps": result.steps, "seconds": round(result.seconds)},
        "metrics": {f"heldout_windows_{k}": v for k, v in result.metrics.items()},
    }
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["models"][name] = entry
    tmp = manifest_path.with_name("manifest.json.part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(manifest_path)
    return entry


def default_cache() -> Path:
    """Where decoded training frames are kept: $VTOK_CACHE, else ~/.cache/vtok/frames."""
    return Path(os.environ.get("VTOK_CACHE") or Path.home() / ".cache" / "vtok" / "frames")


def run_training(
    *,
    sources: list[Path],
    name: str,
    out_dir: Path,
    steps: int,
    minutes: float,
    windows: int,
    save_windows_to: Path | None,
    batch: int,
    crop: int,
    lr: float,
    device: str,
    resume: Path | None,
    log: Callable[[str], None],
    cache: Path | None = None,
    masks_after: float = 0.0,
) -> dict:
    """The `vtok train` command: train on fresh windows from the sources (or on saved windows), and
    export weights plus manifest entry.

    windows > 0 samples that many fixed windows up front instead of drawing fresh ones each step.
    """
    if name not in ARCHITECTURES:
        raise VtokError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    config = ARCHITECTURES[name]
    if crop % 32:
        raise VtokError(f"--crop {crop} is not a multiple of 32 (one budget tile)")
    frames = config.frames * (2 if config.context else 1)
    saved = len(sources) == 1 and sources[0].suffix == ".safetensors"
    if saved or windows > 0:  # fixed windows
        if saved:
            data = load_windows(sources[0])
        else:
            data = sample_windows(
                sources,
                count=windows,
                size=max(crop, 128),
                frames=frames,
                progress=lambda i, n: log(f"sampled {i}/{n} sources"),
            )
            if save_windows_to is not None:
                save_windows(save_windows_to, data)
        n_val = max(1, min(32, len(data) // 20))  # one window in twenty, at most 32, held out
        val, sampler = data[:n_val], FixedWindows(data[n_val:], size=crop)
    else:
        videos, images = build_cache(
            sources, cache or default_cache(), progress=lambda i, n: log(f"cached {i}/{n} sources")
        )
        on_gpu = device if device.startswith("cuda") else None  # cut windows where the model runs
        sampler = WindowSampler(videos, images, frames=frames, size=crop, device=on_gpu)
        try:
            val = WindowSampler(videos, [], frames=frames, size=crop, seed=1, part="heldout").batch(32)
        except MediaError:  # no video long enough to hold out its end (e.g. stills only)
            log("no video to hold out: the logged figures come from training windows")
            val = WindowSampler(videos, images, frames=frames, size=crop, seed=1).batch(32)
    log(f"training {name} on windows of {frames} frames, {crop}x{crop}, on {device}")
    init = load_file(str(resume)) if resume is not None else None
    ckpt = out_dir / f"{name}.checkpoint.safetensors"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = train_model(
        sampler,
        config=config,
        steps=steps,
        minutes=minutes,
        batch=batch,
        lr=lr,
        device=device,
        val=val,
        init=init,
        checkpoint=ckpt,
        masks_after=masks_after,
        log=log,
    )
    return export(result, name=name, config=config, out_dir=out_dir, data=[str(s) for s in sources])

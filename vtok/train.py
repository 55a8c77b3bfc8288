"""Train a tokenizer on folders of videos and images: `vtok train`.

Training samples are windows of F frames cropped from the sources once, up front, and kept in
memory as uint8 (N, F, S, S, 3). They can be saved to one safetensors file and trained on
elsewhere, for example on a GPU machine that has no PyAV.
"""

import hashlib
import json
import math
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
from vtok.model import ARCHITECTURES, ModelConfig, Tokenizer

__all__ = ["sample_windows", "train_model", "TrainResult"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _sources(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*")) if p.is_dir() else [p]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    return videos, images


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


def _image_window(image: np.ndarray, frames: int, size: int, rng: random.Random) -> np.ndarray | None:
    """A still image (H, W, 3) -> a window (F, S, S, 3) that pans slowly, like a moving camera."""
    h, w, _ = image.shape
    vy, vx = rng.randint(-3, 3), rng.randint(-3, 3)
    span = size + 3 * (frames - 1)
    if min(h, w) < span:
        return None
    y0, x0 = rng.randrange(h - span + 1), rng.randrange(w - span + 1)
    y0 += 3 * (frames - 1) if vy < 0 else 0
    x0 += 3 * (frames - 1) if vx < 0 else 0
    return np.stack([image[y0 + i * vy : y0 + i * vy + size, x0 + i * vx : x0 + i * vx + size] for i in range(frames)])


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
    from vtok.io import read_frames  # PyAV is needed only when sampling from media files

    rng = random.Random(seed)
    videos, images = _sources(paths)
    if not videos and not images:
        raise MediaError("no videos or images found in " + ", ".join(map(str, paths)))
    n_images = min(len(images) and max(1, count // 10), count)
    lengths = []
    for v in videos:
        from vtok.io import probe

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
    from vtok.io import read_frames as read_image  # PyAV reads still images as one-frame videos

    while images and len(windows) < count:
        image = next(read_image(rng.choice(images)))
        window = _image_window(image, frames, size, rng)
        if window is not None:
            windows.append(window)
    rng.shuffle(windows)
    return np.stack(windows[:count])


@dataclass
class TrainResult:
    steps: int
    seconds: float
    heldout_psnr: float
    state: dict  # float32 state dict of the trained model


def _psnr(mse: float) -> float:
    return 10 * math.log10(4.0 / max(mse, 1e-12))  # pixels span [-1, 1]: peak-to-peak 2


def _batch(windows: torch.Tensor, idx: torch.Tensor, crop: int, gen: torch.Generator) -> torch.Tensor:
    """uint8 windows (N, F, S, S, 3) -> float (B, 3, F, crop, crop) in [-1, 1], randomly flipped."""
    x = windows[idx]
    s = x.shape[2]
    y0, x0 = (int(v) for v in torch.randint(0, s - crop + 1, (2,), generator=gen))
    x = x[:, :, y0 : y0 + crop, x0 : x0 + crop].permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(2)  # blocks are encoded independently, so time-reversed clips are fair samples
    return x


def train_model(
    windows: np.ndarray,
    *,
    config: ModelConfig,
    steps: int,
    minutes: float,
    batch: int = 16,
    crop: int = 96,
    lr: float = 1e-3,
    device: str = "cpu",
    seed: int = 0,
    init: dict | None = None,
    checkpoint: Path | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train on uint8 windows (N, F, S, S, 3) until `steps` or `minutes` run out, whichever first.

    The learning rate follows a cosine over that budget. One window in twenty is held out for the
    PSNR that is logged. On CUDA the forward pass runs under bf16 autocast.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(windows)
    n_val = max(1, len(data) // 20)
    val, data = data[:n_val], data[n_val:]
    if device != "cpu":
        data = data.to(device)
    model = Tokenizer(config).to(device)
    if init is not None:
        model.load_state_dict(init, strict=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    cuda = device.startswith("cuda")
    lfq = config.quantizer["kind"] == "lfq"
    start, last_log, last_ckpt, step = time.perf_counter(), 0.0, time.perf_counter(), 0
    while step < steps:
        elapsed = time.perf_counter() - start
        progress = max(step / steps, elapsed / (60 * minutes))
        if progress >= 1:
            break
        for group in opt.param_groups:
            warm = min(1.0, (step + 1) / 200)
            group["lr"] = lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        idx = torch.randint(0, len(data), (batch,), generator=gen).to(data.device)
        x = _batch(data, idx, crop, gen).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            y, z, _ = model(x)
            loss = F.mse_loss(y.float(), x)
            if lfq:
                loss = loss + 0.01 * model.quantizer.entropy_penalty(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if time.perf_counter() - last_log > 30 or step == 1:
            last_log = time.perf_counter()
            log(
                f"step {step} loss {loss.item():.5f} heldout {_evaluate(model, val, device):.2f} dB "
                f"lr {opt.param_groups[0]['lr']:.2e} {time.perf_counter() - start:.0f}s"
            )
        if checkpoint is not None and time.perf_counter() - last_ckpt > 120:
            last_ckpt = time.perf_counter()
            _save_atomic(checkpoint, {k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    seconds = time.perf_counter() - start
    psnr = _evaluate(model, val, device)
    log(f"done: {step} steps in {seconds:.0f}s, held-out PSNR {psnr:.2f} dB")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    return TrainResult(steps=step, seconds=seconds, heldout_psnr=psnr, state=state)


@torch.no_grad()
def _evaluate(model: Tokenizer, val: torch.Tensor, device: str) -> float:
    """Mean PSNR (pixels in [-1, 1]) over held-out windows, run in float32 whole-window crops."""
    model.eval()
    mses = []
    for i in range(0, len(val), 8):
        x = val[i : i + 8].to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        mses.append(F.mse_loss(model(x)[0].clamp(-1, 1), x).item())
    model.train()
    return _psnr(float(np.mean(mses)))


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
        "metrics": {"heldout_psnr_db": round(result.heldout_psnr, 2)},
    }
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["models"][name] = entry
    tmp = manifest_path.with_name("manifest.json.part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(manifest_path)
    return entry


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
) -> dict:
    """The `vtok train` command: sample (or load) windows, train, and export weights plus manifest entry."""
    if name not in ARCHITECTURES:
        raise VtokError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    config = ARCHITECTURES[name]
    if len(sources) == 1 and sources[0].suffix == ".safetensors":
        data = load_windows(sources[0])
    else:
        data = sample_windows(
            sources,
            count=windows,
            size=max(crop, 128),
            frames=config.frames,
            progress=lambda i, n: log(f"sampled {i}/{n} sources"),
        )
        if save_windows_to is not None:
            save_windows(save_windows_to, data)
    log(f"training {name} on {len(data)} windows of {data.shape[1:]} on {device}")
    init = load_file(str(resume)) if resume is not None else None
    ckpt = out_dir / f"{name}.checkpoint.safetensors"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = train_model(
        data,
        config=config,
        steps=steps,
        minutes=minutes,
        batch=batch,
        crop=crop,
        lr=lr,
        device=device,
        init=init,
        checkpoint=ckpt,
        log=log,
    )
    return export(result, name=name, config=config, out_dir=out_dir, data=[str(s) for s in sources])

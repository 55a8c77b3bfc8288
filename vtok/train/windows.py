"""Fixed training windows: sampled once from videos and images, saved to one safetensors file, and
served as random crops. They let a run train elsewhere, for example on a machine without PyAV."""

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from vtok.errors import MediaError, VtokError
from vtok.files import atomic_path
from vtok.media.find import find_media
from vtok.train.data import pan_window

__all__ = ["sample_windows", "FixedWindows", "save_windows", "load_windows"]


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


def _video_quota(videos: list[Path], count: int, frames: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """How many windows each video gives, in proportion to the square root of its length; and the
    lengths (frame counts as probed, at least 2 * frames)."""
    from vtok.media.video import probe  # PyAV is needed only when sampling from media files

    lengths = [max(probe(v).frames_hint, 2 * frames) for v in videos]
    weights = [math.sqrt(n) for n in lengths]
    quota = [0] * len(videos)
    for _ in range(count):
        quota[rng.choices(range(len(videos)), weights)[0]] += 1
    return quota, lengths


def _video_windows(video: Path, starts: list[int], frames: int, size: int, rng: random.Random) -> list[np.ndarray]:
    """Crops uint8 (frames, size, size, 3) of the windows starting at the sorted frame `starts`,
    streaming the video once: memory stays bounded by one window per pending start."""
    from vtok.media.video import read_frames

    windows, buffer = [], []
    for t, frame in enumerate(read_frames(video)):
        buffer = (buffer + [frame])[-frames:]
        while starts and t == starts[0] + frames - 1:
            starts.pop(0)
            crop = _crop(np.stack(buffer), size, rng)
            if crop is not None:
                windows.append(crop)
    return windows


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
    window in ten) become slowly panning stills.
    """
    from vtok.media.video import read_frames  # PyAV reads still images as one-frame videos

    rng = random.Random(seed)
    videos, images = find_media(paths)
    if not videos and not images:
        raise MediaError("no videos or images found in " + ", ".join(map(str, paths)))
    n_images = min(len(images) and max(1, count // 10), count)
    quota, lengths = _video_quota(videos, count - n_images if videos else 0, frames, rng)
    windows: list[np.ndarray] = []
    for i, (video, n) in enumerate(zip(videos, quota, strict=True)):
        starts = sorted(rng.randrange(max(1, lengths[i] - frames)) for _ in range(n))
        windows += _video_windows(video, starts, frames, size, rng)
        if progress:
            progress(i + 1, len(videos) + (1 if images else 0))
    while images and len(windows) < count:
        window = pan_window(next(read_frames(rng.choice(images))), frames, size, rng)
        if window is not None:
            windows.append(window)
    rng.shuffle(windows)
    return np.stack(windows[:count])


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


def save_windows(path: Path, windows: np.ndarray) -> None:
    """Save windows uint8 (N, F, S, S, 3) as the tensor "windows" of a safetensors file."""
    with atomic_path(path) as tmp:
        save_numpy({"windows": np.ascontiguousarray(windows)}, str(tmp))


def load_windows(path: Path) -> np.ndarray:
    """Windows saved by `save_windows`: uint8 (N, F, S, S, 3)."""
    return load_numpy(str(path))["windows"]

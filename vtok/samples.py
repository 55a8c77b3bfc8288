"""Fresh training windows every step, drawn from a uint8 cache of every training frame.

Every video and image is decoded once into `CACHE/NAME-KEY.npy` (uint8 (T, H, W, 3)); the cache
is memory-mapped, so processes that train side by side share it through the page cache. Each
window is then cut at a random time, place and scale: a run of hours never sees the same window
twice, and no decoding happens while training.
"""

import hashlib
import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vtok.errors import MediaError

__all__ = ["VIDEO_SUFFIXES", "IMAGE_SUFFIXES", "sources", "build_cache", "WindowSampler"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
IMAGE_SHARE = 0.1  # of windows: slowly panning stills
PAN = 3  # pixels per frame, at most, that a still pans


def sources(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Videos and images under `paths` (folders are walked recursively), sorted."""
    files: list[Path] = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    return videos, images


def _cache_name(src: Path) -> str:
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{src.stem}-{key}.npy"


def build_cache(
    paths: list[Path], cache: Path, *, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Path], list[Path]]:
    """Decode every video and image under `paths` into `cache` (once; kept while the source is
    unchanged). Returns the cached (videos, images) files, uint8 (T, H, W, 3) each."""
    from vtok.io import read_frames  # PyAV is needed only to fill the cache

    videos, images = sources(paths)
    if not videos and not images:
        raise MediaError("no videos or images found in " + ", ".join(map(str, paths)))
    cache.mkdir(parents=True, exist_ok=True)
    out: tuple[list[Path], list[Path]] = ([], [])
    todo = [(v, 0) for v in videos] + [(i, 1) for i in images]
    for n, (src, kind) in enumerate(todo):
        dst = cache / _cache_name(src)
        if not dst.exists():
            frames = np.stack(list(read_frames(src)))
            tmp = dst.with_name(dst.name + ".part")
            with open(tmp, "wb") as f:
                np.save(f, frames)
            tmp.replace(dst)
        out[kind].append(dst)
        if progress:
            progress(n + 1, len(todo))
    return out


def _downscale(x: np.ndarray) -> np.ndarray:
    """uint8 (..., 2H, 2W, 3) -> (..., H, W, 3), the mean of each 2x2 (rounded)."""
    y = x.astype(np.uint16)
    y = y[..., 0::2, 0::2, :] + y[..., 1::2, 0::2, :] + y[..., 0::2, 1::2, :] + y[..., 1::2, 1::2, :]
    return ((y + 2) >> 2).astype(np.uint8)


class WindowSampler:
    """Random windows uint8 (frames, size, size, 3) from cached videos and images.

    Videos are picked in proportion to the square root of their length; half the windows come from
    2x-downscaled frames (more motion and detail per pixel); windows are flipped left-right and
    played backwards at random. One in ten is a still image panning slowly, like a moving camera.

    part: "train" draws from the first nine tenths of each video and from the images; "heldout"
    from the last tenth of each video (at least `frames` frames), which training never sees.
    """

    def __init__(
        self, videos: list[Path], images: list[Path], *, frames: int, size: int, seed: int = 0, part: str = "train"
    ):
        self.frames, self.size = frames, size
        self.rng = random.Random(seed)
        clips = [a for a in (np.load(v, mmap_mode="r") for v in videos) if len(a) >= 2 * frames]
        cuts = [len(a) - max(len(a) // 10, frames) for a in clips]
        if part == "train":
            self.videos = [a[:cut] for a, cut in zip(clips, cuts, strict=True)]
            self.images = [np.load(i, mmap_mode="r")[0] for i in images]
        elif part == "heldout":
            self.videos = [a[cut:] for a, cut in zip(clips, cuts, strict=True)]
            self.images = []
        else:
            raise ValueError(f"part must be 'train' or 'heldout', not {part!r}")
        self.videos = [a for a in self.videos if min(a.shape[1:3]) >= size]
        self.images = [a for a in self.images if min(a.shape[:2]) >= size + PAN * frames]
        if not self.videos and not self.images:
            raise MediaError(f"no source has {frames} frames of at least {size}x{size} pixels")
        self.weights = [math.sqrt(len(a)) for a in self.videos]

    def window(self) -> np.ndarray:
        rng, f, s = self.rng, self.frames, self.size
        if self.images and (not self.videos or rng.random() < IMAGE_SHARE):
            return self._pan(rng.choice(self.images))
        video = rng.choices(self.videos, self.weights)[0]
        t0 = rng.randrange(len(video) - f + 1)
        h, w = video.shape[1:3]
        scale = 2 if rng.random() < 0.5 and min(h, w) >= 2 * s else 1
        y0, x0 = rng.randrange(h - scale * s + 1), rng.randrange(w - scale * s + 1)
        x = np.asarray(video[t0 : t0 + f, y0 : y0 + scale * s, x0 : x0 + scale * s])
        if scale == 2:
            x = _downscale(x)
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        if rng.random() < 0.5:
            x = x[::-1]
        return x

    def _pan(self, image: np.ndarray) -> np.ndarray:
        rng, f, s = self.rng, self.frames, self.size
        vy, vx = rng.randint(-PAN, PAN), rng.randint(-PAN, PAN)
        h, w = image.shape[:2]
        span = s + PAN * (f - 1)
        y0, x0 = rng.randrange(h - span + 1), rng.randrange(w - span + 1)
        y0 += PAN * (f - 1) if vy < 0 else 0
        x0 += PAN * (f - 1) if vx < 0 else 0
        return np.stack([image[y0 + i * vy : y0 + i * vy + s, x0 + i * vx : x0 + i * vx + s] for i in range(f)])

    def batch(self, n: int) -> np.ndarray:
        """n fresh windows: uint8 (n, frames, size, size, 3)."""
        return np.stack([self.window() for _ in range(n)])

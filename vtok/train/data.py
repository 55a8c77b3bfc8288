"""Fresh training windows every step, drawn from a uint8 cache of every training frame.

Every video and image is decoded once into `CACHE/NAME-KEY.npy` (uint8 (T, H, W, 3)), KEY a hash
of the source's bytes, so that a copied or re-synced corpus still finds its frames; the cache is
memory-mapped, so processes that train side by side share it through the page cache, and it is kept
under CACHE_LIMIT by dropping the least recently used sources of other runs. Each
window is then cut at a random time, place and scale: a run of hours never sees the same window
twice, and no decoding happens while training. On a GPU the frames are held on the device and
windows are cut there, so the accelerator never waits on the CPU. Decoding uses PyAV, or OpenCV
where PyAV is missing (as on the lent GPU machines).
"""

import contextlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vtok.errors import MediaError, OutputError
from vtok.files import atomic_path, sha256_of
from vtok.media.find import IMAGE_SUFFIXES, find_media

__all__ = ["default_cache", "build_cache", "pan_window", "WindowSampler"]

IMAGE_SHARE = 0.1  # of windows: slowly panning stills
PAN = 3  # pixels per frame, at most, that a still pans
CACHE_LIMIT = 16 * 2**30  # bytes; a run's own sources are kept even when they alone are more


def default_cache() -> Path:
    """Where decoded training frames are kept: $VTOK_CACHE, else ~/.cache/vtok/frames."""
    return Path(os.environ.get("VTOK_CACHE") or Path.home() / ".cache" / "vtok" / "frames")


def _cache_name(src: Path) -> str:
    """`NAME-KEY.npy`, KEY from the bytes alone: a path or mtime would change whenever the corpus is
    copied or mounted afresh, and each change would add a full copy of its frames to the cache."""
    return f"{src.stem}-{sha256_of(src)[:16]}.npy"


def _prune(cache: Path, keep: set[Path], limit: int) -> None:
    """Delete the least recently used `.npy` files in `cache`, other than `keep`, until the folder
    holds at most `limit` bytes (or only `keep`). Runs that still map a deleted file keep reading it.
    Partial files (`.NAME.npy.PID.part.npy`) are someone's write in progress, unless a day old: then
    their run was killed."""
    entries = []
    for path in cache.glob("*.npy"):
        with contextlib.suppress(FileNotFoundError):  # a run beside this one may prune too
            st = path.stat()
            if not path.name.startswith("."):
                entries.append((st.st_mtime, st.st_size, path))
            elif time.time() - st.st_mtime > 86400:
                path.unlink()
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if path not in keep:
            path.unlink(missing_ok=True)
            total -= size


def _decode_all(src: Path) -> np.ndarray:
    """Every frame of a video, or an image as one frame: uint8 (T, H, W, 3) RGB."""
    try:
        from vtok.media.video import read_frames
    except ImportError:  # no PyAV: OpenCV gave identical frames on the clips tried (../shared/TRAINING.md)
        return _decode_all_opencv(src)
    return np.stack(list(read_frames(src)))


def _decode_all_opencv(src: Path) -> np.ndarray:
    import cv2

    if src.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(f"{src}: OpenCV cannot read it")
        return image[None, :, :, ::-1].copy()
    cap = cv2.VideoCapture(str(src))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    cap.release()
    if not frames:
        raise MediaError(f"{src}: OpenCV reads no frames from it")
    return np.stack(frames)


def build_cache(
    paths: list[Path],
    cache: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    limit: int = CACHE_LIMIT,
) -> tuple[list[Path], list[Path]]:
    """Decode every video and image under `paths` into `cache` (once; kept while the source's bytes
    are unchanged), then keep the cache under `limit` bytes. Returns the cached (videos, images)
    files, uint8 (T, H, W, 3) each."""
    videos, images = find_media(paths)
    if not videos and not images:
        raise MediaError("no videos or images found in " + ", ".join(map(str, paths)))
    cache.mkdir(parents=True, exist_ok=True)
    out: tuple[list[Path], list[Path]] = ([], [])
    todo = [(v, 0) for v in videos] + [(i, 1) for i in images]
    for n, (src, kind) in enumerate(todo):
        dst = cache / _cache_name(src)
        if dst.exists():
            os.utime(dst)  # recently used: pruned last
        else:
            frames = _decode_all(src)
            free = shutil.disk_usage(cache).free
            if frames.nbytes > free:  # numpy's own message for this names neither file nor folder
                raise OutputError(
                    f"{cache}: {src.name} needs {frames.nbytes / 1e6:,.0f} MB in the frame cache, "
                    f"{free / 1e6:,.0f} MB are free",
                    option="cache",
                )
            with atomic_path(dst) as tmp:  # runs may fill one cache side by side
                np.save(tmp, frames)  # tmp ends in ".npy" too, so np.save adds no suffix
        out[kind].append(dst)
        if progress:
            progress(n + 1, len(todo))
    _prune(cache, set(out[0] + out[1]), limit)
    return out


def _downscale(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """uint8 (..., 2H, 2W, 3) -> (..., H, W, 3), the mean of each 2x2 (rounded); numpy or torch."""
    y = x.astype(np.uint16) if isinstance(x, np.ndarray) else x.to(torch.int16)
    y = y[..., 0::2, 0::2, :] + y[..., 1::2, 0::2, :] + y[..., 0::2, 1::2, :] + y[..., 1::2, 1::2, :]
    y = (y + 2) >> 2
    return y.astype(np.uint8) if isinstance(y, np.ndarray) else y.to(torch.uint8)


def pan_window(
    image: np.ndarray | torch.Tensor, frames: int, size: int, rng: random.Random
) -> np.ndarray | torch.Tensor | None:
    """A still image uint8 (H, W, 3) -> a window (frames, size, size, 3) that pans slowly, like a
    moving camera (numpy or torch, like the image); None if the image is too small for the pan."""
    vy, vx = rng.randint(-PAN, PAN), rng.randint(-PAN, PAN)
    h, w = image.shape[:2]
    span = size + PAN * (frames - 1)
    if min(h, w) < span:
        return None
    y0, x0 = rng.randrange(h - span + 1), rng.randrange(w - span + 1)
    y0 += PAN * (frames - 1) if vy < 0 else 0
    x0 += PAN * (frames - 1) if vx < 0 else 0
    crops = [image[y0 + i * vy : y0 + i * vy + size, x0 + i * vx : x0 + i * vx + size] for i in range(frames)]
    return np.stack(crops) if isinstance(image, np.ndarray) else torch.stack(crops)


def _flip(x: np.ndarray | torch.Tensor, axis: int) -> np.ndarray | torch.Tensor:
    return np.flip(x, axis) if isinstance(x, np.ndarray) else x.flip(axis)


class WindowSampler:
    """Random windows uint8 (frames, size, size, 3) from cached videos and images.

    Videos are picked in proportion to the square root of their length; half the windows come from
    2x-downscaled frames (more motion and detail per pixel); windows are flipped left-right and
    played backwards at random. One in ten is a still image panning slowly, like a moving camera.

    part: "train" draws from the first nine tenths of each video and from the images; "heldout"
    from the last tenth of each video (at least `frames` frames), which training never sees.
    device: None keeps the frames memory-mapped and returns numpy batches; a torch device (a GPU)
      copies them there once and returns uint8 tensors on it.
    """

    def __init__(
        self,
        videos: list[Path],
        images: list[Path],
        *,
        frames: int,
        size: int,
        seed: int = 0,
        part: str = "train",
        device: str | None = None,
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
            raise MediaError(
                f"no source is large enough: a video needs {2 * frames} frames (windows of {frames} and a "
                f"held-out end) of at least {size}x{size} pixels, a still {size + PAN * frames}x{size + PAN * frames}"
            )
        self.weights = [math.sqrt(len(a)) for a in self.videos]
        if device is not None:
            self.videos = [torch.from_numpy(np.array(a)).to(device) for a in self.videos]
            self.images = [torch.from_numpy(np.array(a)).to(device) for a in self.images]

    def window(self) -> np.ndarray:
        rng, f, s = self.rng, self.frames, self.size
        if self.images and (not self.videos or rng.random() < IMAGE_SHARE):
            return pan_window(rng.choice(self.images), f, s, rng)  # images were kept only if large enough
        video = rng.choices(self.videos, self.weights)[0]
        t0 = rng.randrange(len(video) - f + 1)
        h, w = video.shape[1:3]
        scale = 2 if rng.random() < 0.5 and min(h, w) >= 2 * s else 1
        y0, x0 = rng.randrange(h - scale * s + 1), rng.randrange(w - scale * s + 1)
        x = video[t0 : t0 + f, y0 : y0 + scale * s, x0 : x0 + scale * s]
        if scale == 2:
            x = _downscale(x)
        if rng.random() < 0.5:
            x = _flip(x, 2)
        if rng.random() < 0.5:
            x = _flip(x, 0)
        return x

    def batch(self, n: int) -> np.ndarray | torch.Tensor:
        """n fresh windows: uint8 (n, frames, size, size, 3), numpy, or a tensor on `device`."""
        windows = [self.window() for _ in range(n)]
        return np.stack(windows) if isinstance(windows[0], np.ndarray) else torch.stack(windows)

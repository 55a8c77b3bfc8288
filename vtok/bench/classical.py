"""The classical baselines of `vtok bench`: x264, x265 and AV1 through PyAV, each at several CRFs."""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vtok.media.video import VideoWriter, read_frames

__all__ = ["Classical", "CLASSICAL"]


@dataclass(frozen=True)
class Classical:
    """A classical codec through PyAV: the one small interface every baseline goes through."""

    name: str  # PyAV encoder name
    crfs: tuple[int, ...]  # the rate-distortion points measured, best quality first
    pix_fmt: str = "yuv420p"
    container: str = "mp4"  # PyAV format name

    @property
    def suffix(self) -> str:
        """The file extension of `container`."""
        return ".mkv" if self.container == "matroska" else ".mp4"

    def encode(self, frames: np.ndarray, rate: Fraction, crf: int, path: Path) -> None:
        """Write frames, uint8 (T, H, W, 3) RGB with even H and W, to `path` at `crf`."""
        with VideoWriter(
            path,
            width=frames.shape[2],
            height=frames.shape[1],
            rate=rate,
            crf=crf,
            codec=self.name,
            pix_fmt=self.pix_fmt,
            container_format=self.container,
        ) as writer:
            for frame in frames:
                writer.write(frame)

    def decode(self, path: Path) -> np.ndarray:
        """Every frame of `path` as uint8 (T, H, W, 3) RGB."""
        return np.stack(list(read_frames(path)))


CLASSICAL = {
    "libx264": Classical("libx264", (23, 30, 37, 44, 51)),
    "libx265": Classical("libx265", (25, 32, 39, 46, 51)),
    "libsvtav1": Classical("libsvtav1", (30, 40, 50, 58, 63), container="matroska"),
}

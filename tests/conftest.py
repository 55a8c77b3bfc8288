import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent  # the repository
# Regenerate golden files with GENERATE_EXPECTED=1 pytest
GENERATE = os.environ.get("GENERATE_EXPECTED") == "1"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def clip() -> Path:
    """A real 22-frame clip: 250x138 (not a multiple of 8), 30000/1001 fps, H.264 with AAC audio."""
    return DATA / "dog_250x138.mp4"


@pytest.fixture
def float32_for(monkeypatch):
    """float32_for(part): turn bf16 off for "encoder" or "decoder" as its switch does."""
    from vtok.model.tokenizer import cpu_bf16

    def off(part: str) -> None:
        monkeypatch.setenv(f"VTOK_{part.upper()}_BF16", "0")
        cpu_bf16.cache_clear()

    yield off
    monkeypatch.delenv("VTOK_ENCODER_BF16", raising=False)
    monkeypatch.delenv("VTOK_DECODER_BF16", raising=False)
    cpu_bf16.cache_clear()


def load_script(path: Path) -> ModuleType:
    """A script outside the package (benchmarks/, fuzz/), imported from its file as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_grid(height: int, width: int) -> tuple[int, int]:
    """Token positions per block of the default model for a frame of this size."""
    from vtok.model.registry import resolve

    stride = resolve("vtok-fsq").config.stride
    return -(-height // stride), -(-width // stride)


def make_clip(path: Path, *, frames=12, width=64, height=48, rate=24, codec="libx264", pix_fmt="yuv420p",
              fmt=None, options=None, rotation=0, pts_ms=None) -> Path:  # fmt: skip
    """Encode `frames` frames of seeded noise (and a moving bar) with PyAV, so tests make their sources.

    rotation: degrees clockwise a player turns them (a display matrix); pts_ms: each frame's time in
    milliseconds, for a variable frame rate; options: the container's (e.g. movflags).
    """
    from fractions import Fraction

    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(-rotation)  # PyAV's angle is counter-clockwise
        for i in range(frames):
            img = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
            img[:, i % width] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgba")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def cut(path: Path, share: float) -> Path:
    """A copy of `path` with only its first `share` of bytes, as an interrupted download leaves it."""
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[: int(len(data) * share)])
    return out

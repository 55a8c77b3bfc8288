import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
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


def default_grid(height: int, width: int) -> tuple[int, int]:
    """Token positions per block of the default model for a frame of this size."""
    from vtok.model.registry import resolve

    stride = resolve("vtok-fsq").config.stride
    return -(-height // stride), -(-width // stride)

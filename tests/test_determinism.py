"""The same input and options give byte-identical `.vtok` files, across runs and thread counts."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from vtok.media.video import read_frames
from vtok.model.pixels import to_model
from vtok.model.registry import load


@pytest.mark.parametrize("name", ["vtok-fsq", "vtok-lfq"])
def test_the_latent_does_not_depend_on_the_thread_count(clip, name):
    model = load(name, "cpu").tokenizer
    assert model.config.feedback  # its second pass too: a bf16 decode inside the encoder
    frames = np.stack(list(read_frames(clip))[:20])
    x = to_model(frames.reshape(5, 4, *frames.shape[1:]), 4, "cpu")
    threads = torch.get_num_threads()
    try:
        latents = []
        for n in (1, 2):
            torch.set_num_threads(n)
            latents.append(model.exact_latent(x))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(latents[0], latents[1])


def _encode(clip, out, threads: int) -> bytes:
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "vtok", "encode", str(clip), "-o", str(out), "--device", "cpu"]
    subprocess.run(args, check=True, capture_output=True, env=env)
    return out.read_bytes()


def test_encoding_is_byte_identical_across_runs_and_thread_counts(clip, tmp_path):
    one = _encode(clip, tmp_path / "a.vtok", 1)
    assert _encode(clip, tmp_path / "b.vtok", 1) == one
    assert _encode(clip, tmp_path / "c.vtok", 2) == one

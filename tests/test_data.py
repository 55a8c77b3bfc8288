"""vtok.data: windows of tokens over folders of .vtok files, their padding, and torch's DataLoader."""

import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import vtok
from vtok.data import TokenWindows, pad_batch, window_bounds
from vtok.errors import ContainerError
from vtok.format import Header, VtokWriter


def _write(path, frames, *, seed=0, width=40):
    """A .vtok file written directly: random codes, runs and budgets, 2 frames a block, chunks of 4 blocks."""
    rng = np.random.default_rng(seed)
    h = Header(model="t", model_sha256="0" * 64, model_config={}, quantizer={}, codebook_size=50, block_frames=2,
               width=width, height=24, frames=frames, rate=Fraction(24), token_stride=4, levels=4)  # fmt: skip
    with VtokWriter(path, h, blocks_per_chunk=4) as w:
        for i in range(h.blocks):
            run = np.zeros(h.grid, bool) if i == 0 else rng.random(h.grid) < 0.5
            w.write_block(rng.integers(0, 50, h.grid), frames=h.block_length(i), run_mask=run,
                          tile_levels=rng.integers(0, 4, h.tiles))  # fmt: skip
    return path


@pytest.fixture
def folder(tmp_path):
    """Three files: 20, 9 and 3 frames; one in a subfolder."""
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "a.vtok", 20, seed=1)
    _write(tmp_path / "b.vtok", 9, seed=2)
    _write(tmp_path / "sub" / "c.vtok", 3, seed=3)
    (tmp_path / "notes.txt").write_text("not a .vtok file")
    return tmp_path


def test_window_bounds():
    assert window_bounds(20, 8, 8, False) == [(0, 8), (8, 16)]
    assert window_bounds(20, 8, 8, True) == [(0, 8), (8, 16), (16, 20)]
    assert window_bounds(20, 8, 4, False) == [(0, 8), (4, 12), (8, 16), (12, 20)]
    assert window_bounds(20, 8, 4, True) == [(0, 8), (4, 12), (8, 16), (12, 20)]  # nothing left out
    assert window_bounds(3, 8, 8, False) == [] and window_bounds(3, 8, 8, True) == [(0, 3)]
    assert window_bounds(0, 8, 8, True) == []


def test_windows_cover_every_file_of_the_folder(folder):
    with TokenWindows(folder, frames=4) as data:
        assert [p.name for p in data.files] == ["a.vtok", "b.vtok", "c.vtok"]
        assert len(data) == 5 + 2 + 0
        assert data.windows[:, 0].tolist() == [0] * 5 + [1] * 2
        item = data[6]
    assert item["path"] == str(folder / "b.vtok") and (item["start"], item["stop"], item["offset"]) == (4, 8, 0)
    with vtok.open(folder / "b.vtok") as f:
        w = f[4:8]
    assert np.array_equal(item["indices"], w.indices) and np.array_equal(item["keep"], w.keep)
    assert np.array_equal(item["tile_levels"], w.tile_levels) and item["tile_levels"].dtype == np.int8
    tokens, lengths = w.sequence()
    assert np.array_equal(item["tokens"], tokens) and np.array_equal(item["block_lengths"], lengths)
    assert item["indices"].shape == (2, 6, 10) and lengths.sum() == item["keep"].sum()
    with TokenWindows(folder, frames=4, stride=2, partial=True) as data:
        assert len(data) == 9 + 4 + 1
        assert (data[len(data) - 1]["start"], data[len(data) - 1]["stop"]) == (0, 3)


def test_a_manifest_lists_the_files_a_folder_encode_finished(folder):
    from vtok.folder import Record

    manifest = folder / "manifest.jsonl"
    records = [
        Record("x.mp4", 1, 0.0, "b.vtok", "failed", error="broken"),
        Record("y.mp4", 1, 0.0, "gone.vtok", "failed", error="broken"),
        Record("z.mp4", 1, 0.0, "sub/c.vtok", "ok"),
        Record("x.mp4", 1, 0.0, "b.vtok", "ok"),  # a later run redid it: the last record counts
    ]
    manifest.write_text("\n".join(r.to_json() for r in records) + "\n{torn")
    with TokenWindows(manifest, frames=3) as data:
        assert data.files == [folder / "b.vtok", folder / "sub" / "c.vtok"] and len(data) == 3 + 1
    manifest.write_text(json.dumps({"path": "b.vtok"}))
    with pytest.raises(vtok.VtokError, match=re.escape(f"{manifest}: holds no manifest records")):
        TokenWindows(manifest, frames=3)


def test_pad_batch_pads_tokens_and_blocks_and_gives_the_lengths(folder):
    with TokenWindows(folder, frames=6, partial=True) as data:
        items = [data[i] for i in range(len(data))]
    assert [(it["start"], it["stop"]) for it in items] == [(0, 6), (6, 12), (12, 18), (18, 20), (0, 6), (6, 9), (0, 3)]
    batch = pad_batch(items[2:6], pad=-7)
    lengths = [len(it["tokens"]) for it in items[2:6]]
    assert batch["lengths"].tolist() == lengths and batch["tokens"].shape == (4, max(lengths))
    assert batch["blocks"].tolist() == [3, 1, 3, 2] and batch["indices"].shape == (4, 3, 6, 10)
    for row, it in zip(range(4), items[2:6], strict=True):
        n, length = len(it["indices"]), len(it["tokens"])
        assert (
            np.array_equal(batch["tokens"][row, :length], it["tokens"]) and (batch["tokens"][row, length:] == -7).all()
        )
        assert np.array_equal(batch["keep"][row, :n], it["keep"]) and not batch["keep"][row, n:].any()
        assert (batch["tile_levels"][row, n:] == -1).all() and (batch["block_lengths"][row, n:] == 0).all()
    assert batch["path"][1].endswith("a.vtok") and batch["start"].tolist() == [12, 18, 0, 6]
    _write(folder / "wide.vtok", 4, width=80)
    with TokenWindows(folder / "wide.vtok", frames=4) as wide, pytest.raises(ValueError, match="different grids"):
        pad_batch([items[0], wide[0]])


def test_a_dataloader_with_two_workers_gives_what_the_dataset_does(folder):
    import torch
    from torch.utils.data import DataLoader

    from vtok.data import TokenDataset, collate

    data = TokenDataset(folder, frames=4)
    assert data._readers == {}  # no file is opened until a window is read
    expected = pad_batch([data[i] for i in range(len(data))])  # opens files here, before the workers fork
    seen = {}
    for batch in DataLoader(data, batch_size=3, num_workers=2, collate_fn=collate, shuffle=True):
        assert batch["tokens"].dtype == torch.int64 and batch["keep"].dtype == torch.bool
        for row, (path, start) in enumerate(zip(batch["path"], batch["start"].tolist(), strict=True)):
            seen[path, start] = batch["tokens"][row, : batch["lengths"][row]].numpy()
    assert len(seen) == len(data)
    for row, (path, start) in enumerate(zip(expected["path"], expected["start"].tolist(), strict=True)):
        assert np.array_equal(seen[path, start], expected["tokens"][row, : expected["lengths"][row]])
    data.close()


def test_the_numpy_loader_needs_no_torch(folder):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import vtok.data\n"
        f"batches = list(vtok.data.TokenWindows({str(folder)!r}, frames=4).batches(3, shuffle=True, seed=0))\n"
        "print(len(batches), sum(len(b['path']) for b in batches), batches[0]['tokens'].dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "7", "int64"]


def test_a_damaged_file_is_named_by_its_path(folder):
    good = (folder / "a.vtok").read_bytes()
    (folder / "sub" / "cut.vtok").write_bytes(good[: len(good) // 2])
    with pytest.raises(ContainerError, match="^" + re.escape(f"{folder / 'sub' / 'cut.vtok'}: truncated")):
        TokenWindows(folder, frames=4)
    (folder / "sub" / "cut.vtok").unlink()
    damaged = bytearray(good)
    chunks_at = 16 + int.from_bytes(good[12:16], "little") + 4  # after the preamble, header and its CRC
    damaged[chunks_at + 20] ^= 0xFF  # inside the first block chunk: found when a window there is read
    (folder / "a.vtok").write_bytes(bytes(damaged))
    with TokenWindows(folder, frames=4) as data:
        with pytest.raises(ContainerError, match="^" + re.escape(f"{folder / 'a.vtok'}: checksum mismatch")):
            data[0]
        assert data[6]["path"] == str(folder / "b.vtok")


def test_a_new_process_opens_its_own_files(folder, monkeypatch):
    """A forked worker would share the parent's file positions: it must not use the parent's handles."""
    import os

    data = TokenWindows(folder, frames=4)
    data[0]
    parent = data._readers[0]
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)
    child = data._reader(0)
    assert child is not parent and not parent._f.closed  # the parent's stays open, for the parent
    child.close()
    parent.close()

"""The `.vtok` reader against hostile bytes (fuzz/README.md): inputs the fuzzer found, crafted
edge cases, a seeded mutation run over the seed corpus, and a short atheris run when it is installed.
Whatever the bytes, reading raises ContainerError or nothing."""

import io
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from fractions import Fraction

import numpy as np
import pytest
from conftest import DATA, ROOT, load_script

from vtok import ContainerError
from vtok.format import MAGIC, Header, VtokReader
from vtok.format.chunks import INDEX_ENTRY, PREAMBLE, TRAILER, pack_chunk

FUZZ = ROOT / "fuzz"
SEEDS = sorted((FUZZ / "corpus").glob("*.vtok"))
FOUND = sorted((DATA / "fuzz").glob("*.vtok"))

fuzz_reader = load_script(FUZZ / "fuzz_reader.py")


def read_all(data: bytes) -> None:
    """Open, verify and read every block, state and the audio; the first failure propagates."""
    with VtokReader(io.BytesIO(data)) as r:
        r.verify()
        list(r.states())
        r.audio()


@pytest.mark.parametrize("path", FOUND, ids=[p.name for p in FOUND])
def test_inputs_the_fuzzer_found_give_a_clean_error(path):
    with pytest.raises(ContainerError):
        read_all(path.read_bytes())


def assemble(header: Header, chunks: list[tuple[int, int, bytes]]) -> bytes:
    """A file of `header` and BLKS chunks given as (first block, block count, payload)."""
    head = header.to_bytes()
    out = PREAMBLE.pack(MAGIC, header.version, 0, len(head)) + head + struct.pack("<I", zlib.crc32(head))
    entries = []
    for first, n, payload in chunks:
        entries.append((len(out), first, n))
        out += pack_chunk(b"BLKS", payload)
    index_at = len(out)
    out += pack_chunk(b"INDX", struct.pack("<I", len(entries)) + np.array(entries, INDEX_ENTRY).tobytes())
    return out + TRAILER.pack(index_at, b"VTOKEND\x00")


def test_a_deeply_nested_header_is_a_clean_error():
    head = b'{"model":' + b"[" * 100_000
    data = PREAMBLE.pack(MAGIC, 2, 0, len(head)) + head + struct.pack("<I", zlib.crc32(head))
    with pytest.raises(ContainerError, match="malformed"):
        read_all(data + bytes(32))


# The largest grid the format allows, 4096 blocks in one chunk: up to about 140 GB decompressed.
BIG = Header(
    model="m", model_sha256="ab" * 32, model_config={}, quantizer={"kind": "fsq", "levels": [8, 8, 8, 5, 5, 5]},
    codebook_size=64000, block_frames=1, width=16384, height=16384, frames=4096, rate=Fraction(30),
    token_stride=4, levels=4,
)  # fmt: skip


def _zstd_head(descriptor: int, size_field: bytes) -> bytes:
    """A zstd frame head (single segment) and one empty last raw block."""
    return struct.pack("<IB", 0xFD2FB528, descriptor) + size_field + (1).to_bytes(3, "little")


@pytest.mark.parametrize(
    "payload, verifies",
    [
        (_zstd_head(0x00, b"\x00"), False),  # no content size: it must not be taken as "the most allowed"
        (_zstd_head(0xE0, struct.pack("<Q", 1 << 40)), False),  # claims a terabyte: beyond what 4096 blocks take
        (_zstd_head(0xE0, struct.pack("<Q", 10_000_000_000)), True),  # a size they can take, but no data
    ],
    ids=["unstated", "too-large", "empty"],
)
def test_a_block_chunk_never_allocates_what_it_only_claims(payload, verifies):
    data = assemble(BIG, [(0, 4096, payload)])
    assert len(data) < 1000
    with VtokReader(io.BytesIO(data)) as r:
        if verifies:
            assert r.verify() == 2
        else:
            with pytest.raises(ContainerError, match="state"):
                r.verify()
        tracemalloc.start()
        try:
            with pytest.raises(ContainerError, match="BLKS chunk at"):
                r.block(4095)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20


def mutate(rng: np.random.Generator, data: bytes, others: list[bytes]) -> bytes:
    """One random edit: flip bits, write a telling integer, insert, delete, cut, or splice in another
    file's tail. Four in five land after the header, which is most of a small file's bytes."""
    b = bytearray(data)
    body = PREAMBLE.size + PREAMBLE.unpack_from(data)[3] + 4 if len(data) >= PREAMBLE.size else 0
    low = body if body < len(b) and rng.random() < 0.8 else 0
    at = int(rng.integers(low, len(b) + 1))
    kind = rng.choice(6, p=[0.35, 0.25, 0.1, 0.1, 0.05, 0.15])
    if kind == 0 and at < len(b):
        b[at] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        size = int(rng.choice([1, 2, 4, 8]))
        value = int(rng.choice([0, 1, 2, 255, 4095, 4096, 65535, 1 << 31, (1 << 32) - 1, 1 << 40, -1]))
        b[at : at + size] = (value % (1 << 8 * size)).to_bytes(size, "little")
    elif kind == 2:
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
    elif kind == 3:
        del b[at : at + int(rng.integers(1, 65))]
    elif kind == 4:
        del b[at:]
    else:
        other = others[int(rng.integers(len(others)))]
        b[at:] = other[int(rng.integers(len(other) + 1)) :]
    return bytes(b)


def test_seeded_mutations_of_the_corpus_raise_only_container_errors():
    """8000 edits of the seed files, each read as it is and with its checksums recomputed."""
    seeds = [p.read_bytes() for p in SEEDS]
    rng = np.random.default_rng(2024)
    for n in range(8000):
        data = seeds[n % len(seeds)]
        for _ in range(int(rng.integers(1, 4))):
            data = mutate(rng, data, seeds)
        try:
            fuzz_reader.test_one_input(data)
        except Exception as e:
            raise AssertionError(f"mutation {n} ({len(data)} bytes): {e!r}") from e


def test_a_short_atheris_run_finds_nothing(tmp_path):
    pytest.importorskip("atheris")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["-atheris_runs=3000", "-seed=1", "-timeout=10", "-rss_limit_mb=2048", "-max_len=8192"]
    args += [f"-dict={FUZZ / 'vtok.dict'}", f"-artifact_prefix={tmp_path}/"]
    r = subprocess.run(
        [sys.executable, FUZZ / "fuzz_reader.py", tmp_path, FUZZ / "corpus", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and "Done 3000" in r.stderr, r.stderr[-3000:]

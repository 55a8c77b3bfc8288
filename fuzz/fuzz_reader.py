"""Coverage-guided fuzzing of the `.vtok` reader with atheris (pip install -e ".[fuzz]").

    python fuzz/fuzz_reader.py /tmp/vtok-corpus fuzz/corpus -atheris_runs=100000 -timeout=10 -rss_limit_mb=2048

(run from the repository root; libFuzzer adds the inputs it finds to the first folder, so keep it
out of the repository). Each input is read as a `.vtok` file from memory twice: as it is, and
with every checksum it carries recomputed, so that mutations also reach the parsing behind the
CRCs. Reading means: the header, `verify()`, every block, every state, `block(i)` for the first,
middle and last i, the tokens of those blocks' first frames (`reader[t]`), and `audio()`. The
only exception allowed out is ContainerError; any other exception, an input that runs past
-timeout, or memory past the address-space bound set below (MemoryError) is a bug. Without
atheris, tests/test_fuzz.py drives the same target with seeded mutations.
"""

import io
import resource
import struct
import sys
import zlib

ADDRESS_SPACE = 4 << 30  # bytes: Python, numpy and libFuzzer take about 1 GiB of it before any input

_PREAMBLE = struct.Struct("<8sHHI")
_CHUNK_HEAD = struct.Struct("<4sIQ")


def fix_checksums(data: bytes) -> bytes:
    """`data` with the header CRC and the CRC of every chunk that can be found recomputed.

    Follows the layout as far as it goes (preamble, header, then chunk after chunk) and leaves the
    rest as it is; no other byte changes.
    """
    out = bytearray(data)
    if len(out) < _PREAMBLE.size:
        return data
    n = _PREAMBLE.unpack_from(out)[3]
    pos = _PREAMBLE.size + n
    if pos + 4 > len(out):
        return data
    struct.pack_into("<I", out, pos, zlib.crc32(out[_PREAMBLE.size : pos]))
    pos += 4
    while pos + _CHUNK_HEAD.size <= len(out):
        kind, _, length = _CHUNK_HEAD.unpack_from(out, pos)
        end = pos + _CHUNK_HEAD.size + length
        if end > len(out):
            break
        payload = bytes(out[pos + _CHUNK_HEAD.size : end])
        struct.pack_into("<I", out, pos + 4, zlib.crc32(payload, zlib.crc32(kind)))
        pos = end
    return bytes(out)


def read_everything(data: bytes) -> None:
    """Read `data` as a `.vtok` file in every way the reader offers; only ContainerError may escape
    a step, and the next step runs anyway (so a failing verify still lets the blocks be read)."""
    from vtok.errors import ContainerError
    from vtok.format import VtokReader

    try:
        reader = VtokReader(io.BytesIO(data))
    except ContainerError:
        return
    with reader:
        n = reader.header.blocks
        picks = sorted({0, n // 2, n - 1}) if n else []
        steps = [reader.verify, lambda: list(reader.blocks()), lambda: list(reader.states()), reader.audio]
        steps += [lambda i=i: reader.block(i) for i in picks]
        steps += [lambda i=i: reader[i * reader.header.block_frames] for i in picks]  # random access: runs walked back
        for step in steps:
            try:
                step()
            except ContainerError:
                pass


def test_one_input(data: bytes) -> None:
    read_everything(data)
    fixed = fix_checksums(data)
    if fixed != data:
        read_everything(fixed)


def main() -> None:
    import atheris

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    with atheris.instrument_imports(include=["vtok"]):
        import vtok.format  # noqa: F401  (instrumented: every vtok module the reader uses)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

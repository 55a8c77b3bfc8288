import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import default_grid
from typer.testing import CliRunner

from vtok.cli.commands import app
from vtok.format import VtokReader, VtokWriter
from vtok.media.video import probe, read_frames

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """The fixture clip encoded once with the default model at threshold 0.003."""
    from pathlib import Path

    clip = Path(__file__).parent / "data" / "dog_250x138.mp4"
    out = tmp_path_factory.mktemp("enc") / "dog.vtok"
    r = run("encode", clip, "-o", out, "--threshold", "0.003", "--device", "cpu")
    assert r.exit_code == 0, r.output
    return clip, out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_encode_inspect_decode_end_to_end(encoded, tmp_path):
    clip, vt = encoded
    r = run("inspect", vt, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["width"], s["height"], s["frames"], s["rate"]) == (250, 138, 22, "30000/1001")
    rows, cols = default_grid(138, 250)
    assert s["blocks"] == 6 and s["grid"] == [rows, cols] and s["full_budget_tokens"] == 6 * rows * cols
    assert 0 < s["tokens"] < s["full_budget_tokens"] and s["savings"] > 1
    assert s["tokens"] == round(s["full_budget_tokens"] * (1 - s["rlt_share"] - s["elastic_share"]))
    assert s["tokens_per_frame"]["full_budget"] == rows * cols / 4
    assert s["checksums"] == "ok" and s["audio"] is True
    assert 0 < s["bits_per_pixel"] < 1 and s["compression_ratio"] > 24
    text = run("inspect", vt, "--plot", tmp_path / "tokens.png")
    assert text.exit_code == 0 and "tokens" in text.stdout and "per frame" in text.stdout
    assert (tmp_path / "tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = tmp_path / "dog.mp4"
    r = run("decode", vt, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    info = probe(out)
    assert (info.width, info.height, info.rate, info.has_audio) == (250, 138, clip and probe(clip).rate, True)
    original = np.stack(list(read_frames(clip)))
    decoded = np.stack(list(read_frames(out)))
    assert decoded.shape == original.shape
    assert psnr(original, decoded) > 22  # a trained model, not noise


@pytest.mark.parametrize("threshold", [0.003, 0.01])
def test_threshold_holds_on_every_block_of_a_real_clip(encoded, tmp_path, threshold):
    clip, _ = encoded
    vt = tmp_path / "t.vtok"
    assert run("encode", clip, "-o", vt, "--threshold", threshold, "--device", "cpu").exit_code == 0
    out = tmp_path / "exact.mp4"
    assert run("decode", vt, "-o", out, "--lossless", "--device", "cpu").exit_code == 0
    original = np.stack(list(read_frames(clip))).astype(np.float64) / 127.5 - 1
    decoded = np.stack(list(read_frames(out))).astype(np.float64) / 127.5 - 1
    with VtokReader(vt) as r:
        flagged = {b.index for b in r.blocks() if b.missed_threshold}
        assert r.header.threshold == threshold
    for b in range(0, 22, 4):
        if b // 4 in flagged:
            continue
        mse = np.mean((original[b : b + 4] - decoded[b : b + 4]) ** 2)
        assert mse <= threshold * 1.01, (b // 4, mse)  # 1%: the 8-bit rounding of the decoded frames


def test_full_budget_without_runs_stores_every_token(encoded, tmp_path):
    clip, _ = encoded
    vt = tmp_path / "full.vtok"
    assert run("encode", clip, "-o", vt, "--threshold", "0", "--no-rlt", "--device", "cpu").exit_code == 0
    s = json.loads(run("inspect", vt, "--json").stdout)
    rows, cols = default_grid(138, 250)
    assert s["tokens"] == s["full_budget_tokens"] == 6 * rows * cols and s["rlt_share"] == 0


def test_trimmed_file_is_smaller_and_decodes(encoded, tmp_path):
    clip, _ = encoded
    full, small = tmp_path / "full.vtok", tmp_path / "small.vtok"
    assert run("encode", clip, "-o", full, "--threshold", "0", "--device", "cpu").exit_code == 0
    r = run("trim", full, "-o", small, "--max-tokens", "40")
    assert r.exit_code == 0, r.output
    before = json.loads(run("inspect", full, "--json").stdout)
    after = json.loads(run("inspect", small, "--json").stdout)
    assert after["tokens"] < before["tokens"] and small.stat().st_size < full.stat().st_size
    assert max(after["tokens_per_frame_by_block"]) <= 40  # the short last block too, over its 2 frames
    out = tmp_path / "small.mp4"
    assert run("decode", small, "-o", out, "--lossless", "--device", "cpu").exit_code == 0
    # the same pixels as the model decoding the full file's codes at the trimmed keep masks
    with VtokReader(full) as a, VtokReader(small) as b:
        indices = np.stack([s.indices for s in a.states()])
        keep = np.stack([s.keep for s in b.states()])
    decoded = np.stack(list(read_frames(out)))
    assert decoded.shape[0] == 22 and np.array_equal(decoded, model_frames(b.header, indices, keep))


def test_rlt_covers_a_static_video(tmp_path):
    import av

    src = tmp_path / "static.mp4"
    rng = np.random.default_rng(0)
    still = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264rgb", rate=25, options={"crf": "0"})
        s.width, s.height, s.pix_fmt = 96, 64, "rgb24"
        for _ in range(160):
            c.mux(s.encode(av.VideoFrame.from_ndarray(still, format="rgb24")))
        c.mux(s.encode(None))
    vt = tmp_path / "static.vtok"
    assert run("encode", src, "-o", vt, "--device", "cpu").exit_code == 0
    st = json.loads(run("inspect", vt, "--json").stdout)
    assert st["blocks"] == 40
    assert st["rlt_share"] >= 0.95  # all but the first block is one long run


def model_frames(h, indices: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """What the default model decodes from indices int64 (blocks, rows, cols) at keep bool (same shape):
    uint8 (h.frames, H, W, 3)."""
    import torch

    from vtok.model.pixels import to_frames
    from vtok.model.registry import load

    model = load("vtok-fsq", "cpu")
    with torch.inference_mode():
        keyframes = [h.is_keyframe(i) for i in range(len(indices))]
        y, _ = model.tokenizer.decode_in_order(torch.from_numpy(indices), torch.from_numpy(keep), keyframes)
    return to_frames(y, h.height, h.width).reshape(-1, h.height, h.width, 3)[: h.frames]


def test_lossless_decode_matches_the_model_output(encoded, tmp_path):
    _, vt = encoded
    a = tmp_path / "a.mp4"
    assert run("decode", vt, "-o", a, "--lossless", "--device", "cpu").exit_code == 0
    with VtokReader(vt) as reader:
        h = reader.header
        states = list(reader.states())
    expected = model_frames(h, np.stack([s.indices for s in states]), np.stack([s.keep for s in states]))
    decoded = np.stack(list(read_frames(a)))
    assert decoded.shape == expected.shape and np.array_equal(decoded, expected)


def test_encode_is_deterministic(encoded, tmp_path):
    clip, vt = encoded
    again = tmp_path / "again.vtok"
    assert run("encode", clip, "-o", again, "--threshold", "0.003", "--device", "cpu").exit_code == 0
    assert again.read_bytes() == vt.read_bytes()


def one_line_error(r, code=1):
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("vtok: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output


def test_bad_inputs_give_one_line_and_exit_1(encoded, tmp_path):
    clip, vt = encoded
    one_line_error(run("encode", tmp_path / "missing.mp4", "-o", tmp_path / "x.vtok"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 500)
    one_line_error(run("encode", junk, "-o", tmp_path / "x.vtok"))
    one_line_error(run("decode", junk, "-o", tmp_path / "x.mp4"))
    one_line_error(run("inspect", tmp_path / "missing.vtok"))
    data = vt.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.vtok"
        bad.write_bytes(data[:cut])
        one_line_error(run("inspect", bad))
        one_line_error(run("decode", bad, "-o", tmp_path / "x.mp4"))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.vtok").write_bytes(bytes(flipped))
    one_line_error(run("decode", tmp_path / "flip.vtok", "-o", tmp_path / "x.mp4"))
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.vtok").exists()


def test_unknown_model_is_refused(encoded, tmp_path):
    clip, vt = encoded
    with VtokReader(vt) as r:
        from dataclasses import replace

        header = replace(r.header, model="vtok-nonexistent")
        blocks = list(r.blocks())
        states = list(r.states())
    other = tmp_path / "other.vtok"
    with VtokWriter(other, header) as w:
        for b, st in zip(blocks, states, strict=True):
            w.write_block(st.indices, frames=b.frames, run_mask=b.run_mask, tile_levels=b.tile_levels, flags=b.flags)
        w.close()
    r = run("decode", other, "-o", tmp_path / "x.mp4")
    one_line_error(r)
    assert "vtok-nonexistent" in r.stderr
    r = run("encode", clip, "-o", tmp_path / "y.vtok", "--model", "nope")
    one_line_error(r)
    assert "unknown model 'nope'" in r.stderr and not (tmp_path / "y.vtok").exists()


def test_outputs_are_protected(encoded, tmp_path):
    clip, vt = encoded
    one_line_error(run("decode", vt, "-o", vt), code=2)  # not a video extension, let alone the input
    named_as_video = tmp_path / "dog.mp4"
    named_as_video.write_bytes(vt.read_bytes())
    one_line_error(run("decode", named_as_video, "-o", named_as_video))  # output is the input
    one_line_error(run("encode", clip, "-o", clip))
    before = vt.read_bytes()
    one_line_error(run("encode", clip, "-o", vt))  # exists, no --force
    assert vt.read_bytes() == before
    one_line_error(run("encode", clip, "-o", tmp_path / "no" / "such" / "dir.vtok"))
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        import os

        if os.access(readonly, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: cannot make an unwritable folder")
        one_line_error(run("encode", clip, "-o", readonly / "x.vtok"))
    finally:
        readonly.chmod(0o700)


def test_usage_errors_exit_2(encoded, tmp_path):
    assert run("encode").exit_code == 2
    assert run("encode", "a.mp4", "-o", "b.vtok", "--threshold", "-1").exit_code == 2
    assert run("decode", "a.vtok", "-o", "b.mp4", "--crf", "99").exit_code == 2
    assert run("frobnicate").exit_code == 2
    clip, vt = encoded  # the library's own usage errors, checked before any work
    r = run("encode", clip, "-o", vt, "--device", "foo")
    one_line_error(r, code=2)
    assert "--device" in r.stderr


def test_library_messages_name_no_flags_and_the_cli_adds_them(encoded, tmp_path):
    from vtok.codec import encode_file
    from vtok.errors import OutputError

    clip, vt = encoded
    with pytest.raises(OutputError) as e:
        encode_file(src=clip, dst=vt)
    assert "--" not in str(e.value) and e.value.option == "force"
    r = run("encode", clip, "-o", vt)
    one_line_error(r)
    assert r.stderr.rstrip().endswith("(see --force)")


def test_audio_that_mp4_cannot_carry_is_reencoded_to_aac(tmp_path):
    import av

    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as c:
        video = c.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = c.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 30 * i, np.uint8), format="rgb24")
            c.mux(video.encode(frame))
        tone = (3000 * np.sin(np.arange(16000 // 3) / 5)).astype(np.int16)[None]
        samples = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        samples.sample_rate = 16000
        c.mux(audio.encode(samples))
        c.mux(video.encode(None))
        c.mux(audio.encode(None))
    vt, out = tmp_path / "a.vtok", tmp_path / "a.mp4"
    assert run("encode", src, "-o", vt, "--device", "cpu", "--threshold", "0").exit_code == 0
    assert run("decode", vt, "-o", out, "--device", "cpu").exit_code == 0
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert len(list(c.decode(video=0))) == 8


def test_real_process_has_no_traceback(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "vtok", "decode", str(tmp_path / "none.vtok"), "-o", str(tmp_path / "o.mp4")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert p.stdout == ""


def test_models_lists_the_default(tmp_path):
    r = run("models", "--json")
    assert r.exit_code == 0
    assert "vtok-fsq" in [m["name"] for m in json.loads(r.stdout)]


def test_inspect_verify_checks_without_decoding(tmp_path):
    from test_container import write_small

    good = tmp_path / "a.vtok"
    write_small(good)
    r = run("inspect", good, "--verify")
    assert r.exit_code == 0 and r.stdout == "OK: 4 chunks, checksums and index agree\n", r.output
    assert json.loads(run("inspect", good, "--verify", "--json").stdout)["chunks"] == 4
    data = bytearray(good.read_bytes())
    index_at = int.from_bytes(data[-16:-8], "little")
    last = int.from_bytes(data[index_at + 36 : index_at + 44], "little")  # index entry 1: the second block chunk
    data[last + 20] ^= 1  # inside its payload, which opening does not read
    bad = tmp_path / "bad.vtok"
    bad.write_bytes(bytes(data))
    r = run("inspect", bad, "--verify")
    one_line_error(r)
    assert "checksum mismatch in BLKS chunk at" in r.stderr and "index entry 1, first block 2" in r.stderr
    one_line_error(run("inspect", good, "--verify", "--plot", tmp_path / "x.png"), code=2)

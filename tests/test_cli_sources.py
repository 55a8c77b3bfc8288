"""Nothing lost, nothing silently changed: rotation survives the round trip, every change made to a
source is a warning and a note in the file, and decode writes the format its output name asks for."""

import json

import av
import numpy as np
import pytest
from conftest import cut, make_clip
from typer.testing import CliRunner

from vtok.cli.commands import app
from vtok.format import MAGIC
from vtok.media.video import SourceReport, read_frames

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def encode(src, out):
    return run("encode", src, "-o", out, "--device", "cpu", "--threshold", "0")


def warnings_of(r) -> list[str]:
    """The warning lines of a run, after checking that they are all stderr holds."""
    lines = r.stderr.splitlines()
    assert all(line.startswith("vtok: warning: ") for line in lines), r.stderr
    return [line.removeprefix("vtok: warning: ") for line in lines]


def test_rotation_survives_encode_inspect_and_decode(tmp_path):
    src, vt, out = make_clip(tmp_path / "phone.mp4", rotation=90), tmp_path / "p.vtok", tmp_path / "p.mp4"
    r = encode(src, vt)
    assert r.exit_code == 0 and warnings_of(r) == [], r.output  # kept, not changed: nothing to warn about
    s = json.loads(run("inspect", vt, "--json").stdout)
    assert (s["rotation"], s["width"], s["height"], s["source_notes"]) == (90, 64, 48, [])
    assert "shown turned 90° clockwise" in run("inspect", vt).stdout
    assert run("decode", vt, "-o", out, "--device", "cpu").exit_code == 0
    report = SourceReport()
    frames = list(read_frames(out, report))
    assert report.rotation == 90 and frames[0].shape == (48, 64, 3)  # the display matrix, pixels as they were


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("vfr.mkv", dict(pts_ms=[42 * i for i in range(6)] + [300 + 100 * i for i in range(6)]), "variable frame rate"),
        ("alpha.mkv", dict(codec="ffv1", pix_fmt="yuva420p"), "alpha channel dropped (pixel format yuva420p)"),
        ("long.mp4", dict(frames=60, options={"movflags": "+faststart"}), "the source may be truncated"),
    ],
)
def test_a_changed_source_warns_on_stderr_and_is_noted_in_the_file(tmp_path, name, make, expected):
    src = make_clip(tmp_path / name, **make)
    if name == "long.mp4":
        src = cut(src, 0.5)
    vt = tmp_path / "x.vtok"
    r = encode(src, vt)
    assert r.exit_code == 0, r.output  # the frames that were read are still worth having
    (warning,) = warnings_of(r)
    assert warning.startswith(f"{src}: ") and expected in warning
    s = json.loads(run("inspect", vt, "--json").stdout)
    assert s["source_notes"] == [warning.removeprefix(f"{src}: ")]
    assert s["frames"] < 60 if name == "long.mp4" else s["frames"] == 12
    assert f"note       {s['source_notes'][0]}" in run("inspect", vt).stdout


def test_the_library_warns_through_a_callable_or_as_vtok_warnings(tmp_path):
    from vtok import VtokWarning
    from vtok.codec import decode_file, encode_file

    src = make_clip(tmp_path / "a.mkv", codec="ffv1", pix_fmt="yuva420p", frames=4)
    with pytest.warns(VtokWarning, match="alpha channel dropped") as caught:
        encode_file(src=src, dst=tmp_path / "a.vtok", device="cpu")
    assert len(caught) == 1 and caught[0].filename == __file__  # attributed to the caller
    said = []
    encode_file(src=src, dst=tmp_path / "a.vtok", device="cpu", force=True, warn=said.append)
    decode_file(src=tmp_path / "a.vtok", dst=tmp_path / "a.webm", device="cpu", warn=said.append)
    assert len(said) == 1 and "alpha channel dropped" in said[0]


def test_a_source_with_no_readable_frames_is_an_error(tmp_path):
    src = cut(make_clip(tmp_path / "a.mp4", frames=60, options={"movflags": "+faststart"}), 0.05)
    r = encode(src, tmp_path / "x.vtok")
    assert r.exit_code == 1 and r.stderr.startswith("vtok: error: ") and r.stderr.count("\n") == 1, r.output
    assert not (tmp_path / "x.vtok").exists()


def test_encode_warns_when_the_output_name_suggests_a_video(tmp_path):
    src = make_clip(tmp_path / "a.mp4", frames=4)
    r = encode(src, tmp_path / "out.mp4")
    assert r.exit_code == 0
    assert warnings_of(r) == [f"{tmp_path / 'out.mp4'}: written as a .vtok file whatever its extension "
                              "(decode it to get a video)"]  # fmt: skip
    assert (tmp_path / "out.mp4").read_bytes()[:8] == MAGIC


def source_with_pcm_audio(path):
    """A 12-frame 64x48 clip with 16-bit PCM audio, which only some containers carry as it is."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = c.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for i in range(12):
            c.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        samples.sample_rate = 16000
        c.mux(audio.encode(samples))
        c.mux(video.encode(None))
        c.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def pcm_vtok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pcm")
    vt = folder / "a.vtok"
    assert encode(source_with_pcm_audio(folder / "a.mkv"), vt).exit_code == 0
    return vt


@pytest.mark.parametrize(
    "name,fmt,video,audio",
    [
        ("o.mp4", "mp4", "h264", "aac"),
        ("o.mov", "mov", "h264", "pcm_s16le"),
        ("o.mkv", "matroska", "h264", "pcm_s16le"),
        ("o.webm", "webm", "vp9", "opus"),
    ],
)
def test_decode_writes_the_format_its_extension_names(pcm_vtok, tmp_path, name, fmt, video, audio):
    out = tmp_path / name
    r = run("decode", pcm_vtok, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    reencoded = [f"{out}: audio re-encoded from pcm_s16le to {audio}: {fmt} files do not carry pcm_s16le"]
    assert warnings_of(r) == ([] if audio == "pcm_s16le" else reencoded)
    with av.open(str(out)) as c:
        assert fmt in c.format.name.split(",")
        assert c.streams.video[0].codec_context.name == video and c.streams.audio[0].codec_context.name == audio
        assert len(list(c.decode(video=0))) == 12


def test_lossless_decode_is_exact_in_every_format(pcm_vtok, tmp_path):
    decoded = {}
    for ext in ("mp4", "mkv", "mov", "webm"):
        out = tmp_path / f"o.{ext}"
        assert run("decode", pcm_vtok, "-o", out, "--lossless", "--device", "cpu").exit_code == 0
        decoded[ext] = np.stack(list(read_frames(out)))
    assert all(np.array_equal(decoded["mp4"], d) for d in decoded.values())


@pytest.mark.parametrize(
    "output,message", [("o.avi", "o.avi: unknown video file extension"), ("-", "cannot write video to standard output")]
)
def test_decode_refuses_other_outputs_before_any_work(tmp_path, monkeypatch, output, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.vtok").write_bytes(b"not read")  # the output is refused before the input is read
    r = run("decode", tmp_path / "in.vtok", "-o", output)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert r.stderr.startswith(f"vtok: error: {message}")
    assert ".mp4, .mov, .mkv, .webm (see --output)" in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["in.vtok"]

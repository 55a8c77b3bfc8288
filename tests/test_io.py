from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import cut, make_clip

from vtok import MediaError
from vtok.errors import UsageError
from vtok.media.video import SourceReport, VideoWriter, extract_audio, output_format, probe, read_frames


def make_video(path, *, codec, pix_fmt, rate, frames, width, height, fmt=None):
    """Draw a moving gradient in code and encode it with PyAV."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        yy, xx = np.mgrid[:height, :width]
        for t in range(frames):
            img = np.stack([(xx * 4 + t * 9) % 256, (yy * 4) % 256, np.full_like(xx, t * 5 % 256)], -1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)


@pytest.mark.parametrize(
    "name,codec,pix_fmt,fmt,rate",
    [
        ("a.avi", "mpeg4", "yuv420p", "avi", Fraction(25)),
        ("b.mkv", "libx264", "yuv444p", "matroska", Fraction(30000, 1001)),
        ("c.mp4", "libx264", "yuvj420p", "mp4", Fraction(483, 16)),
    ],
)
def test_pyav_round_trip_keeps_frame_count_and_rate(tmp_path, name, codec, pix_fmt, fmt, rate):
    src = tmp_path / name
    make_video(src, codec=codec, pix_fmt=pix_fmt, rate=rate, frames=37, width=66, height=50, fmt=fmt)
    info = probe(src)
    assert (info.width, info.height, info.rate) == (66, 50, rate)
    report = SourceReport()
    frames = list(read_frames(src, report))
    assert report == SourceReport(frames=37)  # an ordinary source: nothing to note
    assert len(frames) == 37 and frames[0].shape == (50, 66, 3) and frames[0].dtype == np.uint8
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=66, height=50, rate=info.rate) as w:
        for f in frames:
            w.write(f)
    assert probe(out).rate == rate
    back = list(read_frames(out))
    assert len(back) == 37
    assert np.abs(back[10].astype(int) - frames[10].astype(int)).mean() < 6


def test_h264_output_looks_ahead_20_frames(tmp_path):
    """x264 writes its settings into the stream: a shorter lookahead than preset medium's 40 keeps
    a 720p decode's memory down."""
    out = tmp_path / "x.mp4"
    with VideoWriter(out, width=32, height=32, rate=Fraction(24)) as w:
        for t in range(3):
            w.write(np.full((32, 32, 3), t * 40, np.uint8))
    assert b"rc_lookahead=20 " in out.read_bytes()


def test_lossless_writer_is_exact_and_odd_sizes_work(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (17, 23, 3), dtype=np.uint8) for _ in range(5)]
    out = tmp_path / "x.mp4"
    with VideoWriter(out, width=23, height=17, rate=Fraction(24), lossless=True) as w:
        for f in frames:
            w.write(f)
    back = list(read_frames(out))
    assert len(back) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    lossy = tmp_path / "y.mp4"
    with VideoWriter(lossy, width=23, height=17, rate=Fraction(24)) as w:  # odd size: yuv444p
        for f in frames:
            w.write(f)
    assert len(list(read_frames(lossy))) == 5


def test_real_clip_and_its_audio(clip, tmp_path):
    info = probe(clip)
    assert (info.width, info.height, info.rate, info.has_audio) == (250, 138, Fraction(30000, 1001), True)
    assert len(list(read_frames(clip))) == 22
    audio = extract_audio(clip)
    out = tmp_path / "o.mp4"
    with VideoWriter(out, width=250, height=138, rate=info.rate, audio=audio) as w:
        for f in read_frames(clip):
            w.write(f)
    assert probe(out).has_audio


def test_missing_and_non_video_files_raise_media_error(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(MediaError, match="not a video"):
        probe(junk)
    with pytest.raises(MediaError):
        probe(tmp_path)


def test_rotation_is_read_from_the_display_matrix_and_written_back(tmp_path):
    src = make_clip(tmp_path / "phone.mp4", rotation=90)
    report = SourceReport()
    frames = list(read_frames(src, report))
    assert report.rotation == 90 and report.notes == [] and frames[0].shape == (48, 64, 3)  # pixels as stored
    for ext, rotation in ((".mp4", 270), (".mov", 90), (".mkv", 180), (".webm", 90)):
        out = tmp_path / f"back{ext}"
        with VideoWriter(out, width=64, height=48, rate=Fraction(24), container_format=output_format(out),
                         rotation=rotation) as w:  # fmt: skip
            for f in frames:
                w.write(f)
        again = SourceReport()
        assert len(list(read_frames(out, again))) == 12 and again.rotation == rotation, ext


def test_variable_frame_rate_is_noted(tmp_path):
    steady = [round(i * 1000 / 24) for i in range(12)]  # 41 or 42 ms apart: constant, to the millisecond
    report = SourceReport()
    list(read_frames(make_clip(tmp_path / "cfr.mkv", pts_ms=steady), report))
    assert report.notes == []
    jumpy = steady[:6] + [250 + 100 * i for i in range(6)]
    report = SourceReport()
    assert len(list(read_frames(make_clip(tmp_path / "vfr.mkv", pts_ms=jumpy), report))) == 12
    assert report.notes == ["variable frame rate (frames 41.0 to 100.0 ms apart) made constant at 24 fps"]


@pytest.mark.parametrize("codec,pix_fmt,name", [("ffv1", "yuva420p", "a.mkv"), ("png", "rgba", "a.mov")])
def test_a_dropped_alpha_channel_is_noted(tmp_path, codec, pix_fmt, name):
    report = SourceReport()
    frames = list(read_frames(make_clip(tmp_path / name, codec=codec, pix_fmt=pix_fmt, frames=3), report))
    assert frames[0].shape == (48, 64, 3)
    assert report.notes == [f"alpha channel dropped (pixel format {pix_fmt}): frames are stored as RGB"]


def test_truncated_sources_give_their_readable_frames_and_a_note(tmp_path):
    whole = make_clip(tmp_path / "a.mp4", frames=60, options={"movflags": "+faststart"})
    report = SourceReport()
    assert 0 < len(list(read_frames(cut(whole, 0.5), report))) == report.frames < 60
    assert len(report.notes) == 1 and "source may be truncated" in report.notes[0]
    assert f"after {report.frames} frames" in report.notes[0]
    # a decoder that stops at an error mid-stream
    broken = cut(make_clip(tmp_path / "b.avi", codec="mjpeg", pix_fmt="yuvj420p", frames=20), 0.77)
    report = SourceReport()
    assert len(list(read_frames(broken, report))) == report.frames > 0
    assert report.notes == [
        f"decoding stopped at an error after {report.frames} frames (Invalid data found when processing input): "
        "the rest of the source is lost"
    ]
    with pytest.raises(MediaError, match="cannot be decoded"):  # without a report, an error is an error
        list(read_frames(broken))


def test_output_formats_follow_the_extension(tmp_path):
    assert [output_format(tmp_path / n) for n in ("a.mp4", "a.MOV", "a.mkv", "a.webm")] == [
        "mp4", "mov", "matroska", "webm"
    ]  # fmt: skip
    for name in ("a.avi", "a", "a.vtok"):
        with pytest.raises(UsageError, match=r"use one of \.mp4, \.mov, \.mkv, \.webm") as e:
            output_format(tmp_path / name)
        assert e.value.option == "dst"
    with pytest.raises(UsageError, match="standard output"):
        output_format("-")


@pytest.mark.parametrize(
    "name,video,audio", [("a.mp4", "h264", "aac"), ("a.mov", "h264", "aac"), ("a.mkv", "h264", "aac"),
                         ("a.webm", "vp9", "opus")]
)  # fmt: skip
def test_each_format_muxes_its_codecs_and_lossless_is_exact(clip, tmp_path, name, video, audio):
    frames = list(read_frames(clip))[:5]
    out = tmp_path / name
    with VideoWriter(out, width=250, height=138, rate=Fraction(30000, 1001), audio=extract_audio(clip),
                     container_format=output_format(out), lossless=True) as w:  # fmt: skip
        for f in frames:
            w.write(f)
    assert w.notes == ([] if audio == "aac" else ["audio re-encoded from aac to opus: webm files do not carry aac"])
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == video and c.streams.audio[0].codec_context.name == audio
    back = list(read_frames(out))
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    assert probe(out).rate == Fraction(30000, 1001)

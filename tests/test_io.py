from fractions import Fraction

import av
import numpy as np
import pytest

from vtok import MediaError
from vtok.media.video import VideoWriter, extract_audio, probe, read_frames


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
    frames = list(read_frames(src))
    assert len(frames) == 37 and frames[0].shape == (50, 66, 3) and frames[0].dtype == np.uint8
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=66, height=50, rate=info.rate) as w:
        for f in frames:
            w.write(f)
    assert probe(out).rate == rate
    back = list(read_frames(out))
    assert len(back) == 37
    assert np.abs(back[10].astype(int) - frames[10].astype(int)).mean() < 6


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

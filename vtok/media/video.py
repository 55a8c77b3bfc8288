"""Video in and out through PyAV, streamed one frame at a time so memory stays bounded."""

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vtok.errors import MediaError, UsageError

__all__ = ["VideoInfo", "SourceReport", "probe", "read_frames", "extract_audio", "output_format", "VideoWriter"]

# The files VideoWriter makes, by extension: the PyAV format name.
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# The encoders each format needs by default: video, then audio for what it cannot carry as it is.
_ENCODERS = {"mp4": ("libx264", "aac"), "mov": ("libx264", "aac"), "matroska": ("libx264", "aac"),
             "webm": ("libvpx-vp9", "libopus")}  # fmt: skip
# Audio codecs each format carries as they are; the rest is re-encoded. Matroska carries anything
# the AUDI chunk holds, since that chunk is itself a Matroska file.
_AUDIO_AS_IS = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be"},
    "webm": {"opus", "vorbis"},
}
_AUDIO_RATE = {"libopus": 48000}  # encoders that take only some sample rates (PyAV resamples)


@dataclass(frozen=True)
class VideoInfo:
    """What vtok needs to know about a source video before decoding it."""

    width: int
    height: int
    rate: Fraction  # average frames per second
    frames_hint: int  # frame count stated by the container; 0 when unknown, and never trusted
    duration_s: float
    has_audio: bool


@dataclass
class SourceReport:
    """What reading a source found besides its pixels; read_frames fills it in as it goes.

    rotation: degrees clockwise a player turns the frames to show them upright (0, 90, 180, 270),
    from the first frame's display matrix. notes: one short sentence for each way the frames read
    differ from the source: a variable frame rate, a dropped alpha channel, frames lost at its end.
    """

    frames: int = 0
    rotation: int = 0
    notes: list[str] = field(default_factory=list)


def _open(path: Path) -> "av.container.InputContainer":
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"{path}: not a video PyAV can read ({e.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: has no video stream")
    return container


def _rate(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def probe(path: Path) -> VideoInfo:
    """Read the stream headers of `path`; decodes no frames."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = _rate(stream)
        if not rate or stream.width <= 0 or stream.height <= 0:
            raise MediaError(f"{path}: video stream has no frame rate or size")
        duration = float(container.duration / av.time_base) if container.duration else 0.0
        return VideoInfo(
            width=stream.width,
            height=stream.height,
            rate=rate,
            frames_hint=int(stream.frames or 0),
            duration_s=duration,
            has_audio=bool(container.streams.audio),
        )


def read_frames(path: Path, report: SourceReport | None = None) -> Iterator[np.ndarray]:
    """Yield every frame of the first video stream as uint8 (H, W, 3) RGB, in presentation order.

    Without a `report`, a decoding error raises MediaError. With one, what the frames alone do not
    say is recorded there (SourceReport), and an error after the first frame ends the frames early
    and becomes a note: the frames before it are still good footage.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        watch = _Watch(stream, report) if report is not None else None
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                if watch is None or watch.report.frames == 0:
                    raise MediaError(f"{path}: video cannot be decoded ({e})") from None
                watch.stopped(e)
                break
            if watch is not None:
                watch.see(frame)
            yield frame.to_ndarray(format="rgb24")
        if watch is not None:
            watch.finish(_stated_seconds(stream))


def _stated_seconds(stream) -> float | None:
    """The duration the container states for `stream`, in seconds; None when it states none."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    try:  # Matroska states it in a tag per track, 'HH:MM:SS.nnnnnnnnn'
        h, m, s = stream.metadata["DURATION"].split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except (KeyError, ValueError):
        return None


class _Watch:
    """Follows the frames of one stream as they are decoded, and writes what it finds into a report.

    A variable frame rate is told from the timestamps: some interval between frames differs from
    the constant one they will be shown at by over a quarter of it (and over one timestamp tick).
    """

    def __init__(self, stream, report: SourceReport):
        self.report, self.tick = report, Fraction(stream.time_base)
        self.interval = 1 / (_rate(stream) or Fraction(1))
        self.first: Fraction | None = None
        self.last: Fraction | None = None
        self.shortest, self.longest = self.interval, self.interval
        self.failed = False

    def see(self, frame: "av.VideoFrame") -> None:
        r = self.report
        if r.frames == 0:
            r.rotation = round(-frame.rotation / 90) % 4 * 90  # PyAV's angle is counter-clockwise
            if any(c.is_alpha for c in frame.format.components):
                r.notes.append(f"alpha channel dropped (pixel format {frame.format.name}): frames are stored as RGB")
        r.frames += 1
        if frame.pts is None:
            return
        t = frame.pts * self.tick
        if self.last is not None:
            self.shortest, self.longest = min(self.shortest, t - self.last), max(self.longest, t - self.last)
        self.first = t if self.first is None else self.first
        self.last = t

    def stopped(self, error: "av.error.FFmpegError") -> None:
        self.failed = True
        reason = (error.strerror or str(error))[:120]  # FFmpeg's message, without errno and function
        self.report.notes.append(
            f"decoding stopped at an error after {self.report.frames} frames ({reason}): the rest of the source is lost"
        )

    def finish(self, stated_s: float | None) -> None:
        r, interval = self.report, self.interval
        slack = max(interval / 4, self.tick)
        if self.shortest < interval - slack or self.longest > interval + slack:
            ms = [f"{1000 * float(d):.1f}" for d in (self.shortest, self.longest)]
            r.notes.append(
                f"variable frame rate (frames {ms[0]} to {ms[1]} ms apart) made constant "
                f"at {float(1 / interval):.6g} fps"
            )
        if self.failed or stated_s is None or self.last is None:
            return
        ended = float(self.last + interval - min(self.first, 0))  # a positive start offset counts as time
        if ended < stated_s - 2 * float(interval):
            r.notes.append(
                f"the video ended at {ended:.2f} s of the {stated_s:.2f} s the file states, after {r.frames} "
                f"frames: the source may be truncated"
            )


def extract_audio(path: Path) -> bytes | None:
    """Copy the first audio stream of `path`, packets untouched, into an in-memory Matroska file.

    Returns None when there is no audio. The result is what the `.vtok` AUDI chunk stores.
    """
    with _open(path) as src:
        if not src.streams.audio:
            return None
        audio = src.streams.audio[0]
        buf = io.BytesIO()
        # bitexact: no muxing date or random track UIDs, so encoding twice gives the same bytes
        with av.open(buf, "w", format="matroska", options={"fflags": "+bitexact"}) as dst:
            out = dst.add_stream_from_template(audio)
            for packet in src.demux(audio):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = out
                dst.mux(packet)
        return buf.getvalue()


def output_format(path: Path) -> str:
    """The PyAV format name that the extension of `path` asks for (OUTPUT_FORMATS).

    Raises UsageError for any other extension, or standard output ('-'), and MediaError when this
    PyAV build lacks the encoders the format needs.
    """
    names = ", ".join(OUTPUT_FORMATS)
    if str(path) == "-":
        raise UsageError(f"cannot write video to standard output: give a file name ending in {names}", option="dst")
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown video file extension; use one of {names}", option="dst")
    for codec in _ENCODERS[fmt]:
        try:
            av.codec.Codec(codec, "w")
        except av.codec.codec.UnknownCodecError:
            raise MediaError(f"{path}: this PyAV build has no {codec} encoder, which {fmt} files need") from None
    return fmt


def _video_settings(fmt: str, width: int, height: int, crf: int, lossless: bool) -> tuple[str, str, dict]:
    """The default (codec, pixel format, codec options) of format `fmt`: H.264, or VP9 for webm."""
    if fmt == "webm":
        if lossless:  # gbrp: the RGB planes as they are, so lossless is exact
            return "libvpx-vp9", "gbrp", {"lossless": "1", "row-mt": "1", "cpu-used": "4"}
        # VP9's quality scale is 0..63 where H.264's is 0..51; b=0 makes crf constant quality
        return "libvpx-vp9", "yuv420p", {"crf": str(round(crf * 63 / 51)), "b": "0", "row-mt": "1", "cpu-used": "4"}
    if lossless:  # constant QP 0: x264 needs no rate-control lookahead
        return "libx264rgb", "rgb24", {"crf": "0"}
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    # 20 frames of rate-control lookahead, not preset medium's 40 (x264's "faster" presets use 20):
    # a 720p decode peaked 100 to 130 MB lower (0.84 to 0.87 GB), for files 0.04% larger
    return "libx264", pix_fmt, {"crf": str(crf), "rc-lookahead": "20"}


class VideoWriter:
    """Write uint8 (H, W, 3) RGB frames to a video file, at a constant rational frame rate.

    `container_format` is a PyAV format name (output_format gives it for a file name). By default
    H.264: `lossless` stores RGB exactly (libx264rgb, crf 0); otherwise yuv420p at `crf` (yuv444p
    when the width or height is odd, which 4:2:0 cannot hold). For webm, VP9 at `crf` scaled to
    VP9's 0..63, or lossless RGB. `codec`, `pix_fmt` and `options` (codec options) override those
    choices, for the classical baselines of `vtok bench`. `audio` is an AUDI chunk to mux beside,
    as it is where the format carries it, re-encoded (AAC, or Opus for webm) where not.
    `rotation`: degrees clockwise a player should turn the frames (a display matrix, not pixels).
    `notes` lists what was changed on the way, one sentence each.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate: Fraction,
        crf: int = 18,
        lossless: bool = False,
        audio: bytes | None = None,
        codec: str | None = None,
        pix_fmt: str | None = None,
        options: dict[str, str] | None = None,
        container_format: str = "mp4",
        rotation: int = 0,
    ):
        default_codec, default_pix_fmt, default_options = _video_settings(
            container_format, width, height, crf, lossless
        )
        self.notes: list[str] = []
        self._format = container_format
        self._container = av.open(str(path), "w", format=container_format)
        self._stream = self._container.add_stream(
            codec or default_codec, rate=rate, options=default_options if options is None else options
        )
        self._stream.pix_fmt = pix_fmt or default_pix_fmt
        self._stream.width, self._stream.height = width, height
        self._stream.time_base = 1 / Fraction(rate)
        if rotation:
            self._stream.set_display_rotation(-rotation)  # PyAV's angle is counter-clockwise
        self._count = 0
        if audio is not None:
            self._mux_audio(audio)

    def _mux_audio(self, blob: bytes) -> None:
        with av.open(io.BytesIO(blob)) as src:
            audio = src.streams.audio[0]
            name = audio.codec_context.codec.canonical_name
            as_is = _AUDIO_AS_IS.get(self._format)
            if as_is is None or name in as_is:
                out = self._container.add_stream_from_template(audio)
                for packet in src.demux(audio):
                    if packet.dts is not None:
                        packet.stream = out
                        self._container.mux(packet)
                return
            encoder = _ENCODERS[self._format][1] if self._format in _ENCODERS else "aac"
            out = self._container.add_stream(encoder, rate=_AUDIO_RATE.get(encoder, audio.codec_context.sample_rate))
            self.notes.append(f"audio re-encoded from {name} to {out.codec_context.codec.canonical_name}: "
                              f"{self._format} files do not carry {name}")  # fmt: skip
            for frame in src.decode(audio):
                frame.pts = None
                self._container.mux(out.encode(frame))
            self._container.mux(out.encode(None))

    def write(self, frame: np.ndarray) -> None:
        """frame: uint8 (H, W, 3) RGB."""
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self._count
        self._count += 1
        self._container.mux(self._stream.encode(video_frame))

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._container.close()

"""Video in and out through PyAV, streamed one frame at a time so memory stays bounded."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vtok.errors import MediaError

__all__ = ["VideoInfo", "probe", "read_frames", "extract_audio", "VideoWriter"]

# Audio codecs that mp4 carries as they are; anything else is re-encoded to AAC on decode.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}


@dataclass(frozen=True)
class VideoInfo:
    """What vtok needs to know about a source video before decoding it."""

    width: int
    height: int
    rate: Fraction  # average frames per second
    frames_hint: int  # frame count stated by the container; 0 when unknown, and never trusted
    duration_s: float
    has_audio: bool


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


def probe(path: Path) -> VideoInfo:
    """Read the stream headers of `path`; decodes no frames."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or stream.width <= 0 or stream.height <= 0:
            raise MediaError(f"{path}: video stream has no frame rate or size")
        duration = float(container.duration / av.time_base) if container.duration else 0.0
        return VideoInfo(
            width=stream.width,
            height=stream.height,
            rate=Fraction(rate),
            frames_hint=int(stream.frames or 0),
            duration_s=duration,
            has_audio=bool(container.streams.audio),
        )


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield every frame of the first video stream as uint8 (H, W, 3) RGB, in presentation order."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: video cannot be decoded ({e})") from None


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


class VideoWriter:
    """Write uint8 (H, W, 3) RGB frames to a video file, at a constant rational frame rate.

    By default an H.264 mp4: `lossless` stores RGB exactly (libx264rgb, crf 0); otherwise yuv420p
    at `crf` (yuv444p when the width or height is odd, which 4:2:0 cannot hold). `codec`,
    `pix_fmt`, `options` (codec options; default {"crf": crf}) and `container_format` (a PyAV
    format name) override those choices, for the classical baselines of `vtok bench`. `audio` is
    an AUDI chunk to mux beside.
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
    ):
        if lossless:
            crf, codec, pix_fmt = 0, codec or "libx264rgb", pix_fmt or "rgb24"
        codec = codec or "libx264"
        pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        self._container = av.open(str(path), "w", format=container_format)
        self._stream = self._container.add_stream(
            codec, rate=rate, options={"crf": str(crf)} if options is None else options
        )
        self._stream.pix_fmt = pix_fmt
        self._stream.width, self._stream.height = width, height
        self._stream.time_base = 1 / Fraction(rate)
        self._count = 0
        if audio is not None:
            self._mux_audio(audio)

    def _mux_audio(self, blob: bytes) -> None:
        with av.open(io.BytesIO(blob)) as src:
            audio = src.streams.audio[0]
            if audio.codec_context.codec.name.startswith(tuple(_MP4_AUDIO)):
                out = self._container.add_stream_from_template(audio)
                for packet in src.demux(audio):
                    if packet.dts is not None:
                        packet.stream = out
                        self._container.mux(packet)
                return
            out = self._container.add_stream("aac", rate=audio.codec_context.sample_rate)
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

"""Reading a video with PyAV: what it holds, and its frames upright at the working size.

Any container and codec FFmpeg reads will do. :func:`probe` demuxes the whole
file once (no decoding) to learn every frame's presentation time, so the number of
frames and the progress are known before the first frame is painted; it also
decodes the first frame, so a file FFmpeg cannot decode fails before any work.
Frames are decoded from the start each time (exact on every container, and cheap
beside painting), turned upright as the rotation metadata says, and resized to the
working size.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import VideoError
from ..run.schedule import fit_long_side
from .deps import require

# A frame is shown from its time until the next one's; times within this of each
# other are the same instant (timestamps are rounded to the stream's time base).
_EPSILON = 1e-6


@dataclass(frozen=True)
class VideoInfo:
    """A video's frames and how to write them back the same way."""

    path: Path
    width: int  # as stored (before rotation)
    height: int
    rotation: int  # display rotation in degrees, counter-clockwise (a multiple of 90)
    times: tuple[float, ...]  # presentation time of each frame in seconds, ascending
    rate: Fraction  # average frame rate
    time_base: Fraction
    color_range: int  # FFmpeg's enums: 0 unspecified, 1 limited (MPEG), 2 full (JPEG)
    colorspace: int
    color_primaries: int
    color_trc: int
    audio: bool  # has an audio stream (the first one is copied to the output)

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as the video is shown."""
        quarter_turns = self.rotation // 90 % 2
        return (self.height, self.width) if quarter_turns else (self.width, self.height)

    @property
    def end(self) -> float:
        """When the last frame stops being shown."""
        return self.times[-1] + 1 / float(self.rate)

    def timeline(self, fps: float | None) -> list[float]:
        """The times of the frames to paint: the video's own, or every 1/fps seconds."""
        if fps is None:
            return list(self.times)
        start = self.times[0]
        count = max(1, math.floor((self.end - start) * fps + _EPSILON))
        return [start + k / fps for k in range(count)]


def working_size(info: VideoInfo, size: int, even: bool) -> tuple[int, int]:
    """(width, height) of the painted frames: ``size`` on the long side (0 = the video's
    own), made even where the codec needs it (4:2:0 chroma has half the resolution)."""
    upright = info.upright_size
    w, h = fit_long_side(upright, size or max(upright))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def _shown(path: Path) -> str:
    return os.fspath(path)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """What a video holds; :class:`VideoError` in one line if it cannot be read."""
    av = require("av")
    path = Path(path)
    if not path.is_file():
        raise VideoError(
            f"{_shown(path)}: no such file"
            if not path.exists()
            else f"{_shown(path)}: is not a file"
        )
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
        raise VideoError(f"{_shown(path)}: not a video FFmpeg can read ({_one_line(e)})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{_shown(path)}: has no video stream")
        stream = container.streams.video[0]
        try:
            times = _packet_times(container, stream)
            container.seek(0)
            first = next(container.decode(stream), None)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise VideoError(f"{_shown(path)}: damaged video data ({_one_line(e)})") from None
        if first is None or not times:
            raise VideoError(f"{_shown(path)}: has no video frames FFmpeg can decode")
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(
            path=path,
            width=first.width,
            height=first.height,
            rotation=_rotation(first),
            times=tuple(times),
            rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            color_range=int(first.color_range or ctx.color_range or 0),
            colorspace=int(first.colorspace or ctx.colorspace or 0),
            color_primaries=int(ctx.color_primaries or 0),
            color_trc=int(ctx.color_trc or 0),
            audio=bool(container.streams.audio),
        )


def _packet_times(container: object, stream: object) -> list[float]:
    """Presentation times of the video packets, in seconds, ascending (demux only)."""
    times = []
    for packet in container.demux(stream):  # type: ignore[attr-defined]
        if packet.size == 0:  # the end-of-stream packet
            continue
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None:  # no timestamps at all: spaced by the frame rate below
            times.append(math.nan)
        else:
            times.append(float(stamp * packet.time_base))
    if any(math.isnan(t) for t in times):
        rate = float(stream.average_rate or 25)  # type: ignore[attr-defined]
        return [k / rate for k in range(len(times))]
    return sorted(times)


def _rotation(frame: object) -> int:
    degrees = getattr(frame, "rotation", 0) or 0
    # Display matrices hold any angle; only quarter turns are meaningful for video.
    return round(degrees / 90) * 90 % 360


def upright(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """Stored pixels (H, W, 3) turned as the video is shown (counter-clockwise)."""
    return np.ascontiguousarray(np.rot90(pixels, k=rotation // 90))


def as_stored(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """Upright pixels turned back to how the video stores them."""
    return np.ascontiguousarray(np.rot90(pixels, k=-(rotation // 90)))


def read_frames(
    info: VideoInfo, times: Sequence[float], size: tuple[int, int], start: int = 0
) -> Iterator[tuple[int, Image.Image]]:
    """(index, upright RGB frame at ``size``) for the frames shown at ``times[start:]``.

    The frame shown at a time is the last one whose presentation time is not later:
    with the video's own times that is each frame once; with a resampled timeline
    frames repeat or drop.
    """
    av = require("av")
    index = start
    pending: tuple[float, object] | None = None  # the last decoded frame and its time
    converted: tuple[object, Image.Image] | None = None

    def image(frame: object) -> Image.Image:
        nonlocal converted
        if converted is None or converted[0] is not frame:
            pixels = upright(frame.to_ndarray(format="rgb24"), info.rotation)  # type: ignore[attr-defined]
            img = Image.fromarray(pixels, "RGB")
            if img.size != size:
                img = img.resize(size, Image.Resampling.LANCZOS)
            converted = (frame, img)
        return converted[1]

    try:
        with av.open(os.fspath(info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else info.times[0]
                while pending is not None and index < len(times) and times[index] < t - _EPSILON:
                    yield index, image(pending[1])
                    index += 1
                if index >= len(times):
                    return
                pending = (t, frame)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{_shown(info.path)}: damaged video data ({_one_line(e)})") from None
    while pending is not None and index < len(times):  # the last frame shows to the end
        yield index, image(pending[1])
        index += 1


def source_index(info: VideoInfo, t: float) -> int:
    """The index of the video frame shown at time ``t``."""
    return max(0, bisect.bisect_right(info.times, t + _EPSILON) - 1)

"""Writing the painted frames as a video (PyAV), an animated GIF or a folder of PNGs.

The kind of output follows the extension: ``.mp4``, ``.m4v``, ``.mov`` and ``.mkv``
get H.264, ``.webm`` VP9, ``.gif`` a GIF (Pillow, a palette per frame), and a name
without an extension a folder of PNG frames. Videos keep the input's timing (or
the resampled rate), its rotation metadata and its colour range and matrix; the
first audio stream is copied packet for packet where the container takes its
codec (else re-encoded to the container's own). Every output is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import VideoError
from ..io.files import atomic_file, create_temp
from .deps import require
from .io import VideoInfo, as_stored


@dataclass(frozen=True)
class OutputKind:
    name: str  # "video", "gif" or "folder"
    container: str | None = None  # FFmpeg's muxer
    codec: str | None = None
    pix_fmt: str = "yuv420p"
    crf: int = 18

    @property
    def even(self) -> bool:
        """Whether frame sides must be even (4:2:0 chroma)."""
        return self.name == "video"


H264 = OutputKind("video", "mp4", "libx264", crf=18)
KINDS = {
    ".mp4": H264,
    ".m4v": H264,
    ".mov": OutputKind("video", "mov", "libx264", crf=18),
    ".mkv": OutputKind("video", "matroska", "libx264", crf=18),
    ".webm": OutputKind("video", "webm", "libvpx-vp9", crf=31),
    ".gif": OutputKind("gif"),
    "": OutputKind("folder"),
}


def output_kind(path: str | os.PathLike[str]) -> OutputKind:
    """What a path asks for; :class:`VideoError` for an extension with no writer."""
    suffix = Path(path).suffix.lower()
    if suffix not in KINDS:
        known = ", ".join(k for k in KINDS if k)
        raise VideoError(
            f"{os.fspath(path)}: cannot write {suffix!r} videos; use one of {known}, "
            "or a name without an extension for a folder of PNG frames"
        )
    return KINDS[suffix]


@dataclass(frozen=True)
class Timing:
    """When each output frame is shown, in seconds from the start of the output."""

    times: Sequence[float]
    rate: Fraction  # the nominal frame rate
    time_base: Fraction
    clip: tuple[float, float]  # the span of the input whose audio goes with the frames
    shift: float = 0.0  # seconds taken off the input's timestamps


FrameSource = Callable[[int], Image.Image]  # an upright frame by output index


def write_output(
    path: Path,
    kind: OutputKind,
    frames: FrameSource,
    count: int,
    info: VideoInfo,
    timing: Timing,
    *,
    crf: int | None = None,
) -> str | None:
    """Write ``count`` frames to ``path`` atomically; returns a note on the audio, if any."""
    if kind.name == "folder":
        _write_folder(path, frames, count)
        return "no audio in a folder of frames" if info.audio else None
    if kind.name == "gif":
        _write_gif(path, frames, count, timing)
        return "no audio in a GIF" if info.audio else None
    fd, tmp = create_temp(path)
    os.close(fd)
    try:
        note = _write_video(tmp, kind, frames, count, info, timing, crf)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return note


def _write_video(
    tmp: Path,
    kind: OutputKind,
    frames: FrameSource,
    count: int,
    info: VideoInfo,
    timing: Timing,
    crf: int | None,
) -> str | None:
    av = require("av")
    try:
        with av.open(os.fspath(tmp), "w", format=kind.container) as out:
            stream = _video_stream(out, kind, frames(0), info, timing, crf)
            audio = _audio_streams(av, out, info)
            # The audio first: it is small, so the muxer's interleaving queue stays small.
            note = _copy_audio(out, audio, timing) if audio else None
            for k in range(count):
                frame = _to_frame(av, frames(k), info, kind)
                frame.pts = round(timing.times[k] / timing.time_base)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            return note
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{os.fspath(tmp)}: cannot write the video ({e})") from None


def _video_stream(
    out: Any, kind: OutputKind, first: Image.Image, info: VideoInfo, timing: Timing, crf: int | None
) -> Any:
    stream = out.add_stream(kind.codec, rate=timing.rate)
    w, h = first.size
    if info.rotation // 90 % 2:
        w, h = h, w
    stream.width, stream.height, stream.pix_fmt = w, h, kind.pix_fmt
    stream.time_base = timing.time_base
    ctx = stream.codec_context
    ctx.time_base = timing.time_base
    # The input's colour tags, so players decode the colours as they decoded the input's.
    ctx.color_range = info.color_range or 1
    ctx.colorspace, ctx.color_primaries, ctx.color_trc = (
        info.colorspace or 2,
        info.color_primaries or 2,
        info.color_trc or 2,
    )
    options = {"crf": str(kind.crf if crf is None else crf)}
    if kind.codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality: crf alone sets it
    stream.options = options
    if info.rotation:
        stream.set_display_rotation(info.rotation)
    return stream


def _to_frame(av: Any, img: Image.Image, info: VideoInfo, kind: OutputKind) -> Any:
    pixels = as_stored(np.asarray(img.convert("RGB")), info.rotation)
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    return frame.reformat(
        format=kind.pix_fmt,
        dst_colorspace=info.colorspace or None,
        dst_color_range=info.color_range or 1,
    )


def _audio_streams(av: Any, out: Any, info: VideoInfo) -> tuple[Any, Any] | None:
    """(input container, output stream) for the first audio stream, or None."""
    if not info.audio:
        return None
    source = av.open(os.fspath(info.path))
    template = source.streams.audio[0]
    if template.codec_context.name in out.supported_codecs:
        return source, out.add_stream_from_template(template)
    codec = out.default_audio_codec
    stream = out.add_stream(codec, rate=48000 if "opus" in codec else template.rate)
    stream.layout = template.layout
    return source, stream


def _copy_audio(out: Any, audio: tuple[Any, Any], timing: Timing) -> str | None:
    """Copy (or, where the container needs it, re-encode) the audio within the clip."""
    source, stream = audio
    start, end = timing.clip
    with source:
        template = source.streams.audio[0]
        if stream.codec_context.name == template.codec_context.name:
            for packet in source.demux(template):
                if packet.pts is None or packet.size == 0:
                    continue
                if start - 1e-6 <= float(packet.pts * packet.time_base) < end:
                    shift = round(timing.shift / packet.time_base)
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = stream
                    out.mux(packet)
            return None
        for frame in source.decode(template):
            if frame.time is not None and start - 1e-6 <= frame.time < end:
                frame.pts = None  # the encoder numbers the samples from the output's start
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        old, new = template.codec_context.name, stream.codec_context.name
        return f"audio re-encoded from {old} to {new}, which this container takes"


def _write_gif(path: Path, frames: FrameSource, count: int, timing: Timing) -> None:
    times = list(timing.times[:count])
    ends = [*times[1:], times[-1] + 1 / float(timing.rate)]
    # GIF counts in hundredths of a second; Pillow takes milliseconds.
    durations = [max(20, round((b - a) * 100) * 10) for a, b in zip(times, ends)]
    images = [frames(k) for k in range(count)]
    with atomic_file(path) as f:
        images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
        )


def _write_folder(path: Path, frames: FrameSource, count: int) -> None:
    """PNG frames ``000000.png``... in a folder that appears complete or not at all."""
    from ..io.images import save_image

    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for k in range(count):
            save_image(frames(k), tmp / f"{k:06d}.png")
        if path.exists():  # --overwrite: the old folder goes only once the new one is whole
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

"""Video jobs at submission: telling a clip from a photo, its settings, and its checks.

A clip takes the photo's place; its video settings (``temporal_weight``, ``frames``,
``fps``, ...; see :class:`impasto.video.VideoSettings`) come in the same JSON object as
the image settings and are checked as strictly. The server's limits are checked from
the container's header first (duration, frames, nothing decoded), then from a probe
that demuxes the file and decodes its first frame only (exact frame count, working
size), in one of the server's decode slots. PyAV and OpenCV (the ``video`` extra) are
imported only when a video comes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import typing
from pathlib import Path
from typing import Any

from ..errors import ImpastoError, SettingsError
from ..settings import Settings
from .config import ServerConfig
from .policy import check_json_types, check_work
from .uploads import UploadRejected

MISSING_VIDEO_EXTRA = "video jobs need the 'video' extra: pip install 'impasto[video]'"
# Decided by the server: the work folder of frames goes once the video is written.
VIDEO_FORCED: dict[str, Any] = {"keep_frames": False}
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")
VIDEO_EXTENSIONS += (".ogv", ".flv", ".3gp", ".wmv")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_video(head: bytes, content_type: str | None, filename: str | None) -> bool:
    """Whether an upload is a clip, not a photo: its first bytes, else what the client says."""
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return False
    if (content_type or "").lower().startswith("video/"):
        return True
    if Path(filename or "").suffix.lower() in VIDEO_EXTENSIONS:
        return True
    return (
        head[4:8] == b"ftyp"  # MP4, MOV
        or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska, WebM
        or (head[:4] == b"RIFF" and head[8:11] == b"AVI")
    )


def video_names() -> list[str]:
    from ..video.settings import VideoSettings

    return [f.name for f in dataclasses.fields(VideoSettings)]


def split_client_settings(data: Any, is_video: bool) -> tuple[Any, dict[str, Any] | None]:
    """(image settings, checked video settings as a dict or None for a photo)."""
    if not isinstance(data, dict):
        return data, None  # settings_from_client says what is wrong
    if not is_video:
        given = [name for name in data if name in video_names()]
        if given:
            raise SettingsError("a video setting; the content is an image", setting=given[0])
        return data, None
    require_video_extra()
    from ..video.settings import VideoSettings, split_settings

    names = video_names()
    split_settings(data)  # unknown names, with the setting meant of either kind
    video = {k: v for k, v in data.items() if k in names}
    check_json_types(video, typing.get_type_hints(VideoSettings))
    for name, value in VIDEO_FORCED.items():
        if name in video and video[name] != value:
            raise SettingsError(
                f"this server decides it (it uses {value!r}); leave the setting out", name
            )
    checked = VideoSettings.from_dict({**video, **VIDEO_FORCED})
    return {k: v for k, v in data.items() if k not in names}, checked.to_dict()


def require_video_extra() -> None:
    """Refuse a video where PyAV or OpenCV is missing (415, naming the extra)."""
    if any(importlib.util.find_spec(name) is None for name in ("av", "cv2")):
        raise UploadRejected(415, f"content: {MISSING_VIDEO_EXTRA}")


def _painted_count(count: int, video: dict[str, Any]) -> int:
    from ..video.settings import parse_frames

    start, end = parse_frames(video.get("frames"))
    return max(0, min(count, end if end is not None else count) - start)


def check_header(path: Path, config: ServerConfig, video: dict[str, Any]) -> None:
    """The clip's duration and frames from its container's header, against the limits;
    nothing is decoded. A file FFmpeg cannot open is 422."""
    import av

    try:
        container = av.open(str(path))
    except Exception:
        raise UploadRejected(422, "content: not a video this server reads") from None
    with container:
        if not container.streams.video:
            raise UploadRejected(422, "content: the file has no video stream")
        stream = container.streams.video[0]
        seconds = container.duration / 1e6 if container.duration else None
        if seconds is None and stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        frames = stream.frames or (round(seconds * rate) if seconds and rate else 0)
    if seconds is not None and seconds > config.max_video_seconds:
        raise UploadRejected(
            413,
            f"content: the video is {seconds:.1f} seconds long; this server accepts at most "
            f"{config.max_video_seconds:g}",
        )
    if video.get("fps") and seconds:
        frames = max(1, math.floor(seconds * video["fps"]))
    _check_frames(_painted_count(frames, video), config)


def _check_frames(count: int, config: ServerConfig) -> None:
    if count > config.max_video_frames:
        raise UploadRejected(
            413,
            f"content: the job would paint {count} frames; this server paints at most "
            f"{config.max_video_frames} per video (choose fewer with frames or fps)",
        )


def check_video(
    path: Path, settings: Settings, video: dict[str, Any], config: ServerConfig
) -> tuple[tuple[int, int], int]:
    """Probe the clip (demuxed, its first frame decoded) and check the job against the
    limits; returns the working size (width, height) and the frames to paint."""
    from ..video.io import probe, working_size
    from ..video.settings import VideoSettings

    try:
        info = probe(path)
    except ImpastoError as e:
        raise UploadRejected(422, str(e).replace(str(path), "content")) from None
    except Exception:
        raise UploadRejected(422, "content: the video is damaged and cannot be decoded") from None
    timeline = info.timeline(video.get("fps"))
    start, end = VideoSettings.from_dict(video).frame_range(len(timeline))
    _check_frames(end - start, config)
    size = working_size(info, settings.size, even=True)
    if size[0] * size[1] > config.max_pixels:
        raise UploadRejected(
            413,
            f"content: frames of {size[0]}x{size[1]} are over the {config.max_pixels / 1e6:g} "
            "megapixels this server accepts; choose a smaller size",
        )
    return size, end - start


def planned_iterations(settings: Settings, video: dict[str, Any], size: int, config: Any) -> int:
    """The first frame's iterations, checked, and each later frame's against the limit."""
    from ..video.loop import frame_iterations

    first = check_work(settings.replace(iterations=video.get("first_iterations")), size, config)
    later = frame_iterations(settings)
    if later > config.max_iterations:
        raise SettingsError(
            f"each frame after the first would run up to {later} iterations; this server "
            f"allows at most {config.max_iterations}",
            setting="iterations",
        )
    return first


def video_settings_schema() -> list[dict[str, Any]]:
    """The video settings a job takes, in the shape of ``GET /api/settings``' fields."""
    from ..settings import base_type
    from ..video.settings import VideoSettings

    types = typing.get_type_hints(VideoSettings)
    defaults = VideoSettings().to_dict()
    fields = []
    for f in dataclasses.fields(VideoSettings):
        elem, is_tuple, optional = base_type(types[f.name])
        choices = f.metadata.get("choices")
        fields.append(
            {
                "name": f.name,
                "type": {int: "integer", float: "number", bool: "boolean"}.get(elem, "string"),
                "array": is_tuple,
                "nullable": optional,
                "default": defaults[f.name],
                "help": f.metadata["help"].replace("--", ""),
                "group": "video",
                "choices": list(choices) if choices else None,
                "maximum": None,
                "editable": f.name not in VIDEO_FORCED,
                "server_value": VIDEO_FORCED.get(f.name),
            }
        )
    return fields

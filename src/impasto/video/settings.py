"""The settings of a video beyond those of one image, in the style of :class:`Settings`.

Every field is built with the same ``_opt`` as the stylisation settings, so the
``impasto video`` command generates its options from here the same way, and each
default and help text is written once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import SettingsError
from ..settings import Settings, _convert_field, _opt, base_type

DESCRIPTION = (
    "Paint every frame of INPUT in the style of STYLE(s), each frame starting from the "
    "one before it warped by the optical flow and held to it by a temporal loss (Ruder, "
    "Dosovitskiy & Brox 2016). --iterations counts for each frame after the first. "
    "Frames are kept in OUTPUT.frames/ as they finish: after Ctrl-C the same command "
    "continues at the next frame. OUTPUT: .mp4/.m4v/.mov/.mkv (H.264), .webm (VP9), .gif, "
    "or a name without an extension for a folder of PNG frames."
)

FLOW_METHODS = ("dis", "dis-fast", "dis-fine", "farneback")

# Iterations (at most) of each frame after the first when --iterations is not given.
# Started from the warped previous frame, a frame's loss stops improving (by
# --tolerance) in fewer: 66 on the benchmark clip at 256 px (docs/video.md).
FRAME_ITERATIONS = 100


@dataclass
class VideoSettings:
    """How the frames of a video are tied together and how the video is read and written."""

    temporal_weight: float = _opt(
        2e3,
        "weight of the temporal loss, which keeps each frame close to the previous one "
        "warped by the optical flow where the flow is reliable (0 = paint every frame "
        "independently, for comparison)",
        metavar="W",
        group="video",
    )
    first_iterations: int | None = _opt(
        None,
        "iterations of the first frame (default: as a single image; --iterations then "
        f"counts for each later frame, default {FRAME_ITERATIONS})",
        metavar="N",
        group="video",
    )
    temporal_frames: tuple[int, ...] = _opt(
        (1,),
        "the earlier frames (1 = the previous one) each frame is held to; more than one "
        "is long-term consistency, e.g. 1 10 20 40 (each pixel counts once, from the "
        "nearest of them where it is visible)",
        metavar="K",
        group="video",
    )
    flow: str = _opt(
        "dis",
        "optical flow between the content frames: OpenCV's DIS (dis = medium preset, "
        "dis-fast, dis-fine = finer and slower) or Farneback",
        choices=FLOW_METHODS,
        group="video",
    )
    frames: str | None = _opt(
        None,
        "the frames to paint, START:END (0-based, END excluded; either may be left out), "
        "counted after --fps",
        metavar="START:END",
        group="video",
    )
    fps: float | None = _opt(
        None,
        "resample to this frame rate (frames repeated or dropped); default: the video's "
        "own frames and timing",
        metavar="FPS",
        group="video",
    )
    crf: int | None = _opt(
        None,
        "quality of the H.264 or VP9 encoder, lower is better and bigger (default 18 for "
        "H.264, 31 for VP9)",
        metavar="N",
        group="video",
    )
    keep_frames: bool = _opt(
        False,
        "keep the work folder of painted frames (OUTPUT.frames/) after the video is written",
        group="video",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> VideoSettings:
        """Coerce compatible values and raise :class:`SettingsError` for the first bad one."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            elem, is_tuple, optional = base_type(_hints()[f.name])
            if value is None and optional:
                continue
            try:
                setattr(self, f.name, _convert_field(elem, is_tuple, value))
            except (TypeError, ValueError, OverflowError):
                raise SettingsError(f"expected {elem.__name__}, got {value!r}", f.name) from None
        _check(self)
        return self

    def frame_range(self, count: int) -> tuple[int, int]:
        """The [start, end) frame indices of a video of ``count`` frames (after --fps)."""
        start, end = parse_frames(self.frames)
        end = count if end is None else min(end, count)
        if start >= end:
            raise SettingsError(
                f"selects no frame of a video of {count} frame(s) (got {self.frames!r})", "frames"
            )
        return start, end

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SettingsError(f"unknown video setting(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> VideoSettings:
        return dataclasses.replace(self, **changes)


def split_settings(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments split into (stylisation settings, video settings); unknown
    names are a :class:`SettingsError` that suggests the setting meant."""
    video_names = [f.name for f in dataclasses.fields(VideoSettings)]
    known = video_names + [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        named = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            named.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise SettingsError(f"unknown setting(s): {', '.join(named)}")
    video = {k: v for k, v in options.items() if k in video_names}
    return {k: v for k, v in options.items() if k not in video_names}, video


def parse_frames(spec: str | None) -> tuple[int, int | None]:
    """``"10:20"`` -> (10, 20); ``":20"`` -> (0, 20); ``"10:"`` -> (10, None)."""
    if spec is None:
        return 0, None
    text = spec.strip()
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0].strip() else 0
        end = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise SettingsError(
            f"expected START:END, e.g. 0:100 or 50:, got {spec!r}", "frames"
        ) from None
    if start < 0 or (end is not None and end <= start):
        raise SettingsError(f"needs 0 <= START < END, got {spec!r}", "frames")
    return start, end


def _check(v: VideoSettings) -> None:
    if not (math.isfinite(v.temporal_weight) and v.temporal_weight >= 0):
        raise SettingsError(
            f"must be a finite number >= 0, got {v.temporal_weight}", "temporal_weight"
        )
    if v.first_iterations is not None and v.first_iterations < 0:
        raise SettingsError(f"must be >= 0, got {v.first_iterations}", "first_iterations")
    offsets = v.temporal_frames
    if not offsets or any(k < 1 for k in offsets) or len(set(offsets)) != len(offsets):
        raise SettingsError(
            f"give distinct frame offsets >= 1 (1 = the previous frame), got {list(offsets)}",
            "temporal_frames",
        )
    if max(offsets) > 1000:
        raise SettingsError(f"offsets must be at most 1000, got {max(offsets)}", "temporal_frames")
    if v.flow not in FLOW_METHODS:
        raise SettingsError(f"choose from {', '.join(FLOW_METHODS)}, got {v.flow!r}", "flow")
    parse_frames(v.frames)
    if v.fps is not None and not (math.isfinite(v.fps) and 0.01 <= v.fps <= 1000):
        raise SettingsError(f"must be between 0.01 and 1000, got {v.fps}", "fps")
    if v.crf is not None and not 0 <= v.crf <= 63:
        raise SettingsError(f"must be between 0 and 63, got {v.crf}", "crf")


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(VideoSettings)

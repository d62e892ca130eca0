"""The Python API of video: :func:`stylize_video`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..run.inputs import ImageInput
from ..settings import Settings
from .job import VideoResult, VideoStylizer
from .progress import FrameResult, VideoProgress
from .settings import VideoSettings, split_settings


def stylize_video(
    input: str | os.PathLike[str],
    styles: ImageInput | Sequence[ImageInput],
    output: str | os.PathLike[str],
    *,
    on_frame: Callable[[FrameResult], None] | None = None,
    callback: Callable[[VideoProgress], None] | None = None,
    settings: Settings | None = None,
    video: VideoSettings | None = None,
    overwrite: bool = False,
    **options: Any,
) -> VideoResult:
    """Paint the video ``input`` in the style of ``styles`` with temporal consistency.

    Keyword arguments are settings of either kind (:class:`~impasto.Settings` or
    :class:`VideoSettings`): ``size=256, temporal_weight=0, frames="0:48"``.
    ``on_frame`` is called with each frame as it is finished and written to the
    work folder (``OUTPUT.frames/``); ``callback`` after every iteration. A run
    stopped early (Ctrl-C) keeps the frames painted: the same call again continues
    at the next frame. The output is written once every frame is painted.

    >>> result = stylize_video("clip.mp4", ["starry.jpg"], "painted.mp4", size=256)
    >>> result.written, result.frames, result.seconds
    """
    general, specific = split_settings(options)
    settings = (settings or Settings()).replace(**general)
    video = (video or VideoSettings()).replace(**specific)
    stylizer = VideoStylizer(input, styles, output, settings, video, overwrite=overwrite)
    if on_frame is not None:
        stylizer.on_frame.append(on_frame)
    try:
        for progress in stylizer.run():
            if callback is not None:
                callback(progress)
    except KeyboardInterrupt:
        pass  # the frames written are kept; finish() reports the run as interrupted
    return stylizer.finish()

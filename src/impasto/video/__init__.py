"""Temporally consistent video (Ruder, Dosovitskiy & Brox, GCPR 2016).

Each frame starts from the previous painted frame warped by the optical flow and is
held to it by a temporal loss where the flow is reliable. Reading and writing use
PyAV and the flow OpenCV, imported only when needed (``pip install 'impasto[video]'``).

- :func:`stylize_video`: paint a video file into a video file (the Python API);
- :class:`VideoStylizer`: the same, step by step (progress, stop, resume);
- :class:`FrameLoop`: paint any range of frames given the painted frames before it.
"""

from __future__ import annotations

from .api import stylize_video
from .job import VideoResult, VideoStylizer
from .loop import FrameLoop
from .progress import FrameResult, VideoProgress
from .settings import VideoSettings

__all__ = [
    "FrameLoop",
    "FrameResult",
    "VideoProgress",
    "VideoResult",
    "VideoSettings",
    "VideoStylizer",
    "stylize_video",
]

"""Video jobs in the queue: :class:`impasto.video.VideoStylizer` as a run of the engine protocol.

A video job paints its frames into a work folder next to its result (``result.mp4.frames/``
in the job's folder), each frame kept as it finishes; the MP4 is written once every frame
is painted. Starting the job again continues at the first frame missing, so this engine
resumes by starting (:class:`~.job.JobEngine`): after a shutdown, and after a crash once a
frame was kept. A cancelled job's result is a video of the frames painted before it
stopped; they stay on disk until the job is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ImpastoError
from ..results import StopReason
from ..settings import Settings
from .job import PREVIEW_NAME, Job


class VideoStep:
    """One iteration of one frame, as the queue's runner reads progress."""

    def __init__(self, progress: Any):
        step = progress.step
        self._progress = progress
        self.iteration, self.iterations = step.iteration, step.iterations
        self.losses, self.best_total = step.losses, step.best_total
        self.elapsed, self.eta = progress.elapsed, progress.eta
        self.frame, self.frames, self.frames_done = (
            progress.frame + 1,
            progress.frames,
            progress.done,
        )
        self.scale, self.scales, self.size = step.scale, step.scales, step.size

    def image(self) -> Image.Image:
        return self._progress.image()


@dataclass
class VideoJobResult:
    """A video run's end, as the runner records it; ``summary`` replaces its usual note."""

    image: Image.Image | None  # the last frame painted
    losses: dict[str, float]
    stopped: StopReason
    settings: Settings
    written: bool
    summary: str | None = None
    frames_done: int | None = None
    stop_detail: str | None = field(default=None)

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """The video is written by the run itself; this keeps its last frame as the preview."""
        if self.image is not None:
            self.image.save(Path(path).with_name(PREVIEW_NAME), format="PNG")


class VideoRun:
    """A :class:`VideoStylizer` writing to the job's result path."""

    def __init__(self, stylizer: Any, marker: Path):
        self.stylizer = stylizer
        self.marker = marker
        self.last: Image.Image | None = None
        self.losses: dict[str, float] = {}
        stylizer.on_frame.append(self._frame_done)

    def _frame_done(self, result: Any) -> None:
        self.last, self.losses = result.image, dict(result.losses)
        self.save_state(self.marker)  # a kept frame makes the job resumable, even after a crash

    def run(self) -> Iterator[VideoStep]:
        for progress in self.stylizer.run():
            yield VideoStep(progress)

    def request_stop(self) -> None:
        self.stylizer.request_stop()

    def save_state(self, path: Path) -> None:
        """The frames are the state (in the work folder); this only marks the job resumable."""
        path.write_text(json.dumps({"frames_done": self.stylizer.work.done()}))

    def result(self, stopped: StopReason | None = None) -> VideoJobResult:
        cancelled = stopped is StopReason.CANCELLED
        r = self.stylizer.finish(part=cancelled)
        if not r.written and stopped is None:  # NaN or out of memory
            raise ImpastoError(
                f"painting stopped at frame {r.done + 1} of {r.frames}: "
                f"{r.stopped.message(0, r.stop_detail)}"
            )
        last = self.last
        if last is None and r.done:
            last = self.stylizer.work.frame(r.done - 1)
        if cancelled:
            summary = (
                f"cancelled after {r.done} of {r.frames} frames; the result is those frames"
                if r.written
                else "cancelled before its first frame was painted; there is no result"
            )
            summary += f" ({r.note})" if r.note else ""
        elif r.written:
            summary = r.note  # about the audio, where it could not be copied
        else:
            summary = (
                f"the server stopped after {r.done} of {r.frames} frames; resume the job "
                f"to continue at frame {r.done + 1}"
            )
        return VideoJobResult(
            image=last,
            losses=self.losses or {},
            stopped=stopped or r.stopped,
            settings=r.settings or self.stylizer.settings,
            written=r.written,
            summary=summary,
            frames_done=r.done,
        )


class VideoEngine:
    """Runs video jobs in the server's process (a :class:`~.job.JobEngine`)."""

    def start_job(self, job: Job) -> VideoRun:
        from ..video import VideoSettings, VideoStylizer

        stylizer = VideoStylizer(
            job.content,
            job.styles,
            job.result_path,
            job.settings,
            VideoSettings.from_dict(job.video or {}),
            overwrite=True,  # the job's own folder: a result from before is replaced
        )
        return VideoRun(stylizer, job.state_path)

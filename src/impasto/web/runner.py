"""Running one job: the engine's progress, previews and outcome, recorded on the job.

Every job field is written under the queue's lock, which request handlers read under;
the engine itself is touched by this worker alone.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from PIL import Image

from ..errors import ImpastoError
from ..io import images
from ..results import StopReason
from .job import Engine, Job, ProgressLike, ResultLike, RunLike, State

log = logging.getLogger("impasto.web")


class JobRunner:
    """Runs jobs on ``engine`` one at a time, keeping a preview every ``preview_seconds``."""

    def __init__(self, engine: Engine, lock: threading.Lock, preview_seconds: float):
        self.engine = engine
        self.lock = lock
        self.preview_seconds = preview_seconds

    def run(self, job: Job) -> None:
        """Run the job to its end; whatever happens, it ends finished."""
        try:
            result, cancelled = self._execute(job)
        except ImpastoError as e:
            self._fail(job, _without_paths(str(e), job))
        except Exception:
            log.exception("job %s failed", job.id)
            self._fail(job, "the job failed inside the server (see the server log)")
        else:
            self._record_result(job, result, cancelled)

    def _execute(self, job: Job) -> tuple[ResultLike, bool]:
        """The run's result, and whether the job was cancelled before the run ended."""
        content = _open(job.content)
        styles = [_open(p) for p in job.styles]
        run = self.engine(content, styles, job.settings)
        cancelled = job.cancel.is_set() or self._follow(job, run)
        result = run.result(StopReason.CANCELLED if cancelled else None)
        result.save(job.result_path, overwrite=True)
        return result, cancelled

    def _follow(self, job: Job, run: RunLike) -> bool:
        """Iterate the run until it ends (False) or the job is cancelled (True)."""
        last_preview = 0.0
        for p in run.run():
            now = time.monotonic()
            # Encoding an image every iteration would cost more than the step itself.
            fresh = None
            if now - last_preview >= self.preview_seconds or p.iteration == 1:
                fresh, last_preview = p.image(), now
            self._record_progress(job, p, fresh)
            if job.cancel.is_set():
                return True
        return False

    def _record_progress(self, job: Job, p: ProgressLike, preview: Image.Image | None) -> None:
        with self.lock:
            job.iteration = p.iteration
            job.iterations = p.iterations
            job.losses = dict(p.losses)
            job.best_total = p.best_total
            job.elapsed = p.elapsed
            job.eta = p.eta
            # Multi-scale runs say which scale they are at; other engines need not.
            job.scale = getattr(p, "scale", None)
            job.scales = getattr(p, "scales", None)
            size = getattr(p, "size", None)
            job.scale_size = list(size) if size else None
            if preview is not None:
                job.show(preview)

    def _record_result(self, job: Job, result: ResultLike, cancelled: bool) -> None:
        reason = StopReason(result.stopped)
        with self.lock:
            job.has_result = True
            # The engine's copy records the seed it drew, so the status tells how to repeat it.
            job.settings = getattr(result, "settings", job.settings)
            job.losses = dict(result.losses)
            job.best_total = result.losses.get("total")
            job.eta = 0.0
            job.show(result.image)
            job.note = job_note(reason, job.iteration, getattr(result, "stop_detail", None))
            job.finish(State.CANCELLED if cancelled else State.DONE)

    def _fail(self, job: Job, message: str) -> None:
        with self.lock:
            job.error = message
            job.finish(State.FAILED)


def job_note(reason: StopReason, iterations: int, detail: str | None) -> str | None:
    """What a finished job's status says about why it stopped; nothing when it just ended."""
    if reason in (StopReason.DONE, StopReason.CANCELLED):
        return None
    note = reason.message(iterations, detail)
    return f"{note}; the result is the best image before that" if reason.failed else note


def _open(path: Path) -> Image.Image:
    """An upload as the engine wants it: RGB, or RGBA when it has transparency to keep."""
    rgb, alpha = images.load_image_and_alpha(path)
    return images.apply_alpha(rgb, alpha)


def _without_paths(message: str, job: Job) -> str:
    # Engine errors name files by their server path, which is no business of the client.
    for label, path in (
        ("content", job.content),
        *((f"styles[{i}]", p) for i, p in enumerate(job.styles, start=1)),
    ):
        message = message.replace(str(path), label)
    return message.replace(str(job.folder), "(job)")

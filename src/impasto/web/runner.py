"""Running one job: the engine's progress, previews and outcome, recorded on the job.

Every job field is written under the queue's lock, which request handlers read under;
a run is touched by its worker alone. :meth:`JobRunner.stop_soon` may be called from a
signal handler: it only sets flags, which the worker reads between iterations. A queue
with several workers has a runner for each.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ImpastoError
from ..io import images
from ..results import StopReason
from .job import (
    Engine,
    Interruptible,
    Job,
    JobEngine,
    ProgressLike,
    ResultLike,
    Resumable,
    RunLike,
    State,
    Suspendable,
    can_resume,
)
from .policy import web_wording
from .uploads import DecodeSlots

log = logging.getLogger("impasto.web")


class JobRunner:
    """Runs jobs on ``engine`` one after another, keeping a preview every ``preview_seconds``.

    ``persist`` is called with the lock held whenever a job's lasting state changed;
    ``engines`` runs the jobs of other kinds (``video``) by kind.
    """

    def __init__(
        self,
        engine: Engine,
        lock: threading.Lock,
        preview_seconds: float,
        decodes: DecodeSlots | None = None,
        persist: Callable[[Job], None] = lambda job: None,
        engines: Mapping[str, Any] | None = None,
    ):
        self.engine = engine
        self.engines = dict(engines or {})
        self.decodes = decodes or DecodeSlots(1)
        self.lock = lock
        self.preview_seconds = preview_seconds
        self.persist = persist
        self.stopping = False
        self._job: Job | None = None
        self._current: RunLike | None = None

    def stop_soon(self) -> None:
        """Stop the running job after its current iteration, to be resumed later."""
        self.stopping = True
        run = self._current
        if isinstance(run, Suspendable):
            run.request_suspend()
        elif isinstance(run, Interruptible):
            run.request_stop()

    def stop_job(self, job: Job) -> None:
        """Stop the run of ``job`` early if this runner runs it (its cancel is set): a run
        that has not reported its first iteration yet (a Ray task still waiting for a
        worker) would otherwise be seen to stop only once it has."""
        run = self._current
        if self._job is job and isinstance(run, Interruptible):
            run.request_stop()

    def engine_for(self, job: Job) -> Any:
        return self.engines.get(job.kind, self.engine)

    def run(self, job: Job) -> None:
        """Run the job to its end; whatever happens, it ends finished (or queued again)."""
        self._job = job
        try:
            result, stopped = self._execute(job)
        except ImpastoError as e:
            self._fail(job, web_wording(_without_paths(str(e), job)))
        except Exception as e:
            log.exception("job %s failed", job.id)
            self._fail(job, f"the job failed inside the server: {_summary(e, job)}")
        else:
            self._record_result(job, result, stopped)
        finally:
            self._job = self._current = None

    def _execute(self, job: Job) -> tuple[ResultLike | None, StopReason | None]:
        """The run's result (None when nothing ran) and why it was stopped early, if it was."""
        run = self._start(job)
        self._current = run
        stopped = self._why_stop(job) or self._follow(job, run)
        if stopped is not None and (job.iteration == 0 or getattr(run, "abandoned", False)):
            return None, stopped  # the start image is no result, nor a run that never began
        result = run.result(stopped)
        result.save(job.result_path, overwrite=True)
        resumable = isinstance(run, Resumable) and can_resume(self.engine_for(job))
        if stopped is StopReason.INTERRUPTED and resumable:
            run.save_state(job.state_path)  # type: ignore[union-attr]
        return result, stopped

    def _start(self, job: Job) -> RunLike:
        engine = self.engine_for(job)
        if isinstance(engine, JobEngine):  # opens its files and continues what it finds
            return engine.start_job(job)
        if job.resumable and job.state_path.is_file():
            return engine.resume(job.state_path)  # type: ignore[attr-defined]
        with self.decodes.held():
            content = _open(job.content)
        styles = []
        for path in job.styles:
            with self.decodes.held():
                styles.append(_open(path))
        return engine(content, styles, job.settings)

    def _why_stop(self, job: Job) -> StopReason | None:
        if job.cancel.is_set():
            return StopReason.CANCELLED
        return StopReason.INTERRUPTED if self.stopping else None

    def _follow(self, job: Job, run: RunLike) -> StopReason | None:
        """Iterate the run until it ends (None) or is stopped (the reason)."""
        last_preview = 0.0
        with contextlib.closing(run.run()) as progress:  # type: ignore[type-var]
            for p in progress:
                now = time.monotonic()
                # Encoding an image every iteration would cost more than the step itself.
                fresh = None
                if now - last_preview >= self.preview_seconds or p.iteration == 1:
                    fresh, last_preview = p.image(), now
                self._record_progress(job, p, fresh)
                if (stopped := self._why_stop(job)) is not None:
                    return stopped
        return self._why_stop(job)

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
            # A video says which frame it paints; p.iteration is inside that frame.
            job.frame = getattr(p, "frame", None)
            job.frames = getattr(p, "frames", None)
            job.frames_done = getattr(p, "frames_done", None)
            if preview is not None:
                job.show(preview)

    def _record_result(
        self, job: Job, result: ResultLike | None, stopped: StopReason | None
    ) -> None:
        with self.lock:
            job.eta = 0.0
            if result is None:
                _record_nothing_ran(job, stopped)
            else:
                _record_outcome(job, result, stopped)
            self.persist(job)

    def _fail(self, job: Job, message: str) -> None:
        with self.lock:
            job.error = message
            job.eta = None
            job.resumable = False
            job.finish(State.FAILED)
            self.persist(job)


def _record_nothing_ran(job: Job, stopped: StopReason | None) -> None:
    if stopped is StopReason.INTERRUPTED:
        # Nothing is lost by starting again: the job waits for the next start of the server.
        job.state, job.started, job.eta = State.QUEUED, None, None
        return
    if job.has_result:  # a resumed job cancelled before it went on
        job.note = "cancelled before it went on; the result is the best image it had"
    else:
        job.note = "cancelled before its first iteration; there is no result"
    job.resumable = False
    job.state_path.unlink(missing_ok=True)
    job.finish(State.CANCELLED)


def _record_outcome(job: Job, result: ResultLike, stopped: StopReason | None) -> None:
    reason = StopReason(result.stopped)
    # A video has a result once the whole video is written, not before.
    job.has_result = bool(getattr(result, "written", True))
    # The engine's copy records the seed it drew, so the status tells how to repeat it.
    job.settings = getattr(result, "settings", job.settings)
    job.losses = dict(result.losses) or job.losses
    job.best_total = (job.losses or {}).get("total")
    if result.image is not None:
        job.show(result.image)
    job.frames_done = getattr(result, "frames_done", job.frames_done)
    summary = getattr(result, "summary", None)  # an engine's own word on how it ended
    if stopped is StopReason.INTERRUPTED:
        job.resumable = job.state_path.is_file()
        job.note = summary or interrupted_note(job.iteration, job.resumable)
        job.finish(State.INTERRUPTED)
        return
    job.resumable = False
    job.state_path.unlink(missing_ok=True)
    job.note = summary or job_note(reason, job.iteration, getattr(result, "stop_detail", None))
    job.finish(State.CANCELLED if stopped is StopReason.CANCELLED else State.DONE)


def interrupted_note(iterations: int, resumable: bool, has_result: bool = True) -> str:
    """What an interrupted job's status says."""
    note = f"the server stopped after {iterations} iterations"
    if has_result:
        note += "; the result is the best image so far"
    return note + ("; resume the job to continue" if resumable else "")


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


_ANY_PATH = re.compile(r"(?<![\w.])/[^\s:'\"()]+")


def _summary(error: BaseException, job: Job) -> str:
    """An unexpected error in one line a client may see: its kind and first line, no paths."""
    first = (str(error).strip().splitlines() or [""])[0][:300]
    text = _ANY_PATH.sub("(path)", _without_paths(first, job))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

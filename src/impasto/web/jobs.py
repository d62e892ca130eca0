"""The job queue: one worker runs jobs one at a time on the server's device.

A thread is enough: PyTorch releases the GIL while it computes, so the web server
stays responsive. Everything a request handler reads is copied out under the lock
(:meth:`JobQueue.status`); the worker alone touches the engine.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from ..errors import ImpastoError
from ..io import images
from ..settings import Settings
from .config import ServerConfig
from .uploads import remove_tree

log = logging.getLogger("impasto.web")

RESULT_NAME = "result.png"


class State(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (State.DONE, State.CANCELLED, State.FAILED)


# --- the engine, as the queue sees it (the real one is impasto.optimize.Stylizer) ---------
class ProgressLike(Protocol):
    iteration: int
    iterations: int
    losses: dict[str, float]
    best_total: float
    elapsed: float

    @property
    def eta(self) -> float: ...

    def image(self) -> Image.Image: ...


class ResultLike(Protocol):
    image: Image.Image
    losses: dict[str, float]
    stopped: str

    def save(self, path: str | Path, *, overwrite: bool = False) -> None: ...


class RunLike(Protocol):
    def run(self) -> Iterator[ProgressLike]: ...

    def result(self, stopped: str | None = None) -> ResultLike: ...


Engine = Callable[[Image.Image, Sequence[Image.Image], Settings], RunLike]


def stylizer_engine(
    content: Image.Image, styles: Sequence[Image.Image], settings: Settings
) -> RunLike:
    from ..optimize import Stylizer  # torch is imported when the first job runs

    return Stylizer(content, list(styles), settings)


# --- jobs ------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    folder: Path
    content: Path
    styles: list[Path]
    settings: Settings
    iterations: int  # planned until the engine reports its own count
    created: float = field(default_factory=time.time)
    state: State = State.QUEUED
    iteration: int = 0
    losses: dict[str, float] | None = None
    best_total: float | None = None
    elapsed: float | None = None
    eta: float | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    note: str | None = None
    scale: int | None = None  # index of the current scale of a multi-scale run, 0 = coarsest
    scales: int | None = None
    scale_size: list[int] | None = None  # [width, height] being optimised now
    preview: Image.Image | None = None
    preview_version: int = 0
    preview_png: tuple[int, bytes] | None = None  # (version, encoded) cache
    has_result: bool = False
    discard: bool = False  # delete as soon as the worker lets go of it
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT_NAME


def new_job_id() -> str:
    return uuid.uuid4().hex


def _finite(x: float | None) -> float | None:
    # JSON has no NaN or infinity; a missing number says the same to a client.
    return x if x is not None and math.isfinite(x) else None


class QueueFull(Exception):
    pass


class JobQueue:
    """Jobs by id, the waiting line, the worker thread and the clean-up of old jobs."""

    def __init__(self, config: ServerConfig, folder: Path, engine: Engine | None = None):
        self.config = config
        self.folder = folder
        self.engine: Engine = engine or stylizer_engine
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._worker: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._worker is None and not self._closing:
                self._worker = threading.Thread(
                    target=self._work, name="impasto-worker", daemon=True
                )
                self._worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the worker (a job in its set-up finishes that first)."""
        with self._lock:
            self._closing = True
            for job in self._jobs.values():
                job.cancel.set()
            self._wake.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # --- requests ----------------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.folder / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def check_room(self) -> None:
        """Raise :class:`QueueFull` when another job would not fit in the line."""
        with self._lock:
            self._check_room_locked()

    def _check_room_locked(self) -> None:
        if len(self._waiting) >= self.config.max_queue:
            raise QueueFull(
                f"the queue is full ({len(self._waiting)} jobs waiting); try again later"
            )

    def submit(self, job: Job) -> dict[str, Any]:
        self.start()
        with self._lock:
            self._check_room_locked()
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._wake.notify_all()
            return self._status_locked(job)

    def status(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._status_locked(job)

    def statuses(self) -> list[dict[str, Any]]:
        self.sweep()
        with self._lock:
            return [
                self._status_locked(j) for j in sorted(self._jobs.values(), key=lambda j: j.created)
            ]

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a queued job now, or ask a running one to stop after this iteration."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state is State.QUEUED:
                self._waiting.remove(job)
                self._finish_locked(job, State.CANCELLED)
            elif job.state is State.RUNNING:
                job.cancel.set()
            return self._status_locked(job)

    def delete(self, job_id: str) -> bool:
        """Cancel and forget a job, deleting its files (a running one once it has stopped)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state is State.RUNNING:
                job.discard = True
                job.cancel.set()
                return True
            if job.state is State.QUEUED:
                self._waiting.remove(job)
            del self._jobs[job_id]
        remove_tree(job.folder)
        return True

    def preview_png(self, job_id: str) -> bytes | None:
        """The latest preview as PNG; encoded once per version, outside the lock."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.preview is None:
                return None
            if job.preview_png and job.preview_png[0] == job.preview_version:
                return job.preview_png[1]
            version, image = job.preview_version, job.preview
        data = _png_bytes(image)
        with self._lock:
            job.preview_png = (version, data)
        return data

    def result_png(self, job_id: str) -> bytes | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.has_result:
                return None
            path = job.result_path
        try:
            return path.read_bytes()
        except OSError:  # deleted by the sweep meanwhile
            return None

    def job_state(self, job_id: str) -> tuple[State, str | None] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else (job.state, job.error)

    # --- status ---------------------------------------------------------------------------
    def _status_locked(self, job: Job) -> dict[str, Any]:
        position = None
        if job.state is State.QUEUED:
            position = self._waiting.index(job) + 1
        return {
            "id": job.id,
            "state": job.state.value,
            "position": position,
            "iteration": job.iteration,
            "iterations": job.iterations,
            "losses": None
            if job.losses is None
            else {k: _finite(v) for k, v in job.losses.items()},
            "best_total": _finite(job.best_total),
            "elapsed": _finite(job.elapsed),
            "eta": _finite(job.eta),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "error": job.error,
            "note": job.note,
            "scale": job.scale,
            "scales": job.scales,
            "scale_size": job.scale_size,
            "preview_version": job.preview_version,
            "has_result": job.has_result,
            "cancel_requested": job.cancel.is_set() and not job.state.finished,
            "settings": job.settings.to_dict(),
        }

    # --- the worker -------------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)
            self.sweep()

    def _next(self) -> Job | None:
        """Wait for the next job (None once closing); meanwhile delete expired jobs."""
        with self._lock:
            while not self._waiting and not self._closing:
                # Wake now and then so old jobs go even when nobody submits or lists.
                self._wake.wait(timeout=min(60.0, self.config.keep_seconds))
                self._remove(self._expired_locked())
            if self._closing:
                return None
            job = self._waiting.popleft()
            job.state = State.RUNNING
            job.started = time.time()
            return job

    def _run(self, job: Job) -> None:
        try:
            content = _open(job.content)
            styles = [_open(p) for p in job.styles]
            run = self.engine(content, styles, job.settings)
            stopped = "cancelled" if job.cancel.is_set() else None
            if stopped is None:
                last_preview = 0.0
                for p in run.run():
                    now = time.monotonic()
                    # Encoding an image every iteration would cost more than the step itself.
                    fresh = None
                    if now - last_preview >= self.config.preview_seconds or p.iteration == 1:
                        fresh, last_preview = p.image(), now
                    self._progress(job, p, fresh)
                    if job.cancel.is_set():
                        stopped = "cancelled"
                        break
            result = run.result(stopped)
            result.save(job.result_path, overwrite=True)
        except ImpastoError as e:
            self._fail(job, _without_paths(str(e), job))
            return
        except Exception:
            log.exception("job %s failed", job.id)
            self._fail(job, "the job failed inside the server (see the server log)")
            return
        with self._lock:
            job.has_result = True
            # The engine's copy records the seed it drew, so the status tells how to repeat it.
            job.settings = getattr(result, "settings", job.settings)
            job.losses = dict(result.losses)
            job.best_total = result.losses.get("total")
            job.eta = 0.0
            self._set_preview_locked(job, result.image)
            job.note = _note(result.stopped, getattr(run, "oom_message", None))
            self._finish_locked(job, State.CANCELLED if stopped == "cancelled" else State.DONE)

    def _progress(self, job: Job, p: ProgressLike, preview: Image.Image | None) -> None:
        with self._lock:
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
                self._set_preview_locked(job, preview)

    def _set_preview_locked(self, job: Job, image: Image.Image) -> None:
        job.preview = image
        job.preview_version += 1

    def _fail(self, job: Job, message: str) -> None:
        with self._lock:
            job.error = message
            self._finish_locked(job, State.FAILED)

    def _finish_locked(self, job: Job, state: State) -> None:
        job.state = state
        job.finished = time.time()

    # --- clean-up -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Delete finished jobs past their time, beyond the number kept, or asked to go."""
        with self._lock:
            expired = self._expired_locked()
        self._remove(expired)

    def _expired_locked(self) -> list[Job]:
        now = time.time()
        done = sorted(
            (j for j in self._jobs.values() if j.state.finished),
            key=lambda j: j.finished or 0.0,
            reverse=True,
        )
        expired = [
            j
            for i, j in enumerate(done)
            if j.discard
            or i >= self.config.keep_jobs
            or now - (j.finished or now) > self.config.keep_seconds
        ]
        for j in expired:
            del self._jobs[j.id]
        return expired

    def _remove(self, jobs: list[Job]) -> None:
        for j in jobs:
            remove_tree(j.folder)


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


NOTES = {
    "nan": "the loss became NaN or infinite; the result is the best image before that "
    "(try a lower learning rate or smaller weights)",
    "oom": "ran out of memory; the result is the best image before that (try a smaller size)",
    "converged": "stopped early: the loss had stopped improving (see the tolerance setting)",
}


def _note(stopped: str, detail: str | None) -> str | None:
    note = NOTES.get(stopped)
    return f"{note} ({detail})" if note and detail else note


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

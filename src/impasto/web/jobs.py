"""The job queue: one worker runs jobs one at a time on the server's device.

A thread is enough: PyTorch releases the GIL while it computes, so the web server
stays responsive. Everything a request handler reads is copied out under the lock
(:meth:`JobQueue.status`); the worker alone touches the engine (:mod:`.runner`).
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from .config import ServerConfig
from .job import Engine, Job, State, new_job_id, stylizer_engine
from .runner import JobRunner
from .uploads import remove_tree

__all__ = ["Engine", "Job", "JobQueue", "QueueFull", "State"]


class QueueFull(Exception):
    pass


class JobQueue:
    """Jobs by id, the waiting line, the worker thread and the clean-up of old jobs."""

    def __init__(self, config: ServerConfig, folder: Path, engine: Engine | None = None):
        self.config = config
        self.folder = folder
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._worker: threading.Thread | None = None
        self._runner = JobRunner(engine or stylizer_engine, self._lock, config.preview_seconds)

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
                job.finish(State.CANCELLED)
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
        position = self._waiting.index(job) + 1 if job.state is State.QUEUED else None
        return job.status(position)

    # --- the worker -------------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._runner.run(job)
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


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

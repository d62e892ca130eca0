"""The job queue: one worker runs jobs one at a time on the server's device, or several
workers run that many at once where the engine's runs happen elsewhere (Ray tasks).

A thread per worker is enough: PyTorch releases the GIL while it computes, and a worker
following a Ray task mostly waits, so the web server stays responsive. Everything a
request handler reads is copied out under the lock (:meth:`JobQueue.status`); each
worker alone touches the run of its job (:mod:`.runner`). Every change that should
outlive the process is written to the job database (:mod:`.store`) under the same lock.
"""

from __future__ import annotations

import collections
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .config import ServerConfig
from .job import VIDEO, Engine, Job, State, StylizerEngine, can_resume, new_job_id
from .runner import JobRunner, interrupted_note
from .store import JobStore
from .uploads import DecodeSlots, remove_tree
from .video_run import VideoEngine
from .workers import Workers

__all__ = ["Engine", "Job", "JobQueue", "NotResumable", "QueueFull", "ShuttingDown", "State"]


class QueueFull(Exception):
    pass


class ShuttingDown(Exception):
    pass


class NotResumable(Exception):
    pass


class JobQueue:
    """Jobs by id, the waiting line, the worker threads and the clean-up of old jobs."""

    def __init__(
        self,
        config: ServerConfig,
        root: Path,
        engine: Engine | None = None,
        decodes: DecodeSlots | None = None,
        workers: int = 1,
        engines: dict[str, Any] | None = None,
    ) -> None:
        """``root`` is the work folder: the database and ``jobs/`` with a folder per job;
        ``decodes`` limits the images decoded at once (shared with the request handlers);
        ``workers`` is how many jobs run at once (more than one only for an engine whose
        runs do not compete for this machine, such as Ray tasks); ``engines`` runs the
        jobs of other kinds, by kind (video jobs: :class:`~.video_run.VideoEngine`)."""
        self.config = config
        self.folder = root / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.engine = engine or StylizerEngine(config.device)
        self.engines = {VIDEO: VideoEngine()} if engines is None else engines
        self.stopping = False  # set by a signal handler: no locks, the workers poll it
        self._hurry = False  # a second signal: stop waiting for the workers
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._pending = 0  # submissions being checked, counted against the queue's room
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        decodes = decodes or DecodeSlots(config.max_decodes)
        self._workers = Workers(
            workers,
            lambda: JobRunner(
                self.engine,
                self._lock,
                config.preview_seconds,
                decodes,
                self._persist,
                self.engines,
            ),
            self._work,
        )
        self.store = JobStore(root)
        self._restore()

    # --- life cycle ----------------------------------------------------------------
    def _restore(self) -> None:
        """Take up the jobs of an earlier run of the server on this folder."""
        for job in self.store.load():
            _recover(job, can_resume(self.engines.get(job.kind, self.engine)))
            self._jobs[job.id] = job
            self._waiting.extend([job] if job.state is State.QUEUED else [])
            self.store.save(job)
        for leftover in self.folder.iterdir():  # folders of submissions that never finished
            if leftover.is_dir() and leftover.name not in self._jobs:
                remove_tree(leftover)
        self.sweep()

    def start(self) -> None:
        with self._lock:
            if not self._closing:
                self._workers.start()

    @property
    def closed(self) -> bool:
        return self._closing

    def stop_soon(self) -> None:
        """Stop the running jobs after their iteration and start no other (signal-safe)."""
        self.stopping = True
        self._workers.stop_soon()

    def stop_now(self) -> None:
        """Stop waiting for the workers at shut-down (signal-safe)."""
        self.stop_soon()
        self._hurry = True

    def close(self, timeout: float = 60.0) -> None:
        """Stop the workers; running jobs are saved as interrupted, queued jobs stay queued."""
        self.stop_soon()
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        if self._workers.join(timeout, lambda: self._hurry):
            self.store.close()

    # --- requests ----------------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.folder / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """A place in the line for a submission while its uploads are checked."""
        with self._lock:
            self._check_room_locked(extra=1)
            self._pending += 1
        try:
            yield
        finally:
            with self._lock:
                self._pending -= 1

    def _check_room_locked(self, extra: int = 0) -> None:
        if self.stopping or self._closing:
            raise ShuttingDown("the server is shutting down; try again in a minute")
        if len(self._waiting) + self._pending + extra > self.config.max_queue:
            raise QueueFull(
                f"the queue is full ({len(self._waiting) + self._pending} jobs waiting); "
                "try again later"
            )

    def submit(self, job: Job) -> dict[str, Any]:
        """Queue a job whose place was reserved with :meth:`reserve`."""
        self.start()
        with self._lock:
            self._check_room_locked()
            self._jobs[job.id] = job
            self._waiting.append(job)
            self.store.save(job)
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
                job.note = "cancelled before it started; there is no result"
                job.finish(State.CANCELLED)
                self.store.save(job)
            elif job.state is State.RUNNING:
                job.cancel.set()
                self._workers.stop_job(job)
            return self._status_locked(job)

    def resume(self, job_id: str) -> dict[str, Any] | None:
        """Queue an interrupted job again, to continue from its saved state."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            _check_resumable(job)
            self._check_room_locked(extra=1)
            job.state, job.finished, job.note, job.eta = State.QUEUED, None, None, None
            job.cancel.clear()
            self._waiting.append(job)
            self.store.save(job)
            self._wake.notify_all()
        self.start()
        return self.status(job_id)

    def delete(self, job_id: str) -> bool:
        """Cancel and forget a job, deleting its files (a running one once it has stopped)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state is State.RUNNING:
                job.discard = True
                job.cancel.set()
                self._workers.stop_job(job)
                return True
            if job.state is State.QUEUED:
                self._waiting.remove(job)
            del self._jobs[job_id]
            self.store.delete(job_id)
        remove_tree(job.folder)
        return True

    def preview_png(self, job_id: str) -> bytes | None:
        """The latest preview as PNG; encoded once per version, outside the lock."""
        return _preview_png(self._lock, self._jobs, job_id)

    def result_png(self, job_id: str) -> bytes | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else _result_bytes(job)

    def result_file(self, job_id: str) -> tuple[Path, str] | None:
        """The result's path and media type (a video is served from its file)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.has_result or not job.result_path.is_file():
                return None
            return job.result_path, job.result_type

    def _status_locked(self, job: Job) -> dict[str, Any]:
        position = self._waiting.index(job) + 1 if job.state is State.QUEUED else None
        return job.status(position)

    def _persist(self, job: Job) -> None:
        """Called by the runner, with the lock held, when a job's outcome is known."""
        if job.state is State.QUEUED:  # stopped before its first iteration: it waits again
            self._waiting.appendleft(job)
        self.store.save(job)

    # --- the workers ------------------------------------------------------------------------
    def _work(self, runner: JobRunner) -> None:
        while (job := self._next()) is not None:
            runner.run(job)
            self.sweep()

    def _next(self) -> Job | None:
        """Wait for the next job (None once closing); meanwhile delete expired jobs."""
        with self._lock:
            while not self._waiting and not self._closing and not self.stopping:
                # Wake now and then so old jobs go even when nobody submits or lists.
                self._wake.wait(timeout=min(60.0, self.config.keep_seconds))
                _remove(self._expired_locked())
            if self._closing or self.stopping:
                return None
            job = self._waiting.popleft()
            job.state = State.RUNNING
            job.started = job.started or time.time()
            self.store.save(job)
            return job

    # --- clean-up -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Delete finished jobs past their time, beyond the number kept, or asked to go."""
        with self._lock:
            expired = self._expired_locked()
        _remove(expired)

    def _expired_locked(self) -> list[Job]:
        expired = _expired(list(self._jobs.values()), self.config)
        for j in expired:
            del self._jobs[j.id]
            self.store.delete(j.id)
        return expired


def _remove(jobs: list[Job]) -> None:
    for j in jobs:
        remove_tree(j.folder)


def _expired(jobs: list[Job], config: ServerConfig) -> list[Job]:
    """Finished jobs past their time, beyond the number kept, or asked to go."""
    now = time.time()
    done = sorted((j for j in jobs if j.state.finished), key=lambda j: -(j.finished or 0.0))
    return [
        j
        for i, j in enumerate(done)
        if j.discard or i >= config.keep_jobs or now - (j.finished or now) > config.keep_seconds
    ]


def _check_resumable(job: Job) -> None:
    if job.state is not State.INTERRUPTED or not job.resumable:
        raise NotResumable(
            "only an interrupted job whose state was saved can be resumed; this job "
            f"is {job.state.value}"
        )


def _result_bytes(job: Job) -> bytes | None:
    return _file_bytes(job.result_path) if job.has_result else None


def _file_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # deleted by the sweep meanwhile
        return None


def _recover(job: Job, can_resume: bool) -> None:
    """A job as an earlier server left it, made true to what is on disk now."""
    job.has_result = job.has_result and job.result_path.is_file()
    # The preview of a job from before is its result (a video's: its last frame painted).
    job.preview_version = int(job.preview_path.is_file() and (job.has_result or job.kind == VIDEO))
    if job.state is State.RUNNING:  # the server died under it
        job.state, job.finished = State.INTERRUPTED, job.finished or time.time()
    if job.state is State.INTERRUPTED:
        job.resumable = can_resume and job.state_path.is_file()
        if job.kind != VIDEO or not job.note:  # a video's own note says which frame is next
            job.note = interrupted_note(job.iteration, job.resumable, job.has_result)
    if job.state is State.QUEUED and not all(p.is_file() for p in (job.content, *job.styles)):
        job.error = "its uploaded images are gone from the server's folder"
        job.finish(State.FAILED)


def _preview_png(lock: threading.Lock, jobs: dict[str, Job], job_id: str) -> bytes | None:
    """The latest preview as PNG; encoded once per version, outside the lock."""
    with lock:
        job = jobs.get(job_id)
        if job is None:
            return None
        if job.preview is None:  # a job from before a restart shows its result
            return _file_bytes(job.preview_path) if job.preview_version else None
        if job.preview_png and job.preview_png[0] == job.preview_version:
            return job.preview_png[1]
        version, image = job.preview_version, job.preview
    data = _png_bytes(image)
    with lock:
        job.preview_png = (version, data)
    return data


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

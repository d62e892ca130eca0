"""One web job as a Ray task, its progress and previews flowing back to the server.

:func:`ray_engine` makes an engine in the shape the web app's queue drives
(:data:`impasto.web.job.Engine`): called with a job's images and settings it returns a
:class:`RemoteRun`, whose :meth:`~RemoteRun.run` yields progress while a Ray task
paints, and whose :meth:`~RemoteRun.result` is the task's :class:`StylizeResult`.
The images travel as PNG bytes through the object store; progress, a preview every
``preview_seconds`` and a request to stop go through a small Ray actor (a
:class:`_Channel`) that the task and the server both talk to. Several runs may be
followed at once, each from its own thread, and run side by side on the cluster:
``impasto serve --ray`` gives its queue as many workers as the cluster runs tasks at
once (:attr:`RayEngine.slots`). A run suspended at a shut-down
(:meth:`RemoteRun.request_suspend`) sends its state back with its result; the server
keeps it as the job's state file, and :meth:`RayEngine.resume` continues it in a new
task, wherever the cluster places it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from PIL import Image

from ..errors import ImpastoError
from ..io.files import atomic_file
from ..results import StopReason, StylizeResult
from ..settings import Settings
from .cluster import (
    MAX_RETRIES,
    Connection,
    TaskResources,
    connect,
    png_bytes,
    png_image,
    task_resources,
)

# How often the task sends progress and asks whether to stop: often enough for a
# progress bar, rarely enough that a fast GPU step does not wait on the actor.
SEND_SECONDS = 0.2
STOP_CHECK_SECONDS = 0.5


class _Channel:
    """The latest progress and preview of one job, and whether it should stop (and keep
    its state, to be resumed)."""

    def __init__(self) -> None:
        self.progress: dict[str, Any] | None = None
        self.preview: bytes | None = None
        self.versions = (0, 0)  # (progress, preview)
        self.stop = False
        self.keep = False

    def put(self, progress: dict[str, Any], preview: bytes | None) -> None:
        n, m = self.versions
        self.progress = progress
        if preview is not None:
            self.preview, m = preview, m + 1
        self.versions = (n + 1, m)

    def take(self, seen: tuple[int, int]) -> tuple[tuple[int, int], dict | None, bytes | None]:
        """What is newer than ``seen``: versions, progress, and the preview if it changed."""
        preview = self.preview if self.versions[1] != seen[1] else None
        return self.versions, self.progress, preview

    def request_stop(self, keep: bool = False) -> None:
        self.stop, self.keep = True, keep

    def stop_requested(self) -> tuple[bool, bool]:
        """Whether to stop, and whether to send the state back."""
        return self.stop, self.keep


@dataclass
class RemoteProgress:
    """A progress report from the task (the fields of :class:`impasto.results.Progress`)."""

    iteration: int
    iterations: int
    scale: int
    scales: int
    size: tuple[int, int]
    scale_iteration: int
    losses: dict[str, float]
    best_total: float
    elapsed: float
    eta: float
    _preview: Callable[[], Image.Image] = field(repr=False)

    def image(self) -> Image.Image:
        """The latest preview the task sent (every ``preview_seconds``, and the first step's)."""
        return self._preview()


class _Reporter:
    """The task's side of the channel: sends progress, previews, and hears a stop.

    The stop is asked for by a thread of its own, every ``STOP_CHECK_SECONDS``: Ray lends
    the CPUs of a task whose main thread waits in ``ray.get`` to other tasks, so asking
    from the painting thread let a queued job start beside this one on the same CPUs.
    """

    def __init__(self, ray: ModuleType, channel: Any, preview_seconds: float):
        self.ray, self.channel, self.preview_seconds = ray, channel, preview_seconds
        self.sent = self.previewed = -1e9
        self.keep = False  # the stop asks for the state, to resume the run later
        self._stop = threading.Event()
        self._answered = threading.Event()  # the channel has answered once
        self._ended = threading.Event()
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        try:
            while not self._stop.is_set():
                stop, self.keep = self.ray.get(self.channel.stop_requested.remote())
                if stop:
                    self._stop.set()
                self._answered.set()
                if self._ended.wait(STOP_CHECK_SECONDS):
                    return
        except self.ray.exceptions.RayError:  # the channel went with its job
            self._answered.set()

    def first_answer(self) -> bool:
        """Whether the job was stopped before its task began (waits for the channel)."""
        self._answered.wait()
        return self._stop.is_set()

    def end(self) -> None:
        self._ended.set()

    def report(self, p: Any) -> bool:
        """Send ``p`` if it is time; True when the job should stop."""
        now = time.monotonic()
        if now - self.sent >= SEND_SECONDS or p.iteration == 1:
            preview = None
            if now - self.previewed >= self.preview_seconds or p.iteration == 1:
                preview, self.previewed = png_bytes(p.image()), now
            fields = {k: getattr(p, k) for k in _PROGRESS_FIELDS}
            self.channel.put.remote(fields, preview)
            self.sent = now
        return self._stop.is_set()


_PROGRESS_FIELDS = (
    "iteration",
    "iterations",
    "scale",
    "scales",
    "size",
    "scale_iteration",
    "losses",
    "best_total",
    "elapsed",
    "eta",
)


def job_task(
    content: bytes,
    settings: dict[str, Any] | None,
    channel: Any,
    preview_seconds: float,
    state: bytes | None,
    *styles: bytes,
) -> tuple[StylizeResult, bytes | None]:
    """The body of a job's task: a :class:`Stylizer` run (continued from ``state``, the
    bytes of a state file, if given, which holds its images and settings), reporting
    through ``channel``. Returns its result, and its state where the stop asked to keep
    it."""
    import ray

    from ..batches.paint import release_device_memory
    from ..run.loop import Stylizer
    from ..run.state import load_state, state_bytes

    reporter = _Reporter(ray, channel, preview_seconds)
    if state is not None:
        stylizer = load_state(state)[0]
    else:
        assert settings is not None
        images = [png_image(s) for s in styles]
        stylizer = Stylizer(png_image(content), images, Settings.from_dict(settings))
    stopped = reporter.first_answer()  # cancelled while it waited for a worker
    try:
        if not stopped:
            for p in stylizer.run():
                if reporter.report(p):
                    stylizer.request_stop()
                    stopped = True
    except KeyboardInterrupt:  # ray.cancel
        stopped, reporter.keep = True, False
    finally:
        reporter.end()
    keep = stopped and reporter.keep
    reason = (StopReason.INTERRUPTED if keep else StopReason.CANCELLED) if stopped else None
    result = stylizer.result(reason)
    kept = state_bytes(stylizer) if keep else None
    release_device_memory(stylizer.device.type)
    return result, kept


@functools.cache
def _remote(ray: ModuleType) -> tuple[Any, Any]:
    return ray.remote(max_calls=0)(job_task), ray.remote(num_cpus=0)(_Channel)


class RemoteRun:
    """A job painted by a Ray task, followed from the server (see the module's text)."""

    def __init__(
        self,
        ray: ModuleType,
        resources: TaskResources,
        content: Image.Image | None,
        styles: Sequence[Image.Image],
        settings: Settings | None,
        *,
        preview_seconds: float = 2.0,
        poll_seconds: float = 0.25,
        state: bytes | None = None,
    ):
        """``state``, the bytes of a state file, continues that run with the images and
        settings it holds (``content`` and ``settings`` are then None)."""
        self.ray = ray
        self.poll_seconds = poll_seconds
        task, channel = _remote(ray)
        self._channel = channel.remote()
        if settings is not None and settings.threads == 0 and resources.threads:
            settings = settings.replace(threads=resources.threads)
        pixels = b"" if content is None else png_bytes(content)
        fields = None if settings is None else settings.to_dict()
        self._args = (pixels, fields, self._channel, preview_seconds, state)
        self._styles = [png_bytes(s) for s in styles]
        self._task = task.options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
        )
        self._ref: Any = None
        self._result: StylizeResult | None = None
        self._preview: Image.Image | None = None
        self._shown = 0  # the last iteration reported
        self._stop = False  # asked to stop (request_stop)
        self._keep = False  # ... to be resumed: the task sends its state back
        self._state: bytes | None = None  # the state it sent
        self._told = False  # the task was told to stop
        self._abandoned = False  # stopped before it painted anything: no result

    def _submit(self) -> None:
        if self._ref is None:
            self._ref = self._task.remote(*self._args, *self._styles)

    def request_stop(self) -> None:
        """Have the task stop after its current iteration (from any thread, or a signal
        handler: this only sets a flag, which :meth:`run` passes on)."""
        self._stop = True

    @property
    def abandoned(self) -> bool:
        """Stopped before its task reported an iteration: it made nothing (a resumed
        run's state file is still the state to continue from)."""
        return self._abandoned

    def request_suspend(self) -> None:
        """Have the task stop after its current iteration and send back its state, so
        that :meth:`save_state` can keep it (a signal handler may call this too)."""
        self._keep = self._stop = True

    def save_state(self, path: Path) -> None:
        """Write the state the task sent back, if it sent one (it was suspended after its
        first iteration); else nothing, and the job is not resumable."""
        if self._state is not None:
            with atomic_file(path) as f:
                f.write(self._state)

    def _tell_stop(self) -> None:
        if not self._told:
            self._told = True
            self._channel.request_stop.remote(self._keep)

    def _abandon(self) -> None:
        """Stop a task that has reported no iteration: cancel it, waiting or not."""
        self._abandoned = True
        self._tell_stop()
        self.ray.cancel(self._ref)
        with contextlib.suppress(Exception):  # cancelled, or stopped: nothing to keep
            self._fetch()

    def run(self) -> Iterator[RemoteProgress]:
        """Progress as the task reports it (not every iteration), until it ends; after
        :meth:`request_stop`, until the task has stopped (at once if it painted nothing)."""
        self._submit()
        seen = (0, 0)
        while self._result is None:
            if self._stop and not self._told:
                if self._shown == 0:
                    self._abandon()
                    return
                self._tell_stop()
            ready, _ = self.ray.wait([self._ref], timeout=self.poll_seconds)
            seen, progress, preview = self.ray.get(self._channel.take.remote(seen))
            if preview is not None:
                self._preview = png_image(preview)
            if progress is not None and progress["iteration"] > self._shown:
                self._shown = progress["iteration"]
                yield RemoteProgress(**progress, _preview=self._latest_preview)
            if ready:
                self._result = self._fetch()
        if self._result.iterations > self._shown:  # the steps since the last report
            self._shown = self._result.iterations
            yield self._final_progress(self._result)

    def result(self, stopped: StopReason | str | None = None) -> StylizeResult:
        """The task's result; with ``stopped`` (a cancel), the task is told to stop first."""
        if self._abandoned:
            raise ImpastoError("the job was stopped before its first iteration")
        if self._result is None:
            if stopped is not None:
                self._tell_stop()
            self._submit()
            self._result = self._fetch()
        if stopped:
            self._result.stopped = StopReason(stopped)
        return self._result

    def _latest_preview(self) -> Image.Image:
        if self._preview is None:
            raise ImpastoError("no preview has arrived from the Ray task yet")
        return self._preview

    def _fetch(self) -> StylizeResult:
        exceptions = self.ray.exceptions
        try:
            result, self._state = self.ray.get(self._ref)
            return result
        except exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, ImpastoError):
                raise cause from None  # bad input or settings: the message the user reads
            raise
        except exceptions.RayError as e:
            raise ImpastoError(
                f"the Ray worker running the job was lost {MAX_RETRIES + 1} times "
                f"({type(e).__name__})"
            ) from None
        finally:
            self.ray.kill(self._channel)

    def _final_progress(self, result: StylizeResult) -> RemoteProgress:
        w, h = result.image.size
        return RemoteProgress(
            iteration=result.iterations,
            iterations=result.iterations,
            scale=len(result.scale_sizes) - 1,
            scales=len(result.scale_sizes),
            size=(w, h),
            scale_iteration=result.scale_iterations[-1] if result.scale_iterations else 0,
            losses=dict(result.losses),
            best_total=result.losses.get("total", float("nan")),
            elapsed=result.seconds,
            eta=0.0,
            _preview=lambda: result.image,
        )


class RayEngine:
    """An engine for the web app's queue whose runs are Ray tasks (see :func:`ray_engine`)."""

    def __init__(
        self,
        connection: Connection,
        *,
        task_cpus: float | None = None,
        task_gpus: float | None = None,
        preview_seconds: float = 2.0,
    ):
        self.connection = connection
        try:
            self.resources = task_resources(connection.ray, task_cpus, task_gpus)
        except BaseException:
            connection.close()
            raise
        self.preview_seconds = preview_seconds

    @property
    def address(self) -> str:
        return self.connection.address

    @property
    def device_type(self) -> str:
        """The kind of device a run gets: a GPU where the tasks claim one, else CPUs."""
        return "cuda" if self.resources.num_gpus else "cpu"

    @property
    def slots(self) -> int:
        """How many runs the cluster's alive nodes paint at once (at least 1)."""
        return max(1, self.resources.slots)

    def __call__(
        self, content: Image.Image, styles: Sequence[Image.Image], settings: Settings
    ) -> RemoteRun:
        return RemoteRun(
            self.connection.ray,
            self.resources,
            content,
            styles,
            settings,
            preview_seconds=self.preview_seconds,
        )

    def resume(self, path: str | os.PathLike[str]) -> RemoteRun:
        """A run that continues the one saved at ``path`` (a state file) in a new task,
        which reads the file's images and settings."""
        return RemoteRun(
            self.connection.ray,
            self.resources,
            None,
            [],
            None,
            preview_seconds=self.preview_seconds,
            state=Path(path).read_bytes(),
        )

    def close(self) -> None:
        """Leave the cluster, if this engine joined it (a local instance stops)."""
        self.connection.close()


def ray_engine(
    address: str | None = None,
    *,
    task_cpus: float | None = None,
    task_gpus: float | None = None,
    preview_seconds: float = 2.0,
) -> RayEngine:
    """An engine for the web app's queue whose runs are Ray tasks on the cluster at
    ``address`` (else ``RAY_ADDRESS``, else a local instance). Joins the cluster now;
    each task claims ``task_cpus`` and ``task_gpus`` (see :func:`task_resources`)."""
    return RayEngine(
        connect(address),
        task_cpus=task_cpus,
        task_gpus=task_gpus,
        preview_seconds=preview_seconds,
    )

"""One job of the web queue, its states, and the engine it runs on, as the queue sees it.

The queue talks to an engine through the small protocol below, so that another kind of
job (video, say) or another place to run it (a cluster) plugs in without touching the
queue: an engine is a callable that turns decoded images and settings into a run; a run
yields progress and gives a result. Stopping a run early and saving its state to resume
it later are optional capabilities (:class:`Interruptible`, :class:`Resumable`).
"""

from __future__ import annotations

import enum
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from ..results import StopReason
from ..settings import Settings

RESULT_NAME = "result.png"
STATE_NAME = "state.pt"
VIDEO = "video"  # the kind of a video job (:mod:`.video_run`); others are "stylize"
VIDEO_RESULT_NAME = "result.mp4"
PREVIEW_NAME = "preview.png"  # a video job's latest painted frame, kept for restarts
RESULT_TYPES = {VIDEO: "video/mp4"}


class State(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by a server shutdown; resumable if its state was saved

    @property
    def finished(self) -> bool:
        return self not in (State.QUEUED, State.RUNNING)


# --- the engine, as the queue sees it (the real one is impasto.run.loop.Stylizer) ---------
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
    stopped: str  # a StopReason, or its value

    def save(self, path: str | Path, *, overwrite: bool = False) -> None: ...


class RunLike(Protocol):
    def run(self) -> Iterator[ProgressLike]: ...

    def result(self, stopped: StopReason | None = None) -> ResultLike: ...


@runtime_checkable
class Interruptible(Protocol):
    """A run that can be asked to stop after its current iteration, from any thread."""

    def request_stop(self) -> None: ...


@runtime_checkable
class Suspendable(Protocol):
    """A run told apart being stopped for good (a cancel, :meth:`request_stop`) from being
    stopped to resume later (a shut-down, :meth:`request_suspend`), because keeping what
    it needs to resume costs it something (a Ray task sends its state back)."""

    def request_suspend(self) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    """A run whose state can be saved between iterations (its engine has ``resume``)."""

    def save_state(self, path: Path) -> None: ...


Engine = Callable[[Image.Image, Sequence[Image.Image], Settings], RunLike]


@runtime_checkable
class JobEngine(Protocol):
    """An engine that opens a job's files itself (a video) and continues whatever of the
    job it finds on disk: starting the job again is how it resumes."""

    def start_job(self, job: Job) -> RunLike: ...


def can_resume(engine: Any) -> bool:
    """Whether ``engine`` continues runs from a saved state: ``engine.resume(path)``, or
    a :class:`JobEngine`."""
    return callable(getattr(engine, "resume", None)) or isinstance(engine, JobEngine)


class StylizerRun:
    """The engine's :class:`~impasto.run.loop.Stylizer`, with its state saved by path."""

    def __init__(self, stylizer: Any):
        self.stylizer = stylizer

    def run(self) -> Iterator[ProgressLike]:
        return self.stylizer.run()

    def result(self, stopped: StopReason | None = None) -> ResultLike:
        return self.stylizer.result(stopped)

    def request_stop(self) -> None:
        self.stylizer.request_stop()

    def save_state(self, path: Path) -> None:
        from ..run.state import save_state

        save_state(self.stylizer, path)


class StylizerEngine:
    """The real engine: a new :class:`Stylizer` per job, or one continued from its state."""

    def __init__(self, device: str | None = None):
        self.device = device  # a resumed run computes where this server does

    def __call__(
        self, content: Image.Image, styles: Sequence[Image.Image], settings: Settings
    ) -> StylizerRun:
        from ..run.loop import Stylizer  # torch is imported when the first job runs

        return StylizerRun(Stylizer(content, list(styles), settings))

    def resume(self, path: Path) -> StylizerRun:
        from ..run.state import load_state

        return StylizerRun(load_state(path, device=self.device)[0])


def stylizer_engine(
    content: Image.Image, styles: Sequence[Image.Image], settings: Settings
) -> RunLike:
    """A run of the real engine (kept for callers that pass engines as functions)."""
    return StylizerEngine()(content, styles, settings)


# --- jobs ------------------------------------------------------------------------------
@dataclass
class Job:
    """A job's inputs and what is known of its run. Read and written under the queue's lock."""

    id: str
    folder: Path
    content: Path
    styles: list[Path]
    settings: Settings
    iterations: int  # planned until the engine reports its own count
    kind: str = "stylize"
    video: dict[str, Any] | None = None  # a video job's VideoSettings, as a dict
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
    frame: int | None = None  # a video: the frame being painted, from 1
    frames: int | None = None  # a video: frames to paint
    frames_done: int | None = None
    preview: Image.Image | None = None
    preview_version: int = 0
    preview_png: tuple[int, bytes] | None = None  # (version, encoded) cache
    has_result: bool = False
    resumable: bool = False  # interrupted with its engine state saved (STATE_NAME)
    discard: bool = False  # delete as soon as the worker lets go of it
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def result_path(self) -> Path:
        return self.folder / (VIDEO_RESULT_NAME if self.kind == VIDEO else RESULT_NAME)

    @property
    def result_type(self) -> str:
        return RESULT_TYPES.get(self.kind, "image/png")

    @property
    def preview_path(self) -> Path:
        """What shows a finished job after a restart: its result, or a video's last frame."""
        return self.folder / PREVIEW_NAME if self.kind == VIDEO else self.result_path

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_NAME

    def show(self, image: Image.Image) -> None:
        """A new preview image."""
        self.preview = image
        self.preview_version += 1

    def finish(self, state: State) -> None:
        self.state = state
        self.finished = time.time()

    def status(self, position: int | None) -> dict[str, Any]:
        """What the API answers about the job (``position`` in the queue, if waiting)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "position": position,
            "iteration": self.iteration,
            "iterations": self.iterations,
            "losses": None
            if self.losses is None
            else {k: _finite(v) for k, v in self.losses.items()},
            "best_total": _finite(self.best_total),
            "elapsed": _finite(self.elapsed),
            "eta": _finite(self.eta),
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "note": self.note,
            "scale": self.scale,
            "scales": self.scales,
            "scale_size": self.scale_size,
            "frame": self.frame,
            "frames": self.frames,
            "frames_done": self.frames_done,
            "preview_version": self.preview_version,
            "has_result": self.has_result,
            "result_type": self.result_type,
            "resumable": self.resumable,
            "cancel_requested": self.cancel.is_set() and not self.state.finished,
            "settings": {**self.settings.to_dict(), **(self.video or {})},
        }


def new_job_id() -> str:
    return uuid.uuid4().hex


def _finite(x: float | None) -> float | None:
    # JSON has no NaN or infinity; a missing number says the same to a client.
    return x if x is not None and math.isfinite(x) else None

"""Fakes and helpers of the web tests: an engine that finishes in milliseconds (held at a
gate so queue positions are deterministic, stoppable and resumable like the real one),
and a test client on a fresh work folder."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from impasto.settings import Settings
from impasto.web import ServerConfig, create_app

TIMEOUT = 20.0


# --- a fake engine ---------------------------------------------------------------------------
class FakeProgress:
    def __init__(self, run: FakeRun, iteration: int):
        self.iteration = iteration
        self.iterations = run.total
        self.losses = {"content": 1.0, "style": 2.0 / iteration, "tv": 0.5, "total": 3.5}
        self.best_total = 3.5 - iteration * 0.01
        self.elapsed = 0.01 * iteration
        self.eta = float("nan") if iteration == 0 else 0.01 * (self.iterations - iteration)
        self._run = run

    def image(self) -> Image.Image:
        return self._run.current()


class FakeResult:
    def __init__(self, image: Image.Image, stopped: str):
        self.image = image
        self.losses = {"content": 1.0, "style": 1.0, "tv": float("nan"), "total": 2.0}
        self.stopped = stopped

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.image.save(path, format="PNG")


class FakeRun:
    def __init__(
        self, engine: FakeEngine, content: Image.Image, settings: Settings, iteration: int = 0
    ):
        self.engine = engine
        self.content = content
        self.settings = settings
        self.total = settings.iterations or 2
        self.iteration = iteration
        self.stop_requested = False

    def current(self) -> Image.Image:
        return ImageOps.invert(self.content).rotate(self.iteration)

    def request_stop(self) -> None:
        self.stop_requested = True

    def run(self) -> Iterator[FakeProgress]:
        for i in range(self.iteration + 1, self.total + 1):
            self._pass_gate()
            time.sleep(self.engine.delay)
            self.iteration = i
            yield FakeProgress(self, i)

    def _pass_gate(self) -> None:
        """Wait at the engine's gate, as a real run waits for its iteration; a stop request
        lets it through, as the real run reports its iteration and then stops."""
        gate = self.engine.gate
        deadline = time.monotonic() + TIMEOUT
        while gate is not None and not gate.wait(0.01) and not self.stop_requested:
            assert time.monotonic() < deadline, "test never opened the gate"

    def result(self, stopped: str | None = None) -> FakeResult:
        return FakeResult(self.current(), stopped or "done")


class FakeEngine:
    """Stands in for impasto.run.loop.Stylizer; records the settings of every job."""

    def __init__(
        self,
        delay: float = 0.0,
        gated: bool = False,
        error: Exception | None = None,
        setup_gated: bool = False,
    ):
        self.delay = delay
        self.gate = threading.Event() if gated else None
        # Held before the run exists, as the real engine is while it loads the network.
        self.setup_gate = threading.Event() if setup_gated else None
        self.error = error
        self.settings: list[Settings] = []
        self.content_modes: list[str] = []
        self.sizes: list[list[tuple[int, int]]] = []  # of the content and styles of each job

    def __call__(self, content: Image.Image, styles: Any, settings: Settings) -> FakeRun:
        self.settings.append(settings)
        self.content_modes.append(content.mode)
        self.sizes.append([content.size, *(s.size for s in styles)])
        if self.setup_gate is not None:
            assert self.setup_gate.wait(TIMEOUT), "test never opened the set-up gate"
        if self.error is not None:
            raise self.error
        return FakeRun(self, content, settings)


class ResumableRun(FakeRun):
    def save_state(self, path: Path) -> None:
        state = {"iteration": self.iteration, "settings": self.settings.to_dict()}
        path.write_text(json.dumps(state))


class ResumableEngine(FakeEngine):
    """A fake engine that saves a run's state and continues it, as the real one does."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.resumed: list[int] = []

    def __call__(self, content: Image.Image, styles: Any, settings: Settings) -> FakeRun:
        self.settings.append(settings)
        return ResumableRun(self, content, settings)

    def resume(self, path: Path) -> ResumableRun:
        state = json.loads(path.read_text())
        self.resumed.append(state["iteration"])
        settings = Settings.from_dict(state["settings"])
        content = Image.new("RGB", (24, 16), (10, 200, 30))
        return ResumableRun(self, content, settings, iteration=state["iteration"])


# --- helpers ------------------------------------------------------------------------------------
def png(width: int = 24, height: int = 16, seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def upload(
    content: bytes | None = None,
    styles: list[bytes] | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.post("/api/jobs", ...)``."""
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("content", ("photo.png", png() if content is None else content, "image/png"))
    ]
    for i, data in enumerate([png(seed=1)] if styles is None else styles):
        files.append(("styles", (f"style{i}.png", data, "image/png")))
    data = {}
    if settings is not None:
        data["settings"] = settings if isinstance(settings, str) else json.dumps(settings)
    return {"files": files, "data": data}


@contextmanager
def serving(tmp_path: Path, engine: Any = None, **limits: Any) -> Iterator[TestClient]:
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu", **limits)
    app = create_app(config, engine=FakeEngine() if engine is None else engine)
    with TestClient(app) as client:
        yield client


def wait_for(client: TestClient, job_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if ok(status):
            return status
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never got there: {status}")


def finished(status: dict[str, Any]) -> bool:
    return status["state"] in ("done", "cancelled", "failed")


def submit(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/api/jobs", **upload(**kwargs))
    assert response.status_code == 201, response.text
    return response.json()


def job_folders(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "work" / "jobs").iterdir())


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")

"""``impasto serve`` as a user runs it: a real process, a real engine, SIGTERM and a restart.

A page watches a running job (its event stream is open) when the server gets SIGTERM:
the job stops at its iteration with its best image and state saved, the stream ends,
the process exits within seconds; started again on the same folder, the server serves
the finished job's result, runs the job that was queued and resumes the interrupted one.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
try:
    import httpx2 as httpx
except ImportError:
    httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

EXIT_SECONDS = 15.0  # what "exits within seconds" is held to
START_SECONDS = 120.0  # importing torch on a busy 2-core machine is slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    frames = [Image.new("RGB", (48, 48), (60 * i, 90, 200)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


class Server:
    def __init__(self, workdir: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        argv = [sys.executable, "-m", "impasto", "serve", "--port", str(port)]
        argv += ["--workdir", str(workdir), "--device", "cpu", "--preview-seconds", "0.2"]
        with open(log, "wb") as err:
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                self.client.get("/api/settings")
                return
            except httpx.TransportError:
                time.sleep(0.2)

    def submit(self, settings: dict[str, Any], content: bytes | None = None) -> str:
        files = [
            ("content", ("photo.png", content or _png(64, 48, 0), "image/png")),
            ("styles", ("painting.png", _png(48, 48, 1), "image/png")),
        ]
        r = self.client.post("/api/jobs", files=files, data={"settings": json.dumps(settings)})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def status(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/api/jobs/{job_id}").json()

    def wait(self, job_id: str, ok: Any, seconds: float = 240.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while not ok(status := self.status(job_id)):
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        return status

    def stop(self) -> float:
        """SIGTERM; the seconds until the process was gone."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self.client.close()
        return time.monotonic() - start


@contextmanager
def watching(server: Server, job_id: str) -> Iterator[list[str]]:
    """Follow a job's event stream in a thread, as the page does; yields the events seen."""
    events: list[str] = []
    client = httpx.Client(base_url=server.url, timeout=120)

    def follow() -> None:
        try:
            with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
        except httpx.TransportError:
            events.append("(dropped)")

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    yield events
    thread.join(30)
    client.close()


def finished(status: dict[str, Any]) -> bool:
    return status["state"] not in ("queued", "running")


def test_sigterm_saves_the_running_job_and_a_restart_carries_on(tmp_path: Path) -> None:
    workdir, port = tmp_path / "work", _free_port()
    server = Server(workdir, port, tmp_path / "first.log")
    small = {"size": 32, "iterations": 2, "seed": 1}
    done = server.submit(small)
    assert server.wait(done, finished)["state"] == "done"
    result = server.client.get(f"/api/jobs/{done}/result").content

    # Request problems are logged one line each, without the server's paths.
    bad = server.client.post(
        "/api/jobs",
        content=b"--abc\r\nContent-Disposition: form-data; name=content\r\n\r\nxx",
        headers={"content-type": "multipart/form-data; boundary=abc"},
    )
    assert bad.status_code in (400, 422)
    animated = server.submit(small, content=_gif())  # Pillow warns: several frames
    server.wait(animated, finished)

    running = server.submit({"size": 64, "iterations": 40, "tolerance": 0, "seed": 2})
    queued = server.submit(small)
    server.wait(running, lambda s: s["iteration"] >= 2)
    with watching(server, running) as events:
        time.sleep(0.5)
        seconds = server.stop()
    assert seconds < EXIT_SECONDS, seconds
    assert events and events[-1] in ("end", "shutdown"), events
    log = server.log.read_text()
    assert "Traceback" not in log and str(workdir) not in log and "site-packages" not in log
    assert f"POST /api/jobs: {bad.status_code}" in log
    assert "has several frames" in log and "(MultiFrameWarning)" in log

    server = Server(workdir, port, tmp_path / "second.log")
    try:
        # The job finished before the restart is served after it.
        assert server.status(done)["state"] == "done"
        assert server.client.get(f"/api/jobs/{done}/result").content == result
        # The queued one runs.
        assert server.wait(queued, finished)["state"] == "done"
        # The running one was interrupted with its best image and its state.
        stopped = server.status(running)
        assert stopped["state"] == "interrupted", stopped
        assert stopped["has_result"] and stopped["resumable"]
        assert server.client.get(f"/api/jobs/{running}/result").status_code == 200
        at = stopped["iteration"]
        assert 2 <= at < 40
        assert server.client.post(f"/api/jobs/{running}/resume").status_code == 200
        final = server.wait(running, finished)
        assert final["state"] == "done" and final["iteration"] == 40, final
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()

"""``impasto serve --ray``: the web app's jobs as Ray tasks, several at once.

The options and a queue of two workers are checked in-process (the latter with the fake
engine of ``web_fakes``); the jobs on Ray run on a real head (2 CPUs, loopback only),
through the app's API and through a real ``impasto serve --ray ADDRESS`` stopped by
SIGTERM.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient
from ray_cluster import LOOPBACK_ENV, Head, joined, loopback_head
from web_fakes import ResumableEngine, submit, wait_for

from impasto.cli import build_parser, main
from impasto.examples import example_paths
from impasto.web import ServerConfig, create_app
from impasto.web.config import RayOptions, ray_options_from_args

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (the 'ray' extra)"
)
# Long enough to be caught running, short enough to finish in seconds on one CPU.
LONG = {"size": 32, "iterations": 1000, "tolerance": 0}
SHORT = {"size": 32, "iterations": 60, "tolerance": 0}
WAIT_SECONDS = 180.0  # starting Ray workers (each imports torch) on a busy 2-core machine


# --- the options ----------------------------------------------------------------------------------
def test_serve_ray_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--ray", "--port", "0"])
    assert ray_options_from_args(args) == RayOptions()
    args = parser.parse_args(["serve", "--ray", "127.0.0.1:6379", "--ray-jobs", "3"])
    assert ray_options_from_args(args) == RayOptions("127.0.0.1:6379", jobs=3)
    args = parser.parse_args(["serve", "--ray", "--task-cpus", "1", "--task-gpus", "0.5"])
    assert ray_options_from_args(args) == RayOptions(task_cpus=1.0, task_gpus=0.5)
    assert ray_options_from_args(parser.parse_args(["serve"])) is None


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--ray", "--ray-jobs", "0"], "--ray-jobs: must be >= 1, got 0"),
        (["--ray-jobs", "2"], "--ray-jobs: jobs run in this process without --ray"),
        (["--ray", "--task-cpus", "-1"], "--task-cpus: must be a number >= 0, got -1.0"),
    ],
)
def test_bad_ray_options_are_refused_in_one_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == 2
    assert capsys.readouterr().err == f"impasto: error: {line}\n"


def test_without_the_ray_extra_serve_ray_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    assert main(["serve", "--ray", "--workdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "impasto: error: running on Ray needs the 'ray' extra: pip install 'impasto[ray]'\n"
    )


# --- a queue of two workers (in-process, fake engine) ---------------------------------------------
def _both(client: TestClient, a: str, b: str, ok: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + 20
    while not (ok(client.get(f"/api/jobs/{a}").json()) and ok(client.get(f"/api/jobs/{b}").json())):
        assert time.monotonic() < deadline, "the two jobs never ran at once"
        time.sleep(0.01)


def _running(status: dict[str, Any]) -> bool:
    return status["state"] == "running" and status["iteration"] >= 2


def test_two_workers_run_two_jobs_at_once_and_a_restart_resumes_both(tmp_path: Path) -> None:
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu")
    settings = {"iterations": 600, "scales": 1}
    app = create_app(config, engine=ResumableEngine(delay=0.005), workers=2)
    with TestClient(app) as client:
        a, b, c, d = (submit(client, settings=settings)["id"] for _ in range(4))
        _both(client, a, b, _running)
        waiting = [client.get(f"/api/jobs/{j}").json() for j in (c, d)]
        assert [(s["state"], s["position"]) for s in waiting] == [("queued", 1), ("queued", 2)]
        client.post(f"/api/jobs/{b}/cancel")  # one worker is free: c starts, a runs on
        assert wait_for(client, b, lambda s: s["state"] == "cancelled")["has_result"]
        _both(client, a, c, _running)
        assert client.get(f"/api/jobs/{d}").json()["position"] == 1
    # The shut-down stopped both running jobs with their state; the queued one waits.
    app = create_app(config, engine=ResumableEngine(), workers=2)
    with TestClient(app) as client:
        stopped = {j: client.get(f"/api/jobs/{j}").json() for j in (a, c)}
        for status in stopped.values():
            assert status["state"] == "interrupted" and status["resumable"], status
        for j in (a, c):
            assert client.post(f"/api/jobs/{j}/resume").status_code == 200
        for j in (a, c, d):
            final = wait_for(client, j, lambda s: s["state"] == "done")
            assert final["iteration"] == 600 and final["has_result"]
        assert client.get(f"/api/jobs/{b}").json()["state"] == "cancelled"


# --- on a real Ray head ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    with loopback_head(tmp_path_factory.mktemp("ray") / "head.log") as started:
        yield started


@pytest.fixture(scope="module")
def connected(head: Head) -> Iterator[str]:
    """This process joined to the head, as ``ray_engine`` finds it."""
    with joined(head):
        yield head.address


def _photo(box: tuple[int, int, int, int]) -> bytes:
    """A 48x36 PNG cut from the bundled example photo."""
    out = io.BytesIO()
    Image.open(example_paths()[0]).convert("RGB").crop(box).resize((48, 36)).save(out, "PNG")
    return out.getvalue()


def _files() -> list[tuple[str, tuple[str, bytes, str]]]:
    style = io.BytesIO()
    Image.open(example_paths()[1]).convert("RGB").resize((40, 40)).save(style, "PNG")
    return [
        ("content", ("photo.png", _photo((0, 0, 200, 150)), "image/png")),
        ("styles", ("painting.png", style.getvalue(), "image/png")),
    ]


class _Jobs:
    """The API of a server, through a TestClient or httpx, as the tests below use it."""

    def __init__(self, client: Any):
        self.client = client

    def submit(self, settings: dict[str, Any]) -> str:
        data = {"settings": json.dumps(settings)}
        r = self.client.post("/api/jobs", files=_files(), data=data)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/api/jobs/{job_id}").json())

    def wait(self, job_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        while not ok(status := self.status(job_id)):
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        return status

    def painting(self, ids: tuple[str, ...], count: int) -> list[str]:
        """The jobs of ``ids`` seen painting (past their second iteration) at the same
        moment, once there are ``count`` of them."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            states = [self.status(j) for j in ids]
            if len(busy := [s["id"] for s in states if _running(s)]) >= count:
                return busy
            assert not any(_finished(s) for s in states), states
            assert time.monotonic() < deadline, states
            time.sleep(0.05)

    def result(self, job_id: str) -> Image.Image:
        r = self.client.get(f"/api/jobs/{job_id}/result")
        assert r.status_code == 200, r.text
        return Image.open(io.BytesIO(r.content))


def _finished(status: dict[str, Any]) -> bool:
    return status["state"] not in ("queued", "running")


@needs_ray
@pytest.mark.slow
def test_web_jobs_run_at_once_on_ray(connected: str, tmp_path: Path) -> None:
    from impasto.distributed.jobs import ray_engine

    engine = ray_engine(task_cpus=1, preview_seconds=0.2)
    assert engine.slots == 2  # two 1-CPU tasks on the 2-CPU head
    assert engine.device_type == "cpu"  # what a job's precision is checked against
    config = ServerConfig(workdir=str(tmp_path / "work"), preview_seconds=0.2)
    with TestClient(create_app(config, engine=engine, workers=engine.slots)) as client:
        jobs = _Jobs(client)
        a, b = jobs.submit({**SHORT, "seed": 1}), jobs.submit({**SHORT, "seed": 2})
        jobs.painting((a, b), 2)
        assert client.get(f"/api/jobs/{a}/preview").status_code == 200
        for job_id in (a, b):
            status = jobs.wait(job_id, _finished)
            assert status["state"] == "done" and status["iteration"] == 60, status
            assert jobs.result(job_id).size == (32, 24)
        assert [jobs.status(j)["settings"]["seed"] for j in (a, b)] == [1, 2]


@needs_ray
@pytest.mark.slow
def test_cancel_on_ray_before_and_after_the_first_iteration(connected: str, tmp_path: Path) -> None:
    """With more jobs at once than the cluster runs, a job whose task waits for a worker
    is cancelled at once, without a result; a painting one stops with its best image."""
    from impasto.distributed.jobs import ray_engine

    engine = ray_engine(task_cpus=2, preview_seconds=0.2)
    assert engine.slots == 1
    config = ServerConfig(workdir=str(tmp_path / "work"), preview_seconds=0.2)
    with TestClient(create_app(config, engine=engine, workers=2)) as client:
        jobs = _Jobs(client)
        both = (jobs.submit(LONG), jobs.submit(LONG))
        busy = jobs.painting(both, 1)
        (waiting,) = set(both) - set(busy)
        status = jobs.status(waiting)
        assert status["state"] == "running" and status["iteration"] == 0, status
        client.post(f"/api/jobs/{waiting}/cancel")
        status = jobs.wait(waiting, _finished)
        assert status["state"] == "cancelled" and not status["has_result"], status
        assert jobs.status(busy[0])["state"] == "running"

        client.post(f"/api/jobs/{busy[0]}/cancel")
        status = jobs.wait(busy[0], _finished)
        assert status["state"] == "cancelled" and status["has_result"], status
        assert 2 <= status["iteration"] < 1000
        assert jobs.result(busy[0]).size == (32, 24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_ray
@pytest.mark.slow
def test_serve_ray_runs_jobs_at_once_and_sigterm_stops_them_to_resume(
    head: Head, connected: str, tmp_path: Path
) -> None:
    httpx = pytest.importorskip("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
    workdir, port = tmp_path / "work", _free_port()
    argv = [sys.executable, "-m", "impasto", "serve", "--port", str(port)]
    argv += ["--workdir", str(workdir), "--preview-seconds", "0.2"]
    argv += ["--ray", head.address, "--task-cpus", "1", "--ray-jobs", "3"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        server = subprocess.Popen(argv, stderr=err, env={**os.environ, **LOOPBACK_ENV})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            try:
                client.get("/api/settings")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        jobs = _Jobs(client)
        ids = tuple(jobs.submit(LONG) for _ in range(3))
        a, b = jobs.painting(ids, 2)
        # The third job runs as far as the server is concerned: its task waits for a CPU.
        (c,) = set(ids) - {a, b}
        assert (jobs.status(c)["state"], jobs.status(c)["iteration"]) == ("running", 0)
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        seconds = time.monotonic() - start
    finally:
        client.close()
        if server.poll() is None:
            server.kill()
    text = log.read_text()
    assert seconds < 15.0, (seconds, text)
    assert "3 at once" in text and "Traceback" not in text, text
    # The job records: both painting jobs stopped with their best image and the state their
    # tasks sent back; the third, which had not started painting, waits for the next start.
    query = "SELECT id, state, has_result, iteration, resumable FROM jobs"
    with sqlite3.connect(workdir / "jobs.sqlite3") as db:
        rows = {r[0]: r[1:] for r in db.execute(query)}
    for job_id in (a, b):
        state, has_result, iteration, resumable = rows[job_id]
        assert state == "interrupted" and has_result and resumable, rows
        assert 2 <= iteration < 1000, rows
        assert (workdir / "jobs" / job_id / "result.png").is_file()
        assert (workdir / "jobs" / job_id / "state.pt").is_file()
    assert rows[c][0] == "queued"

    # The next start: the queued job runs, and a stopped one continues where it stopped in
    # a new task (a fresh start would report iteration 1 first).
    from impasto.distributed.jobs import ray_engine

    engine = ray_engine(task_cpus=1, preview_seconds=0.2)
    config = ServerConfig(workdir=str(workdir), preview_seconds=0.2)
    with TestClient(create_app(config, engine=engine, workers=2)) as client:
        jobs = _Jobs(client)
        assert client.post(f"/api/jobs/{a}/resume").status_code == 200
        seen = []
        while not _finished(status := jobs.status(a)):
            if status["state"] == "running":
                seen.append(status["iteration"])
            time.sleep(0.05)
        assert status["state"] == "done" and status["iteration"] == 1000, status
        assert seen and min(seen) >= rows[a][2], (seen, rows[a])
        assert jobs.wait(c, _finished)["state"] == "done"
        assert not (workdir / "jobs" / a / "state.pt").exists()

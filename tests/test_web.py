"""The web API: every endpoint, the limits and bad input, through FastAPI's TestClient.

Queue and limit mechanics use a fake engine that finishes in milliseconds (and can be
held at a gate so queue positions are deterministic); one test runs the real network.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
try:  # TestClient's HTTP client: httpx2 for Starlette >= 1.x, httpx before
    import httpx2  # noqa: F401
except ImportError:
    pytest.importorskip("httpx", reason="TestClient needs httpx2 (or httpx)")

from fastapi.testclient import TestClient
from web_fakes import (
    TIMEOUT,
    FakeEngine,
    FakeResult,
    FakeRun,
    decode,
    finished,
    job_folders,
    png,
    serving,
    submit,
    upload,
    wait_for,
)

from impasto import cli
from impasto.errors import ImpastoError
from impasto.results import StopReason
from impasto.settings import Settings, base_type, field_types
from impasto.web import MISSING_EXTRA, ServerConfig, create_app


# --- the page and the schemas ---------------------------------------------------------------
def test_page_and_static_files(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "impasto" in page.text and "/static/app.js" in page.text
        for name, kind in (("app.js", "javascript"), ("style.css", "css")):
            r = client.get(f"/static/{name}")
            assert r.status_code == 200 and kind in r.headers["content-type"]
        assert client.get("/static/../web/app.py").status_code == 404


def test_openapi_lists_every_endpoint(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        schema = client.get("/openapi.json").json()
    paths = {(p, m) for p, ops in schema["paths"].items() for m in ops}
    assert paths == {
        ("/api/settings", "get"),
        ("/api/jobs", "get"),
        ("/api/jobs", "post"),
        ("/api/jobs/{job_id}", "get"),
        ("/api/jobs/{job_id}", "delete"),
        ("/api/jobs/{job_id}/events", "get"),
        ("/api/jobs/{job_id}/preview", "get"),
        ("/api/jobs/{job_id}/result", "get"),
        ("/api/jobs/{job_id}/cancel", "post"),
        ("/api/jobs/{job_id}/resume", "post"),
    }
    body = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_settings_schema_comes_from_the_dataclass(tmp_path: Path) -> None:
    with serving(tmp_path, max_size=300, max_iterations=50) as client:
        answer = client.get("/api/settings").json()
    fields = {f["name"]: f for f in answer["fields"]}
    defaults = Settings().to_dict()
    assert list(fields) == list(defaults)
    for name, value in defaults.items():
        assert fields[name]["default"] == value
        assert fields[name]["help"]
    assert fields["size"]["type"] == "integer" and fields["size"]["maximum"] == 300
    assert fields["iterations"]["maximum"] == 50
    assert fields["style_scales"]["array"] and fields["style_scales"]["type"] == "number"
    assert fields["seed"]["nullable"]
    assert fields["preserve_colors"]["type"] == "boolean"
    assert fields["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert fields["initial"]["choices"] == ["auto", "noise", "content", "style"]
    assert not fields["device"]["editable"] and fields["device"]["server_value"] == "cpu"
    assert not fields["weights"]["editable"] and fields["weights"]["server_value"] == "default"
    assert answer["limits"]["max_size"] == 300 and answer["limits"]["max_queue"] == 8


# --- a job from start to end ----------------------------------------------------------------------
def test_job_runs_and_every_endpoint_answers(tmp_path: Path) -> None:
    engine = FakeEngine(delay=0.01)
    with serving(tmp_path, engine=engine, preview_seconds=0.001) as client:
        job = submit(
            client,
            styles=[png(seed=1), png(seed=2)],
            settings={
                "iterations": 5,
                "size": 32,
                "style_blend_weights": [1, 3],
                "device": "cpu",  # the server's own value may be sent
                "preserve_colors": True,
            },
        )
        assert job["state"] in ("queued", "running")
        assert len(job["id"]) == 32
        with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [line for line in stream.iter_lines() if line.startswith("event:")]
        assert events[-1] == "event: end"
        assert events.count("event: status") >= 2
        status = client.get(f"/api/jobs/{job['id']}").json()
        assert status["state"] == "done" and status["iteration"] == 5
        assert status["losses"]["tv"] is None  # NaN is not JSON: it is sent as null
        assert status["eta"] == 0 and status["position"] is None and status["has_result"]
        assert engine.settings[0].device == "cpu" and status["settings"]["device"] == "cpu"
        assert engine.settings[0].style_blend_weights == (1.0, 3.0)
        assert engine.settings[0].preserve_colors is True

        preview = client.get(f"/api/jobs/{job['id']}/preview")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
        result = client.get(f"/api/jobs/{job['id']}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
        assert "impasto-" in result.headers["content-disposition"]
        assert decode(result.content).size == (24, 16)

        listed = client.get("/api/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
        # Cancelling a finished job changes nothing.
        assert client.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "done"
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert job_folders(tmp_path) == []


def test_uploads_get_names_from_the_server(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        files = [
            ("content", ("../../../escape.png", png(), "image/png")),
            ("styles", ("/etc/passwd", png(seed=3), "image/png")),
        ]
        r = client.post("/api/jobs", files=files, data={"settings": '{"iterations": 1}'})
        assert r.status_code == 201, r.text
        wait_for(client, r.json()["id"], finished)
        folder = tmp_path / "work" / "jobs" / r.json()["id"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "content.upload",
            "result.png",
            "style-1.upload",
        ]
        assert not list(tmp_path.rglob("escape.png")) and not list(tmp_path.rglob("passwd"))


# --- the queue ----------------------------------------------------------------------------------
def test_queue_positions_cancel_and_full_queue(tmp_path: Path) -> None:
    engine = FakeEngine(gated=True)
    with serving(tmp_path, engine=engine, max_queue=2) as client:
        first = submit(client, settings={"iterations": 3})
        wait_for(client, first["id"], lambda s: s["state"] == "running")
        second = submit(client, settings={"iterations": 3})
        third = submit(client, settings={"iterations": 3})
        assert second["position"] == 1 and third["position"] == 2

        full = client.post("/api/jobs", **upload())
        assert full.status_code == 429
        assert "queue is full" in full.json()["detail"] and full.headers["retry-after"]

        # Nothing to show yet.
        for job in (first, second):
            assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409
        assert client.get(f"/api/jobs/{second['id']}/preview").status_code == 409

        cancelled = client.post(f"/api/jobs/{second['id']}/cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["position"] is None
        assert client.get(f"/api/jobs/{third['id']}").json()["position"] == 1
        no_result = client.get(f"/api/jobs/{second['id']}/result")
        assert no_result.status_code == 409 and "before it started" in no_result.json()["detail"]

        # A running job stops at its next iteration and keeps its best image.
        assert client.post(f"/api/jobs/{first['id']}/cancel").json()["cancel_requested"]
        engine.gate.set()
        stopped = wait_for(client, first["id"], finished)
        assert stopped["state"] == "cancelled" and stopped["has_result"]
        assert stopped["iteration"] < 3
        assert client.get(f"/api/jobs/{first['id']}/result").status_code == 200
        assert wait_for(client, third["id"], finished)["state"] == "done"


def test_delete_running_and_queued_jobs(tmp_path: Path) -> None:
    engine = FakeEngine(gated=True)
    with serving(tmp_path, engine=engine) as client:
        running = submit(client, settings={"iterations": 2})
        wait_for(client, running["id"], lambda s: s["state"] == "running")
        queued = submit(client, settings={"iterations": 2})
        assert client.delete(f"/api/jobs/{queued['id']}").status_code == 204
        assert client.delete(f"/api/jobs/{running['id']}").status_code == 204
        engine.gate.set()
        deadline = time.monotonic() + TIMEOUT
        # The job leaves the registry first; its folder goes just after, outside the lock.
        while client.get(f"/api/jobs/{running['id']}").status_code != 404 or job_folders(tmp_path):
            assert time.monotonic() < deadline, job_folders(tmp_path)
            time.sleep(0.01)
        assert job_folders(tmp_path) == []


def test_finished_jobs_are_cleaned_up_by_number_and_age(tmp_path: Path) -> None:
    with serving(tmp_path, keep_jobs=1) as client:
        first = submit(client, settings={"iterations": 1})
        wait_for(client, first["id"], finished)
        second = submit(client, settings={"iterations": 1})
        wait_for(client, second["id"], finished)
        assert [j["id"] for j in client.get("/api/jobs").json()["jobs"]] == [second["id"]]
        assert client.get(f"/api/jobs/{first['id']}/result").status_code == 404
        assert job_folders(tmp_path) == [second["id"]]

    with serving(tmp_path, keep_minutes=0.001) as client:  # 60 ms
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
        time.sleep(0.1)
        assert client.get("/api/jobs").json()["jobs"] == []
        assert job_folders(tmp_path) == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ImpastoError("--device: CUDA was asked for but this PyTorch sees no CUDA GPU"), "CUDA"),
        (RuntimeError("boom"), "the job failed inside the server: RuntimeError: boom"),
        # What failed is said, without the server's paths.
        (
            MemoryError("cannot allocate in /usr/lib/python3/x.py"),
            "the job failed inside the server: MemoryError: cannot allocate in (path)",
        ),
        # Engine errors written for the command line name settings as the API does.
        (ImpastoError("a 900x900 image needs 9 GB; use --size 300 or smaller"), "use size 300"),
    ],
)
def test_a_failing_job_reports_why(tmp_path: Path, error: Exception, message: str) -> None:
    with serving(tmp_path, engine=FakeEngine(error=error)) as client:
        job = submit(client, settings={"iterations": 1})
        status = wait_for(client, job["id"], finished)
        assert status["state"] == "failed" and message in status["error"], status["error"]
        assert "server log" not in status["error"] and "/usr" not in status["error"]
        r = client.get(f"/api/jobs/{job['id']}/result")
        assert r.status_code == 409 and "failed" in r.json()["detail"]
        # The server is still fine.
        assert client.get("/api/settings").status_code == 200


class StoppingRun(FakeRun):
    engine: StoppingEngine

    def result(self, stopped: str | None = None) -> FakeResult:
        result = FakeResult(self.current(), stopped or self.engine.stops)
        result.stop_detail = self.engine.detail  # type: ignore[attr-defined]
        return result


class StoppingEngine(FakeEngine):
    """An engine whose runs end for ``stops`` (a StopReason's value), as the old engine said."""

    def __init__(self, stops: str, detail: str | None) -> None:
        super().__init__()
        self.stops = stops
        self.detail = detail

    def __call__(self, content: Image.Image, styles: Any, settings: Settings) -> StoppingRun:
        self.settings.append(settings)
        return StoppingRun(self, content, settings)


@pytest.mark.parametrize(
    ("stops", "detail"), [("nan", None), ("oom", "CUDA out of memory"), ("converged", None)]
)
def test_why_a_run_stopped_is_the_stop_reasons_message(
    tmp_path: Path, stops: str, detail: str | None
) -> None:
    with serving(tmp_path, engine=StoppingEngine(stops, detail)) as client:
        job = submit(client, settings={"iterations": 2})
        status = wait_for(client, job["id"], finished)
        assert client.get(f"/api/jobs/{job['id']}/result").status_code == 200
    reason = StopReason(stops)
    assert status["state"] == "done" and status["has_result"]
    expected = reason.message(2, detail)
    if reason.failed:
        expected += "; the result is the best image before that"
    assert status["note"] == expected
    if detail:
        assert detail in status["note"] and "try a smaller size" in status["note"]


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"colour": 1}, "unknown setting(s): colour"),
        ({"size": "large"}, 'size: expected an integer, got "large"'),
        ({"size": [1, 2]}, "size: expected an integer, got [1, 2]"),
        ({"iterations": 2.5}, "iterations: expected an integer, got 2.5"),
        # Strict JSON types, as GET /api/settings gives them: no strings for numbers,
        # no booleans for numbers, no numbers for booleans, arrays where arrays are due.
        ({"iterations": "10"}, 'iterations: expected an integer, got "10"'),
        ({"iterations": True}, "iterations: expected an integer, got true"),
        ({"style_weight": "500"}, 'style_weight: expected a number, got "500"'),
        ({"preserve_colors": 2}, "preserve_colors: expected a boolean, got 2"),
        ({"preserve_colors": "true"}, 'preserve_colors: expected a boolean, got "true"'),
        ({"style_scales": 1.5}, "style_scales: expected an array of numbers, got 1.5"),
        ({"content_layers": "relu4_2"}, 'content_layers: expected an array of strings, got "r'),
        ({"style_blend_weights": [1, "2"]}, "style_blend_weights: expected an array of numbers"),
        ({"size": 4096}, "size: this server allows at most 1024"),
        ({"size": 8}, "size: must be between 16"),
        ({"size": 512, "style_scales": [4]}, "style_scales: style images would be 2048"),
        ({"iterations": 10**6}, "this server allows at most 1000"),
        (
            {"size": 1024, "scales": 0, "coarse_iterations": 900},
            "iterations (all scales together); this server",
        ),
        ({"threads": "many"}, 'threads: expected an integer, got "many"'),
        ({"iterations": -1}, "iterations: must be >= 0"),
        ({"tv_weight": None}, "tv_weight: needs a value, got null"),
        ({"seed": None, "size": None}, "size: needs a value"),
        ({"initial": "/etc/passwd"}, "initial: choose from auto, noise, content, style"),
        ({"initial": "content.upload"}, "initial: choose from"),
        # Settings the server decides are refused alike, saying what the server uses.
        ({"weights": "/root/vgg19.pth"}, "weights: this server decides it (it uses 'default')"),
        ({"weights": "torchvision"}, "weights: this server decides it"),
        ({"device": "cuda:7"}, "device: this server decides it (it uses 'cpu'); leave the"),
        ({"threads": 4}, "threads: this server decides it (it uses 0)"),
        ({"compile": True}, "compile: this server decides it (it uses False)"),
        ({"checkpoint_every": 5}, "checkpoint_every: this server decides it (it uses 0)"),
        ({"print_every": 1}, "print_every: this server decides it (it uses 0)"),
        # A precision this server's device cannot run fails now, not when the job runs.
        ({"precision": "fp16"}, "precision: fp16 needs a CUDA device"),
        ({"optimizer": "sgd"}, "optimizer: choose from lbfgs, adam"),
        ({"pooling": {"a": 1}}, 'pooling: expected a string, got {"a": 1}'),
        ({"pooling": "min"}, "pooling: choose from max, avg"),
        ({"style_blend_weights": [1, 2]}, "style_blend_weights: got 2 weights for 1"),
        ({"style_layers": ["relu9_9"]}, "style_layers: unknown layer"),
        ({"seed": 2**70}, "seed: must be between 0"),
        ({"seed": -5}, "seed: must be between 0"),
        ({"content_weight": -1}, "content_weight: must be a finite number >= 0"),
        ({"epsilon": float("nan")}, "epsilon: must be a finite number"),
        ({"tv_weight": 10**400}, "tv_weight: expected float, got 1000"),
        ([1, 2], "settings must be a JSON object"),
        ("{not json", "settings: not valid JSON"),
        ("[" * 100_000, "settings: not valid JSON"),
    ],
)
def test_bad_settings_are_422_with_a_clear_message(
    tmp_path: Path, settings: Any, words: str
) -> None:
    with serving(tmp_path) as client:
        if isinstance(settings, str):
            kwargs = upload(settings=settings)
        else:
            # json.dumps writes NaN and huge numbers as Python reads them back.
            kwargs = upload(settings=json.dumps(settings))
        r = client.post("/api/jobs", **kwargs)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and words in detail, detail
        assert "--" not in detail  # settings are named as the API spells them, not as flags
        assert client.get("/api/jobs").json()["jobs"] == []
        assert job_folders(tmp_path) == []


class RemoteEngine(FakeEngine):
    """A fake engine whose runs get a device of their own, as Ray tasks do."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type


def test_a_precision_is_checked_against_the_device_the_ray_tasks_claim(tmp_path: Path) -> None:
    config = ServerConfig(workdir=str(tmp_path / "work"), device="auto")
    # This machine has no GPU, but the tasks claim one: fp16 is for their device to run.
    engine = RemoteEngine("cuda")
    with TestClient(create_app(config, engine=engine)) as client:
        job = client.post("/api/jobs", **upload(settings={"precision": "fp16", "size": 32}))
        assert job.status_code == 201, job.text
        assert wait_for(client, job.json()["id"], finished)["state"] == "done"
    assert engine.settings[0].precision == "fp16" and engine.settings[0].device == "auto"
    with TestClient(create_app(config, engine=RemoteEngine("cpu"))) as client:
        r = client.post("/api/jobs", **upload(settings={"precision": "fp16"}))
        assert r.status_code == 422
        assert r.json()["detail"].startswith("precision: fp16 needs a CUDA device")
        assert r.json()["detail"].endswith("(this server's Ray tasks run on cpu)")


TEXT_SETTINGS = [name for name, kind in field_types().items() if base_type(kind)[0] is str]


@pytest.mark.parametrize("name", TEXT_SETTINGS)
def test_no_text_setting_can_name_a_server_file(tmp_path: Path, name: str) -> None:
    """Whatever text settings exist (masks, initial, weights...), a path is refused."""
    _, is_tuple, _ = base_type(field_types()[name])
    with serving(tmp_path) as client:
        for path in ("/etc/passwd", "../../secret.png"):
            value: Any = [path] if is_tuple else path
            r = client.post("/api/jobs", **upload(settings={name: value}))
            assert r.status_code == 422, (name, r.text)
            assert r.json()["detail"].startswith(f"{name}:")


def test_layer_lists_are_checked(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        ok = {
            "style_layers": ["relu1_1", "relu3_1"],
            "content_layers": ["relu4_2"],
            "iterations": 1,
        }
        assert client.post("/api/jobs", **upload(settings=ok)).status_code == 201
        bad = client.post("/api/jobs", **upload(settings={"content_layers": ["relu4_2 x"]}))
        assert bad.status_code == 422 and "content_layers:" in bad.json()["detail"]


def test_allowed_server_settings_pass(tmp_path: Path) -> None:
    """A client may send what the server decides when it sends the server's own values."""
    engine = FakeEngine()
    with serving(tmp_path, engine=engine) as client:
        job = submit(
            client,
            settings={
                "weights": "default",
                "device": "cpu",
                "threads": 0,
                "compile": False,
                "checkpoint_every": 0,
                "initial": "style",
                "seed": 7,
                "size": 0,
                "iterations": 1,
                "precision": "bf16",  # runs on any CPU (slowly without AMX)
            },
        )
        wait_for(client, job["id"], finished)
    used = engine.settings[0]
    assert (used.weights, used.initial, used.seed, used.size) == ("default", "style", 7, 0)
    assert (used.checkpoint_every, used.precision) == (0, "bf16")


def test_size_zero_uses_the_content_size_within_the_limit(tmp_path: Path) -> None:
    with serving(tmp_path, max_size=20) as client:
        r = client.post("/api/jobs", **upload(content=png(40, 10), settings={"size": 0}))
        assert r.status_code == 422
        detail = r.json()["detail"]
        assert detail == (
            "size: 0 keeps the content image's size, 40 pixels here; this server allows at "
            "most 20 pixels"
        )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not an image at all", "content: not an image this server reads"),
        (png()[:60], "content: "),  # a PNG cut short: the header reads, the pixels do not
        (b"", "content: the file is empty"),
        (png(fmt="PPM"), "content: not an image this server reads"),
    ],
)
def test_corrupt_or_foreign_images_are_422(tmp_path: Path, content: bytes, words: str) -> None:
    with serving(tmp_path) as client:
        r = client.post("/api/jobs", **upload(content=content))
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert words in detail
        assert str(tmp_path) not in detail  # no server paths in answers
        assert job_folders(tmp_path) == []


def test_a_bad_second_style_names_it(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        r = client.post("/api/jobs", **upload(styles=[png(), b"GIF89a broken"]))
        assert r.status_code == 422 and r.json()["detail"].startswith("styles[2]:")


def test_transparency_reaches_the_engine(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (20, 10), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 10, 10))  # the left half is transparent
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    engine = FakeEngine()
    with serving(tmp_path, engine=engine) as client:
        job = submit(client, content=buffer.getvalue(), settings={"iterations": 1})
        wait_for(client, job["id"], finished)
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
    assert engine.content_modes == ["RGBA", "RGB"]


def test_other_formats_are_accepted(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        job = submit(
            client,
            content=png(fmt="JPEG"),
            styles=[png(fmt="WEBP"), png(fmt="BMP")],
            settings={"iterations": 1},
        )
        assert wait_for(client, job["id"], finished)["state"] == "done"


def test_limits_on_files_pixels_styles_and_requests(tmp_path: Path) -> None:
    big = png(300, 300, fmt="BMP")  # 270 kB, 0.09 megapixels
    with serving(tmp_path, max_upload_mb=0.1, max_megapixels=0.01, max_styles=2) as client:
        r = client.post("/api/jobs", **upload(content=big))
        assert r.status_code == 413 and "content: the file is larger" in r.json()["detail"]

        r = client.post("/api/jobs", **upload(content=png(120, 100)))
        assert r.status_code == 413, r.text
        assert "content: 120x100 is 0.0 megapixels" in r.json()["detail"]
        assert "at most 0.01" in r.json()["detail"]

        r = client.post("/api/jobs", **upload(styles=[png()] * 3))
        assert r.status_code == 422 and "at most 2 style images" in r.json()["detail"]

        # The whole request is refused before it is parsed, with or without a length.
        limit = ServerConfig(max_upload_mb=0.1, max_styles=2).max_request_bytes
        r = client.post("/api/jobs", **upload(styles=[b"x" * limit]))
        assert r.status_code == 413 and "request is larger" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536

        r = client.post(
            "/api/jobs",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=abc"},
        )
        assert r.status_code == 413 and "request is larger" in r.json()["detail"]
        assert client.get("/api/settings").status_code == 200
        assert job_folders(tmp_path) == []


def test_missing_and_mistyped_fields_are_422(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        r = client.post("/api/jobs", files=[("styles", ("s.png", png(), "image/png"))])
        assert r.status_code == 422 and "content" in r.json()["detail"]
        r = client.post("/api/jobs", files=[("content", ("c.png", png(), "image/png"))])
        assert r.status_code == 422 and "styles" in r.json()["detail"]
        r = client.post("/api/jobs", data={"content": "not a file", "styles": "nor this"})
        assert r.status_code == 422
        r = client.post("/api/jobs", json={"content": 1})
        assert r.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/jobs/{}"),
        ("get", "/api/jobs/{}/events"),
        ("get", "/api/jobs/{}/preview"),
        ("get", "/api/jobs/{}/result"),
        ("post", "/api/jobs/{}/cancel"),
        ("delete", "/api/jobs/{}"),
    ],
)
def test_unknown_job_ids_are_404(tmp_path: Path, method: str, path: str) -> None:
    with serving(tmp_path) as client:
        for job_id in ("0" * 32, "nope", "..%2F..%2Fetc"):
            r = client.request(method, path.format(job_id))
            assert r.status_code == 404, (job_id, r.text)
            if "%" not in job_id:  # an encoded path may not reach the route at all
                assert "unknown job" in r.json()["detail"]


# --- other web sites -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("127.0.0.2", True),
        ("evil.example", False),
        ("127.evil.example:8000", False),
        ("localhost.evil.example", False),
    ],
)
def test_a_loopback_server_answers_to_local_names_only(
    tmp_path: Path, host: str, allowed: bool
) -> None:
    """A site whose name resolves to 127.0.0.1 (DNS rebinding) must not read the API."""
    with serving(tmp_path) as client:
        r = client.get("/api/settings", headers={"host": host})
        assert r.status_code == (200 if allowed else 403), r.text
        if not allowed:
            assert "localhost only" in r.json()["detail"]


def test_any_host_name_when_serving_beyond_loopback(tmp_path: Path) -> None:
    config = ServerConfig(workdir=str(tmp_path), host="0.0.0.0")
    with TestClient(create_app(config, engine=FakeEngine())) as client:
        assert client.get("/api/settings", headers={"host": "box.lan:8000"}).status_code == 200


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("http://testserver", True),  # the page itself
        ("http://evil.example", False),
        ("null", False),  # a sandboxed frame or a local file
    ],
)
def test_other_sites_cannot_start_or_cancel_jobs(
    tmp_path: Path, origin: str | None, allowed: bool
) -> None:
    with serving(tmp_path) as client:
        headers = {"origin": origin} if origin else {}
        r = client.post("/api/jobs", **upload(settings={"iterations": 1}), headers=headers)
        assert r.status_code == (201 if allowed else 403), r.text
        r = client.post(f"/api/jobs/{'0' * 32}/cancel", headers=headers)
        assert r.status_code == (404 if allowed else 403)
        # Reading is allowed from anywhere the browser lets it (same-origin policy applies).
        assert client.get("/api/jobs", headers=headers).status_code == 200


# --- the command line -------------------------------------------------------------------------
def test_serve_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now fails
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err == f"impasto: error: {MISSING_EXTRA}\n"
    assert MISSING_EXTRA == "the web app needs the 'web' extra: pip install 'impasto[web]'"


def test_serve_options_reach_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(server: uvicorn.Server) -> None:
        options = server.config
        seen.update(host=options.host, port=options.port, config=options.app.state.config)
        options.app.state.jobs.close()

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    # serve() sets up the process: temporary files, warnings and the log go its way.
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    log = logging.getLogger("impasto.web")
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "propagate", True)
    monkeypatch.setattr(log, "level", log.level)
    argv = [
        "serve",
        "--port",
        "8123",
        "--max-queue",
        "3",
        "--max-size",
        "256",
        "--workdir",
        str(tmp_path / "w"),
        "--keep-minutes",
        "5",
    ]
    assert cli.main(argv) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    config: ServerConfig = seen["config"]
    assert (config.max_queue, config.max_size, config.keep_seconds) == (3, 256, 300.0)
    assert "http://127.0.0.1:8123/" in capsys.readouterr().err
    # Even Starlette's spooled uploads stay in the server's folder.
    assert Path(tempfile.gettempdir()) == tmp_path / "w" / "spool"


@pytest.mark.parametrize(
    "argv", [["--max-queue", "0"], ["--max-upload-mb", "-1"], ["--port", "70000"]]
)
def test_serve_refuses_nonsense_limits(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"impasto: error: {argv[0]}:") and err.count("\n") == 1


# --- the real engine ----------------------------------------------------------------------------
@pytest.mark.slow
def test_real_engine_end_to_end(tmp_path: Path, examples: tuple[Path, Path]) -> None:
    content_path, style_path = examples
    content_bytes, style_bytes = content_path.read_bytes(), style_path.read_bytes()
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu")
    with TestClient(create_app(config)) as client:
        r = client.post(
            "/api/jobs",
            **upload(
                content=content_bytes,
                styles=[style_bytes],
                settings={"size": 32, "iterations": 3, "seed": 1},
            ),
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 120
        while not finished(status := client.get(f"/api/jobs/{job_id}").json()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status["state"] == "done", status
        assert status["iteration"] == 3 and status["losses"]["total"] > 0
        result = client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200
    image = decode(result.content)
    assert max(image.size) == 32
    original = Image.open(content_path).convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
    difference = np.abs(np.asarray(image, float) - np.asarray(original, float)).mean()
    assert difference > 5, difference
    # The PNG carries the settings it was made with, device and weights as the server chose.
    meta = json.loads(Image.open(io.BytesIO(result.content)).text["impasto"])
    assert meta["settings"]["device"] == "cpu" and meta["settings"]["iterations"] == 3
    assert meta["settings"]["seed"] == status["settings"]["seed"] == 1
    assert "content.upload" not in json.dumps(meta)  # no server paths in the file


@pytest.mark.slow
def test_tiny_styles_and_sizes_the_network_takes_run(tmp_path: Path) -> None:
    """A 3x3 style at size 16 is scaled up to the smallest size the network takes, and runs;
    what cannot run is refused at submission (test_web_server.py)."""
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu")
    with TestClient(create_app(config)) as client:
        tiny = {"size": 16, "iterations": 2}
        job = upload(content=png(48, 48), styles=[png(3, 3)], settings=tiny)
        r = client.post("/api/jobs", **job)
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 120
        while not finished(status := client.get(f"/api/jobs/{r.json()['id']}").json()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert status["state"] == "done", status
    assert status["iteration"] == 2

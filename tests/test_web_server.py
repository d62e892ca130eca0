"""The web server under real use: restarts, shut-downs, odd images and HTTP details.

Through FastAPI's TestClient with the fake engine of ``web_fakes`` (and its resumable
variant); ``test_web_serve.py`` runs the real ``impasto serve`` in a subprocess.
"""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from web_fakes import (
    FakeEngine,
    ResumableEngine,
    decode,
    finished,
    job_folders,
    png,
    serving,
    submit,
    upload,
    wait_for,
)

from impasto.errors import ImpastoError
from impasto.web import ServerConfig, create_app


# --- restarts -----------------------------------------------------------------------------------
def test_a_restart_keeps_finished_and_queued_jobs(tmp_path: Path) -> None:
    engine = FakeEngine(gated=True)
    with serving(tmp_path, engine=engine) as client:
        done = submit(client, settings={"iterations": 2, "seed": 5})
        engine.gate.set()
        wait_for(client, done["id"], finished)
        first_result = client.get(f"/api/jobs/{done['id']}/result").content
        engine.gate.clear()
        running = submit(client, settings={"iterations": 3})
        wait_for(client, running["id"], lambda s: s["state"] == "running")
        queued = submit(client, settings={"iterations": 2})
        # Leaving the block closes the server: it asks the running job to stop, which passes
        # the gate, and starts no other, so the queued job is still queued.
    assert (tmp_path / "work" / "jobs.sqlite3").is_file()

    engine = FakeEngine()
    with serving(tmp_path, engine=engine) as client:
        # The finished job and its result, as they were.
        status = client.get(f"/api/jobs/{done['id']}").json()
        assert status["state"] == "done" and status["has_result"]
        assert status["settings"]["seed"] == 5
        assert client.get(f"/api/jobs/{done['id']}/result").content == first_result
        assert client.get(f"/api/jobs/{done['id']}/preview").status_code == 200
        # The queued job is shown again and runs.
        assert wait_for(client, queued["id"], finished)["state"] == "done"
        # The running one was stopped by the shut-down: interrupted, with its best image;
        # this engine cannot resume, so it says so.
        stopped = client.get(f"/api/jobs/{running['id']}").json()
        if stopped["state"] == "interrupted":
            assert stopped["has_result"] and not stopped["resumable"]
            assert "the server stopped after" in stopped["note"]
        else:  # it was still at its first iteration: nothing lost, it ran again
            assert stopped["state"] == "done"
        listed = [j["id"] for j in client.get("/api/jobs").json()["jobs"]]
        assert listed == [done["id"], running["id"], queued["id"]]


def test_an_interrupted_job_resumes_where_it_stopped(tmp_path: Path) -> None:
    engine = ResumableEngine(delay=0.02)
    with serving(tmp_path, engine=engine) as client:
        job = submit(client, settings={"iterations": 400, "scales": 1, "seed": 3})
        wait_for(client, job["id"], lambda s: s["iteration"] >= 3)
    # Leaving the block shut the server down: the job stopped after its iteration.

    engine = ResumableEngine()
    with serving(tmp_path, engine=engine) as client:
        status = client.get(f"/api/jobs/{job['id']}").json()
        assert status["state"] == "interrupted" and status["resumable"], status
        assert status["has_result"] and "resume the job to continue" in status["note"]
        stopped_at = status["iteration"]
        assert client.get(f"/api/jobs/{job['id']}/result").status_code == 200

        resumed = client.post(f"/api/jobs/{job['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] in ("queued", "running")
        final = wait_for(client, job["id"], finished)
        assert final["state"] == "done" and final["iteration"] == 400
        assert engine.resumed == [stopped_at]  # continued, not started again
        assert not final["resumable"] and final["note"] is None
        again = client.post(f"/api/jobs/{job['id']}/resume")
        assert again.status_code == 409 and "this job is done" in again.json()["detail"]
        assert client.post(f"/api/jobs/{'0' * 32}/resume").status_code == 404
        assert not (tmp_path / "work" / "jobs" / job["id"] / "state.pt").exists()


def test_a_job_the_server_died_under_is_interrupted(tmp_path: Path) -> None:
    """A crash (no shut-down) leaves a running job in the database: it is marked so."""
    with serving(tmp_path) as client:
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
    database = sqlite3.connect(tmp_path / "work" / "jobs.sqlite3")
    with database:
        database.execute("UPDATE jobs SET state = 'running', has_result = 0")
    database.close()
    (tmp_path / "work" / "jobs" / "0123").mkdir()  # a submission that never finished
    with serving(tmp_path) as client:
        status = client.get(f"/api/jobs/{job['id']}").json()
    assert status["state"] == "interrupted" and not status["resumable"]
    assert status["note"] == "the server stopped after 1 iterations"
    assert job_folders(tmp_path) == [job["id"]]


def test_a_database_of_the_first_version_is_brought_up_to_date(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        job = submit(client, settings={"iterations": 1, "seed": 4})
        wait_for(client, job["id"], finished)
    # As the first version made it: no frame counters, user_version 1.
    database = sqlite3.connect(tmp_path / "work" / "jobs.sqlite3")
    with database:
        database.execute("ALTER TABLE jobs DROP COLUMN frames")
        database.execute("ALTER TABLE jobs DROP COLUMN frames_done")
        database.execute("PRAGMA user_version=1")
    database.close()
    with serving(tmp_path) as client:
        status = client.get(f"/api/jobs/{job['id']}").json()
        assert status["state"] == "done" and status["settings"]["seed"] == 4
        assert status["frames_done"] is None
        again = submit(client, settings={"iterations": 1})
        assert wait_for(client, again["id"], finished)["state"] == "done"
    database = sqlite3.connect(tmp_path / "work" / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == 2
    database.execute("PRAGMA user_version=9")
    database.commit()
    database.close()
    with pytest.raises(ImpastoError, match="made by a newer version of impasto"):
        create_app(ServerConfig(workdir=str(tmp_path / "work"), device="cpu"), engine=FakeEngine())


def test_expired_jobs_go_across_restarts(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
    time.sleep(0.1)
    with serving(tmp_path, keep_minutes=0.001) as client:  # 60 ms
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert job_folders(tmp_path) == []


def test_a_second_server_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    config = ServerConfig(workdir=str(tmp_path), device="cpu")
    first = create_app(config, engine=FakeEngine())
    with pytest.raises(ImpastoError, match="another impasto serve is using this folder"):
        create_app(config, engine=FakeEngine())
    first.state.jobs.close()
    create_app(config, engine=FakeEngine()).state.jobs.close()  # free again


def test_cancelled_before_the_first_iteration_has_no_result(tmp_path: Path) -> None:
    """The start image is not a result: nothing is offered for download."""
    engine = FakeEngine(setup_gated=True)
    with serving(tmp_path, engine=engine) as client:
        job = submit(client, settings={"iterations": 5})
        wait_for(client, job["id"], lambda s: s["state"] == "running")
        client.post(f"/api/jobs/{job['id']}/cancel")
        engine.setup_gate.set()
        status = wait_for(client, job["id"], finished)
        assert status["state"] == "cancelled" and not status["has_result"]
        assert status["iteration"] == 0
        r = client.get(f"/api/jobs/{job['id']}/result")
        assert r.status_code == 409 and "before its first iteration" in r.json()["detail"]
        assert client.get(f"/api/jobs/{job['id']}/preview").status_code == 409


# --- images too small for the network -------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "styles", "settings", "words"),
    [
        # A 60x960 panorama at size 128 is 8 px high.
        ((60, 960), [(48, 48)], {"size": 128}, "size: content (60x960) is too small at 128 px"),
        ((48, 32), [(48, 48)], {"size": 16}, "size: content (48x32) is too small at 16 px"),
        ((48, 48), [(48, 48), (3, 300)], {"size": 16}, "size: styles[2] (3x300) is too small"),
        ((48, 32), [(48, 48)], {"scales": 3, "min_size": 16}, "min_size: content (48x32)"),
    ],
)
def test_images_too_small_for_the_network_are_refused_at_submission(
    tmp_path: Path,
    content: tuple[int, int],
    styles: list[tuple[int, int]],
    settings: dict[str, Any],
    words: str,
) -> None:
    engine = FakeEngine()
    with serving(tmp_path, engine=engine) as client:
        r = client.post(
            "/api/jobs",
            **upload(content=png(*content), styles=[png(*s) for s in styles], settings=settings),
        )
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith(words), detail
        assert "the network needs at least 16 px on its short side" in detail
        assert "px or more" in detail  # the smallest size that works
        assert client.get("/api/jobs").json()["jobs"] == [] and job_folders(tmp_path) == []
    assert engine.settings == []  # no work was started


# --- what one request may cost ---------------------------------------------------------------
def _truncated_png(width: int, height: int) -> bytes:
    """A PNG whose header is whole but whose pixels are cut off: only decoding finds out."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()[:200]


def test_the_pixels_of_a_request_are_bounded_before_anything_is_decoded(tmp_path: Path) -> None:
    with serving(tmp_path, max_megapixels=5, max_request_megapixels=6) as client:
        big = _truncated_png(2000, 2000)  # 4 megapixels each
        r = client.post("/api/jobs", **upload(content=big, styles=[big]))
        # Refused from the headers: had it been decoded, the damage would be the answer.
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == (
            "the images of this job have 8.0 megapixels together; this server accepts at "
            "most 6 per job"
        )
        r = client.post("/api/jobs", **upload(content=big, styles=[png()]))
        assert r.status_code == 422 and "content: cannot read image" in r.json()["detail"]
        limits = client.get("/api/settings").json()["limits"]
        assert limits["max_request_pixels"] == 6_000_000
        assert job_folders(tmp_path) == []


def test_jobs_keep_no_more_pixels_than_the_server_uses(tmp_path: Path) -> None:
    """An upload larger than the largest output is kept at that size, alpha and all."""
    rgba = Image.new("RGBA", (400, 100), (200, 40, 40, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 200, 100))  # the left half is transparent
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    engine = FakeEngine()
    with serving(tmp_path, engine=engine, max_size=64) as client:
        job = submit(
            client,
            content=buffer.getvalue(),
            styles=[png(30, 20)],
            settings={"size": 64, "iterations": 1},
        )
        wait_for(client, job["id"], finished)
    assert engine.sizes == [[(64, 16), (30, 20)]]
    assert engine.content_modes == ["RGBA"]
    kept = Image.open(tmp_path / "work" / "jobs" / job["id"] / "content.upload")
    assert kept.format == "PNG" and kept.size == (64, 16) and kept.mode == "RGBA"


def test_settings_are_checked_before_images_are_decoded(tmp_path: Path) -> None:
    with serving(tmp_path, max_size=64) as client:
        r = client.post("/api/jobs", **upload(content=_truncated_png(100, 50)))
        assert r.status_code == 422 and r.json()["detail"].startswith("size: 0 keeps") is False
        assert r.json()["detail"].startswith("size: this server allows at most 64")


# --- HTTP -----------------------------------------------------------------------------------
def test_method_not_allowed_lists_every_method_of_the_path(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        r = client.put("/api/jobs")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"
        assert r.json()["detail"] == "Method Not Allowed"
        r = client.patch(f"/api/jobs/{'0' * 32}")
        assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, HEAD"
        r = client.post("/api/settings")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_head_answers_wherever_get_does(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
        for path in (
            "/",
            "/api/settings",
            "/api/jobs",
            f"/api/jobs/{job['id']}",
            f"/api/jobs/{job['id']}/result",
            f"/api/jobs/{job['id']}/events",
            "/static/app.js",
            "/docs",
            "/openapi.json",
        ):
            head, get = client.head(path), client.get(path)
            assert head.status_code == 200 == get.status_code, path
            assert head.content == b""
            assert head.headers["content-type"] == get.headers["content-type"], path
        assert client.head(f"/api/jobs/{'0' * 32}").status_code == 404


def test_the_schema_documents_limits_and_refusals(tmp_path: Path) -> None:
    with serving(tmp_path, max_styles=3) as client:
        schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    styles = schema["components"]["schemas"][ref]["properties"]["styles"]
    assert (styles["minItems"], styles["maxItems"]) == (1, 3)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            # Any request may come from another site or name another host.
            assert "403" in operation["responses"], (path, method)
    assert "head" not in {m for ops in schema["paths"].values() for m in ops}


def test_api_docs_work_offline(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
            assert f"/docs-assets/{asset}" in page.text
            r = client.get(f"/docs-assets/{asset}")
            assert r.status_code == 200 and len(r.content) > 1000
        assert client.get("/redoc").status_code == 404  # it would load from a CDN


def test_a_damaged_job_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "jobs.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ImpastoError, match=r"--workdir: .*cannot use this job database"):
        create_app(ServerConfig(workdir=str(tmp_path)), engine=FakeEngine())


def test_results_survive_as_png_with_settings(tmp_path: Path) -> None:
    with serving(tmp_path) as client:
        job = submit(client, settings={"iterations": 1})
        wait_for(client, job["id"], finished)
    with serving(tmp_path) as client:
        image = decode(client.get(f"/api/jobs/{job['id']}/result").content)
    assert image.size == (24, 16) and np.asarray(image).std() > 0

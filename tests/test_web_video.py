"""Video jobs in the web app: a tiny clip made with PyAV, submitted to the real app and engine."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from test_video import strip, write_video  # noqa: E402
from web_fakes import png, serving, upload, wait_for  # noqa: E402

from impasto.web import ServerConfig, create_app  # noqa: E402
from impasto.web.video import looks_like_video, video_names  # noqa: E402

TINY = {"size": 32, "iterations": 2, "first_iterations": 3, "seed": 1, "temporal_weight": 100}


def clip(path: Path, frames: int = 4, width: int = 48, height: int = 32) -> bytes:
    """A pan over the example photo, ``frames`` frames of ``width`` x ``height``."""
    band = strip(width + 4 * frames, height)
    write_video(path, [band[:, 4 * i : 4 * i + width] for i in range(frames)], audio=False)
    return path.read_bytes()


def video_upload(content: bytes, settings: Any = None, name: str = "clip.mp4") -> dict[str, Any]:
    files = [
        ("content", (name, content, "video/mp4")),
        ("styles", ("style.png", png(32, 32, seed=1), "image/png")),
    ]
    return {"files": files, "data": {"settings": json.dumps(settings or {})}}


def test_uploads_are_told_apart_by_their_first_bytes(tmp_path: Path) -> None:
    mp4 = clip(tmp_path / "a.mp4", frames=2)
    assert looks_like_video(mp4[:16], None, None)
    assert not looks_like_video(png()[:16], "video/mp4", "x.mp4")  # a photo is a photo
    assert looks_like_video(b"garbage", "video/mp4", None)
    assert looks_like_video(b"garbage", None, "clip.MKV")
    assert not looks_like_video(b"garbage", "image/png", "x.png")


def test_bad_clips_and_settings_are_refused_before_any_work(tmp_path: Path) -> None:
    data = clip(tmp_path / "a.mp4")
    with serving(tmp_path, max_video_frames=3) as client:
        # Over the limit, from the container's header: 413 naming the limit.
        r = client.post("/api/jobs", **video_upload(data, {"size": 32}))
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == (
            "content: the job would paint 4 frames; this server paints at most 3 per video "
            "(choose fewer with frames or fps)"
        )
        # The same clip, a part of it: accepted as a video job (the fake engine is for
        # photos; video jobs run on the video engine, so cancel it at once).
        r = client.post("/api/jobs", **video_upload(data, {"size": 32, "frames": "1:3"}))
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["kind"] == "video" and job["frames"] == 2 and job["result_type"] == "video/mp4"
        assert job["settings"]["frames"] == "1:3" and job["settings"]["keep_frames"] is False
        client.delete(f"/api/jobs/{job['id']}")
        for bad, status, words in [
            (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, 422, "content: not a video"),
            (b"not a video at all", 422, "content: not a video"),
            (data[: len(data) // 3], 422, "content: "),
        ]:
            r = client.post("/api/jobs", **video_upload(bad, {"size": 32}))
            assert r.status_code == status, (bad[:20], r.text)
            assert r.json()["detail"].startswith(words) and "\n" not in r.json()["detail"]
            assert str(tmp_path) not in r.json()["detail"]  # no server paths
        for settings, words in [
            ({"temporal_weight": "10"}, 'temporal_weight: expected a number, got "10"'),
            ({"temporal_weight": -1}, "temporal_weight: must be a finite number >= 0"),
            ({"frames": "3:1"}, "frames: needs 0 <= START < END"),
            ({"frames": "10:"}, "frames: selects no frame"),
            ({"fps": True}, "fps: expected a number, got true"),
            ({"keep_frames": True}, "keep_frames: this server decides it"),
            ({"temporal_frame": [1]}, "unknown setting(s): temporal_frame (did you mean"),
            ({"frames": "0:2", "first_iterations": 5000}, "iterations: this job would run"),
            ({"frames": "0:2", "iterations": 5000}, "iterations: "),
        ]:
            r = client.post("/api/jobs", **video_upload(data, {"size": 32, **settings}))
            assert r.status_code == 422, (settings, r.text)
            assert r.json()["detail"].startswith(words), (settings, r.json()["detail"])
        # A video setting with a photo is named too.
        r = client.post("/api/jobs", **upload(settings={"fps": 12}))
        assert r.status_code == 422 and r.json()["detail"] == (
            "fps: a video setting; the content is an image"
        )
        schema = client.get("/api/settings").json()
    assert [f["name"] for f in schema["video_fields"]] == video_names()
    assert schema["limits"]["max_video_frames"] == 3


def test_long_clips_are_refused_from_the_header(tmp_path: Path) -> None:
    data = clip(tmp_path / "a.mp4", frames=4)  # 4 frames at 12 fps: a third of a second
    with serving(tmp_path, max_video_seconds=0.2) as client:
        r = client.post("/api/jobs", **video_upload(data, {"size": 32}))
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("content: the video is 0.3 seconds long")


def _follow(client: TestClient, job_id: str) -> tuple[dict[str, Any], set[tuple[int, int]]]:
    """Poll until the job finishes; the (frame, iteration) pairs seen on the way."""
    seen = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["frame"] is not None:
            seen.add((status["frame"], status["iteration"]))
        if status["state"] not in ("queued", "running"):
            return status, seen
        time.sleep(0.02)
    raise AssertionError(f"the video job never finished: {status}")


@pytest.mark.slow
def test_a_video_job_runs_to_an_mp4(tmp_path: Path) -> None:
    data = clip(tmp_path / "a.mp4", frames=4)
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu", preview_seconds=0.01)
    with TestClient(create_app(config)) as client:
        r = client.post("/api/jobs", **video_upload(data, TINY))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        status, seen = _follow(client, job_id)
        assert status["state"] == "done", status
        assert status["kind"] == "video" and status["frames"] == status["frames_done"] == 4
        assert {frame for frame, _ in seen} >= {2, 3, 4}, seen  # frame k of 4 was reported
        assert status["has_result"] and status["note"] is None
        preview = client.get(f"/api/jobs/{job_id}/preview")
        assert preview.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(preview.content)).size == (32, 20)  # the working size
        result = client.get(f"/api/jobs/{job_id}/result")
        assert result.status_code == 200
        assert result.headers["content-type"] == "video/mp4"
        assert f'filename="impasto-{job_id[:8]}.mp4"' in result.headers["content-disposition"]
    out = tmp_path / "out.mp4"
    out.write_bytes(result.content)
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (32, 20)


@pytest.mark.slow
def test_a_cancelled_video_job_offers_the_frames_it_painted(tmp_path: Path) -> None:
    data = clip(tmp_path / "a.mp4", frames=4)
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu")
    with TestClient(create_app(config)) as client:
        r = client.post("/api/jobs", **video_upload(data, {**TINY, "iterations": 3}))
        job_id = r.json()["id"]
        wait_for(client, job_id, lambda s: (s["frames_done"] or 0) >= 1 or s["state"] == "done")
        client.post(f"/api/jobs/{job_id}/cancel")
        status, _ = _follow(client, job_id)
        if status["state"] == "done":  # painted faster than it could be cancelled
            pytest.skip("the clip was painted before the cancel came")
        assert status["state"] == "cancelled" and status["has_result"], status
        done = status["frames_done"]
        assert 1 <= done <= 4  # on a slow machine the last frame may finish as it stops
        assert status["note"] == f"cancelled after {done} of 4 frames; the result is those frames"
        result = client.get(f"/api/jobs/{job_id}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
        preview = client.get(f"/api/jobs/{job_id}/preview")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    out = tmp_path / "part.mp4"
    out.write_bytes(result.content)
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == done


@pytest.mark.slow
def test_a_video_job_stopped_by_a_shutdown_resumes_at_the_next_frame(tmp_path: Path) -> None:
    data = clip(tmp_path / "a.mp4", frames=3)
    config = ServerConfig(workdir=str(tmp_path / "work"), device="cpu")
    with TestClient(create_app(config)) as client:
        job_id = client.post("/api/jobs", **video_upload(data, TINY)).json()["id"]
        wait_for(client, job_id, lambda s: (s["frames_done"] or 0) >= 1 or s["state"] == "done")
    # The server stopped (as on SIGTERM): the job is interrupted, its frames kept.
    with TestClient(create_app(config)) as client:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] == "done":
            pytest.skip("the clip was painted before the server stopped")
        assert status["state"] == "interrupted" and status["resumable"], status
        assert "resume the job to continue at frame" in status["note"]
        frames = sorted(p.name for p in (tmp_path / "work/jobs" / job_id).rglob("0*.png"))
        assert (status["frames_done"], status["frames"]) == (len(frames), 3)
        assert frames and client.get(f"/api/jobs/{job_id}/preview").status_code == 200
        assert client.post(f"/api/jobs/{job_id}/resume").status_code == 200
        status, seen = _follow(client, job_id)
        assert status["state"] == "done" and status["has_result"], status
        assert min(frame for frame, _ in seen) > 1, seen  # the kept frames were not repainted
        result = client.get(f"/api/jobs/{job_id}/result")
    out = tmp_path / "out.mp4"
    out.write_bytes(result.content)
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 3

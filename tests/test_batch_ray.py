"""Batches and web jobs on a real Ray head (2 CPUs, loopback only), started once per module."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

# Not imported here: Ray reads the loopback settings when first imported (see ray_cluster).
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (the 'ray' extra)", allow_module_level=True)

from batch_inputs import TINY, make_inputs
from ray_cluster import LOOPBACK_ENV, Head, joined, loopback_head

import impasto
from impasto.batches import ItemStatus
from impasto.cli import main
from impasto.errors import WeightsError
from impasto.io.metadata import read_provenance
from impasto.results import StopReason

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    with loopback_head(tmp_path_factory.mktemp("ray") / "head.log") as started:
        yield started


@pytest.fixture(scope="module")
def connected(head: Head) -> Iterator[str]:
    """This process joined to the head (the batches below reuse the link); the node's id."""
    with joined(head) as ray:
        (node,) = [n for n in ray.nodes() if n["Alive"]]
        yield node["NodeID"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_inputs(tmp_path_factory.mktemp("ray-inputs"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **LOOPBACK_ENV}
    return subprocess.run(
        [sys.executable, "-m", "impasto", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_on_ray_paints_good_photos_names_the_broken_one_and_skips_on_rerun(
    head: Head, connected: str, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, style = inputs
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = [str(photos), "--styles", str(style), "-o", str(out), "--report", str(report)]
    args += ["--size", "32", "--iterations", "2", "--seed", "1", "--ray", head.address]
    first = _cli(*args)  # a driver of its own, as a user's command is
    assert first.returncode == 1, first.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"photo{i}--style.png" for i in range(3)]
    data = json.loads(report.read_text())
    assert data["ray_address"] == head.address
    items = {Path(i["content"]).name: i for i in data["items"]}
    broken = items.pop("broken.jpg")
    assert broken["status"] == "failed" and "broken.jpg: cannot read image" in broken["reason"]
    assert "broken--style.png" in first.stderr and "cannot read image" in first.stderr
    assert {item["node_id"] for item in items.values()} == {connected}  # the head's node
    assert all(i["status"] == "done" and i["peak_memory_bytes"] > 50e6 for i in items.values())

    assert main(["batch", *args, "-q"]) == 1  # again, from this process
    data = json.loads(report.read_text())  # an earlier report is replaced by the next
    assert data["summary"] == {"done": 0, "skipped": 3, "failed": 1, "cancelled": 0}


def test_a_worker_that_dies_is_retried(
    head: Head, connected: str, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, style = inputs
    killed: list[int] = []

    def kill_the_painting_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid, command in head.own_processes():
                if command.startswith("ray::paint_task"):
                    time.sleep(0.5)  # let it get going
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_painting_worker)
    killer.start()
    report = impasto.batch(
        [photos / "photo0.jpg"],
        [style],
        out_dir=tmp_path,
        ray=True,
        **{**TINY, "iterations": 10, "tolerance": 0},
    )
    killer.join()
    assert killed, "no worker was seen painting"
    (record,) = report.records
    assert record.status is ItemStatus.DONE and record.node_id == connected
    assert (tmp_path / "photo0--style.png").is_file()


def test_stop_cancels_the_remaining_tasks_and_keeps_what_finished(
    connected: str, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, style = inputs
    runs: list[impasto.batches.BatchRun] = []

    def stop_after_the_first(event: impasto.batches.BatchEvent) -> None:
        if event.kind == "finished" and event.record.status is ItemStatus.DONE:
            runs[0].request_stop()

    report = impasto.batch(
        [photos / f"photo{i}.jpg" for i in range(3)],
        [style],
        out_dir=tmp_path,
        ray=True,
        on_start=runs.append,
        on_event=stop_after_the_first,
        **{**TINY, "iterations": 20, "tolerance": 0},
    )
    statuses = [r.status for r in report.records]
    assert statuses.count(ItemStatus.DONE) == 1 and report.interrupted
    assert statuses.count(ItemStatus.CANCELLED) == 2
    done = [Path(r.output).name for r in report.records if r.status is ItemStatus.DONE]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == done


def test_web_job_on_ray_reports_progress_previews_and_its_result(
    connected: str, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    from impasto.distributed.jobs import ray_engine

    photos, style = inputs
    engine = ray_engine(preview_seconds=0.0)
    content, painting = Image.open(photos / "photo1.jpg"), Image.open(style)
    settings = impasto.Settings(size=32, iterations=6, tolerance=0, seed=2)
    run = engine(content, [painting], settings)
    seen = list(run.run())
    assert [p.iteration for p in seen] == sorted({p.iteration for p in seen})
    assert seen[-1].iteration == 6 and seen[-1].iterations == 6
    assert seen[0].image().size == (32, 24) and seen[0].losses["total"] > 0
    result = run.result()
    assert result.iterations == 6 and StopReason(result.stopped) is StopReason.DONE
    assert result.losses["total"] < seen[0].losses["total"]
    result.save(tmp_path / "job.png")
    assert read_provenance(tmp_path / "job.png")["settings"]["seed"] == 2

    long = engine(content, [painting], settings.replace(iterations=500))
    for p in long.run():
        if p.iteration >= 2:
            break
    cancelled = long.result(StopReason.CANCELLED)
    assert StopReason(cancelled.stopped) is StopReason.CANCELLED
    assert 2 <= cancelled.iterations < 500

    broken = engine(content, [painting], settings.replace(weights=str(tmp_path / "no.pth")))
    with pytest.raises(WeightsError, match=r"no\.pth: no such file"):
        list(broken.run())


def _pan_video(path: Path, frames: int = 6) -> None:
    """A lossless H.264 pan across the bundled example photo, 48x36, 6 frames."""
    import av
    import numpy as np

    from impasto.examples import example_paths

    photo = Image.open(example_paths()[0]).convert("RGB").resize((96, 36))
    band = np.asarray(photo)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 48, 36, "yuv444p"
        stream.options = {"crf": "0"}
        for i in range(frames):
            pixels = np.ascontiguousarray(band[:, 4 * i : 4 * i + 48])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv444p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def test_video_in_chunks_on_ray_with_seams_measured(
    connected: str, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from impasto.distributed.video import paint_video_on_ray, seam_errors
    from impasto.video import VideoSettings, VideoStylizer

    _, style = inputs
    _pan_video(tmp_path / "pan.mp4")
    settings = impasto.Settings(size=32, iterations=2, seed=3)
    video = VideoSettings(first_iterations=3)
    st = VideoStylizer(tmp_path / "pan.mp4", [style], tmp_path / "out.mp4", settings, video)
    done = []
    chunks = paint_video_on_ray(st, chunk_frames=3, warmup=1, task_cpus=1, on_chunk=done.append)
    assert chunks == [(0, 3), (3, 6)] and sorted((c.start, c.end) for c in done) == chunks
    assert st.work.done() == 6
    assert paint_video_on_ray(st, chunk_frames=3) == []  # nothing left to paint
    (seam,) = seam_errors(st, [3])
    assert seam["frame"] == 3 and all(0 <= seam[k] < 255 for k in ("seam", "before", "after"))
    result = st.finish()
    assert result.written and result.frames == 6
    import av

    with av.open(str(tmp_path / "out.mp4")) as written:
        assert sum(1 for _ in written.decode(video=0)) == 6
    args = ["video", str(tmp_path / "pan.mp4"), str(style), "-o", str(tmp_path / "b.mp4")]
    assert main([*args, "--ray", "--chunk-frames", "-1", "-q"]) == 2

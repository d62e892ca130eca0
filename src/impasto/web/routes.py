"""The REST API: jobs in, progress and images out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import ImpastoError, SettingsError
from ..settings import Settings
from .config import ServerConfig
from .job import VIDEO, Job, State
from .jobs import JobQueue, NotResumable, QueueFull, ShuttingDown
from .models import JobList, JobStatus, Problem, SettingsSchema
from .policy import check_work, settings_from_client, settings_schema, web_wording
from .uploads import UploadRejected, check_request_pixels, decode, header_size, remove_tree, store
from .video import (
    check_header,
    check_video,
    looks_like_video,
    planned_iterations,
    split_client_settings,
    video_settings_schema,
)

# How often a progress stream looks for news, and how long it stays silent at most.
STREAM_POLL_SECONDS = 0.2
STREAM_KEEPALIVE_SECONDS = 15.0
# While the server shuts down, a stream waits this long at most for its running job to
# stop and be saved, so that its client sees the outcome.
STREAM_SHUTDOWN_SECONDS = 10.0
# Clients that get 429 or 503 may come back this many seconds later.
RETRY_LATER = {"Retry-After": "30"}
UNKNOWN_JOB = "unknown job id (finished jobs are deleted after a while)"


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


def _queue(request: Request) -> JobQueue:
    return request.app.state.jobs


def _config(request: Request) -> ServerConfig:
    return request.app.state.config


Queue = Annotated[JobQueue, Depends(_queue)]
Config = Annotated[ServerConfig, Depends(_config)]

NOT_FOUND = {404: {"model": Problem, "description": "no such job (or it was cleaned up)"}}
NOT_READY = {409: {"model": Problem, "description": "the image is not there yet"}}
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
RESULT = {
    200: {
        "content": {"image/png": {}, "video/mp4": {}},
        "description": "a PNG image, or an MP4 video (H.264) for a video job",
    }
}
BUSY = {
    429: {"model": Problem, "description": "the queue is full"},
    503: {"model": Problem, "description": "the server is shutting down"},
}


def _found(status: dict[str, Any] | None) -> dict[str, Any]:
    if status is None:
        raise problem(404, UNKNOWN_JOB)
    return status


api = APIRouter(
    prefix="/api",
    responses={
        403: {"model": Problem, "description": "a request from another web site or host name"},
        422: {"model": Problem},
    },
)


@api.get("/settings", response_model=SettingsSchema, summary="The settings a job accepts")
def get_settings(config: Config) -> dict[str, Any]:
    """Names, types, defaults, help texts and choices of every setting, built from the
    same dataclass as the command line, plus the server's limits."""
    return {
        "fields": settings_schema(config),
        "video_fields": video_settings_schema(),
        "limits": config.limits(),
        "version": __version__,
    }


@api.post(
    "/jobs",
    status_code=201,
    response_model=JobStatus,
    summary="Start a job",
    responses={
        400: {"model": Problem, "description": "the multipart body is malformed"},
        413: {"model": Problem, "description": "an upload or the request is too large"},
        415: {"model": Problem, "description": "a video, on a server without video support"},
        **BUSY,
    },
)
async def create_job(
    request: Request,
    queue: Queue,
    config: Config,
    content: Annotated[
        UploadFile, File(description="the photo to repaint, or a video (any format FFmpeg reads)")
    ],
    styles: Annotated[list[UploadFile], File(description="one or more style images")],
    settings: Annotated[
        str,
        Form(description='a JSON object of settings, e.g. {"size": 256, "iterations": 100}'),
    ] = "{}",
) -> dict[str, Any]:
    """Queue a stylisation of `content` in the style of `styles`; unknown or invalid
    settings are refused with 422 and a message naming the setting. Everything is
    checked before the job is queued: the settings, the images' sizes against the
    network and the server's limits (from their headers), then the images themselves.
    A video as `content` makes a video job: its video settings (`temporal_weight`,
    `frames`, `fps`, ...; see `video_fields` of `GET /api/settings`) go with the others."""
    try:
        if len(styles) > config.max_styles:
            raise UploadRejected(
                422, f"styles: at most {config.max_styles} style images per job, got {len(styles)}"
            )
        is_video = looks_like_video(await _peek(content), content.content_type, content.filename)
        remote = getattr(request.app.state.engine, "device_type", None)
        parsed, video = _client_settings(settings, config, is_video, remote)
        with queue.reserve():
            job = await _prepare(request, queue, config, content, styles, parsed, video)
            return queue.submit(job)
    except (QueueFull, ShuttingDown) as e:
        raise problem(429 if isinstance(e, QueueFull) else 503, str(e), RETRY_LATER) from None
    except UploadRejected as e:
        raise problem(e.status, str(e)) from None
    except ImpastoError as e:
        raise problem(422, web_wording(str(e))) from None


async def _peek(upload: UploadFile) -> bytes:
    head = await upload.read(16)
    await upload.seek(0)
    return head


def _client_settings(
    text: str, config: ServerConfig, is_video: bool, remote_device: str | None
) -> tuple[Settings, dict[str, Any] | None]:
    """The settings form field, parsed and checked, and a video job's video settings;
    errors name the setting. ``remote_device``: see :func:`settings_from_client`."""
    try:
        data = json.loads(text or "{}")
    except (ValueError, RecursionError) as e:
        raise SettingsError(f"settings: not valid JSON ({e})") from None
    data, video = split_client_settings(data, is_video)
    return settings_from_client(data, config, None if is_video else remote_device), video


async def _prepare(
    request: Request,
    queue: JobQueue,
    config: ServerConfig,
    content: UploadFile,
    styles: list[UploadFile],
    settings: Settings,
    video: dict[str, Any] | None = None,
) -> Job:
    """Store and check every upload: headers and settings first, then decode each image
    (a video: probe it, decoding its first frame only)."""
    job_id, folder = queue.new_folder()
    try:
        paths = {"content": folder / "content.upload"}
        for i in range(1, len(styles) + 1):
            label = "styles" if len(styles) == 1 else f"styles[{i}]"
            paths[label] = folder / f"style-{i}.upload"
        uploads = dict(zip(paths, [content, *styles]))
        sizes = await run_in_threadpool(_store_and_measure, paths, uploads, config, video)
        # Decoding costs memory and time: only so many at once, in the whole server.
        if video is not None:
            async with request.app.state.decodes.waited():
                sizes["content"], frames = await run_in_threadpool(
                    check_video, paths["content"], settings, video, config
                )
        planned = _check_sizes(settings, sizes, config, video)
        async with request.app.state.decodes.waited():
            for label, path in paths.items():
                if label != "content" or video is None:
                    await run_in_threadpool(decode, path, label=label, max_side=config.max_size)
    except BaseException:
        remove_tree(folder)
        raise
    job = Job(
        id=job_id,
        folder=folder,
        content=paths.pop("content"),
        styles=list(paths.values()),
        settings=settings,
        iterations=planned,
    )
    if video is not None:
        job.kind, job.video, job.frames, job.frames_done = VIDEO, video, frames, 0
    return job


def _store_and_measure(
    paths: dict[str, Path],
    uploads: dict[str, UploadFile],
    config: ServerConfig,
    video: dict[str, Any] | None,
) -> dict[str, tuple[int, int]]:
    sizes = {}
    for label, path in paths.items():
        if label == "content" and video is not None:  # the container's header, no frame
            store(uploads[label].file, path, label=label, max_bytes=config.max_video_bytes)
            check_header(path, config, video)
            continue
        store(uploads[label].file, path, label=label, max_bytes=config.max_upload_bytes)
        sizes[label] = header_size(path, label=label, max_pixels=config.max_pixels)
    check_request_pixels(sizes, config.max_request_pixels)
    return sizes


def _check_sizes(
    settings: Settings,
    sizes: dict[str, tuple[int, int]],
    config: ServerConfig,
    video: dict[str, Any] | None = None,
) -> int:
    """The settings against the images' sizes (a video's: its working size); returns the
    planned iterations (a video's: of its first frame)."""
    from ..run.sizes import check_working_sizes

    labels = list(sizes)
    settings.validate(n_styles=len(labels) - 1)
    size = settings.size or max(sizes["content"])
    if video is not None:
        size = max(sizes["content"])  # frames are painted at their working size
        planned = planned_iterations(settings, video, size, config)
        settings = settings.replace(size=size)
    else:
        planned = check_work(settings, size, config)
    check_working_sizes(
        settings,
        sizes["content"],
        [sizes[label] for label in labels[1:]],
        content_name="content",
        style_names=labels[1:],
    )
    return planned


@api.get("/jobs", response_model=JobList, summary="All jobs the server still knows")
def list_jobs(queue: Queue) -> dict[str, Any]:
    return {"jobs": queue.statuses()}


@api.get("/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND, summary="A job")
def get_job(job_id: str, queue: Queue) -> dict[str, Any]:
    """State, queue position, iteration, losses and ETA."""
    return _found(queue.status(job_id))


@api.get(
    "/jobs/{job_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        **NOT_FOUND,
    },
    response_class=StreamingResponse,
    summary="Follow a job",
)
async def job_events(job_id: str, queue: Queue, request: Request) -> StreamingResponse:
    """Server-sent events: a `status` event (the job status JSON) whenever something
    changed, then one `end` event once the job has finished. When the server shuts
    down, the stream ends with a `shutdown` event instead (reconnect later)."""
    _found(queue.status(job_id))
    return StreamingResponse(
        _events(job_id, queue, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@api.get(
    "/jobs/{job_id}/preview",
    response_class=Response,
    responses={**PNG, **NOT_FOUND, **NOT_READY},
    summary="The latest preview",
)
async def job_preview(job_id: str, queue: Queue) -> Response:
    """The image as it was at the latest preview (the result, once finished)."""
    _found(queue.status(job_id))
    data = await run_in_threadpool(queue.preview_png, job_id)
    if data is None:
        raise problem(409, "no preview yet: the job has not made its first step")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@api.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    responses={**RESULT, **NOT_FOUND, **NOT_READY},
    summary="The final image or video",
)
async def job_result(job_id: str, queue: Queue) -> Response:
    """The finished image as PNG, with the settings used embedded in its metadata. A
    cancelled or interrupted job's result is the best image it had reached. A video
    job's result is its video (MP4, H.264), there only once every frame is painted."""
    status = _found(queue.status(job_id))
    if status["kind"] == VIDEO:
        return _video_result(job_id, queue, status)
    data = await run_in_threadpool(queue.result_png, job_id)
    if data is None:
        raise problem(409, _no_result(State(status["state"]), status["error"], status["note"]))
    name = f"impasto-{job_id[:8]}.png"
    return Response(
        data,
        media_type="image/png",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


def _video_result(job_id: str, queue: JobQueue, status: dict[str, Any]) -> Response:
    found = queue.result_file(job_id)
    if found is None:
        raise problem(409, _no_result(State(status["state"]), status["error"], status["note"]))
    path, media_type = found
    return FileResponse(
        path,
        media_type=media_type,
        filename=f"impasto-{job_id[:8]}.mp4",
        content_disposition_type="inline",
        headers={"Cache-Control": "no-cache"},
    )


def _no_result(state: State, error: str | None, note: str | None) -> str:
    if state is State.FAILED:
        return f"the job failed: {error}"
    if state.finished:
        return f"the job has no result: {note or 'it stopped before its first iteration'}"
    return f"the job is {state.value}; the result is not ready yet"


@api.post(
    "/jobs/{job_id}/cancel",
    response_model=JobStatus,
    responses=NOT_FOUND,
    summary="Cancel a job",
)
def cancel_job(job_id: str, queue: Queue) -> dict[str, Any]:
    """A queued job is dropped; a running one stops after its current iteration and keeps
    its best image as the result (none if it had not finished an iteration).
    Cancelling a finished job changes nothing."""
    return _found(queue.cancel(job_id))


@api.post(
    "/jobs/{job_id}/resume",
    response_model=JobStatus,
    responses={
        **NOT_FOUND,
        409: {"model": Problem, "description": "the job is not an interrupted one"},
        **BUSY,
    },
    summary="Resume an interrupted job",
)
def resume_job(job_id: str, queue: Queue) -> dict[str, Any]:
    """A job interrupted by a server shutdown, whose state was saved, goes back in the
    queue and continues where it stopped."""
    try:
        return _found(queue.resume(job_id))
    except NotResumable as e:
        raise problem(409, str(e)) from None
    except (QueueFull, ShuttingDown) as e:
        raise problem(429 if isinstance(e, QueueFull) else 503, str(e), RETRY_LATER) from None


@api.delete(
    "/jobs/{job_id}", status_code=204, responses=NOT_FOUND, summary="Cancel and delete a job"
)
def delete_job(job_id: str, queue: Queue) -> Response:
    """Cancel the job if needed and delete it with its files."""
    if not queue.delete(job_id):
        raise problem(404, UNKNOWN_JOB)
    return Response(status_code=204)


async def _events(
    job_id: str, queue: JobQueue, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    last, last_sent, stop_seen = "", loop.time(), None
    yield "retry: 2000\n\n"
    while True:
        status = queue.status(job_id)
        if status is None:  # deleted while someone watched
            yield "event: end\ndata: {}\n\n"
            return
        text = json.dumps(status)
        if text != last:
            yield f"event: status\ndata: {text}\n\n"
            last, last_sent = text, loop.time()
            if State(status["state"]).finished:
                yield "event: end\ndata: {}\n\n"
                return
        elif loop.time() - last_sent > STREAM_KEEPALIVE_SECONDS:
            yield ": still working\n\n"
            last_sent = loop.time()
        if queue.stopping:
            stop_seen = stop_seen or loop.time()
            if status["state"] != "running" or loop.time() - stop_seen > STREAM_SHUTDOWN_SECONDS:
                yield "event: shutdown\ndata: {}\n\n"
                return
        if await disconnected():
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)

"""The FastAPI application: REST API, progress stream and the single page."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import SettingsError
from ..settings import Settings
from .config import LOOPBACK_HOSTS, ServerConfig
from .guards import BodyLimit, OriginGuard
from .job import Engine, Job, State
from .jobs import JobQueue, QueueFull
from .models import JobList, JobStatus, Problem, SettingsSchema
from .policy import check_work, settings_from_client, settings_schema
from .uploads import UploadRejected, check_image, remove_tree, store

STATIC = Path(__file__).with_name("static")
JOB_FOLDER = re.compile(r"^[0-9a-f]{32}$")
# How often a progress stream looks for news, and how long it stays silent at most.
STREAM_POLL_SECONDS = 0.2
STREAM_KEEPALIVE_SECONDS = 15.0

DESCRIPTION = """\
Neural style transfer (Gatys, Ecker & Bethge 2016) as a service. Upload a content image
and one or more style images with settings (see `GET /api/settings`); jobs run one at a
time, in the order they came. Errors are answered as `{"detail": "..."}`.
"""


def create_app(config: ServerConfig | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The web app; ``engine`` replaces the real stylizer (tests use a fast fake)."""
    config = (config or ServerConfig()).validate()
    workspace, owned = _workspace(config)
    app = FastAPI(title="impasto", version=__version__, description=DESCRIPTION, lifespan=_lifespan)
    app.state.config = config
    app.state.jobs = JobQueue(config, workspace / "jobs", engine)
    app.state.workspace = workspace
    app.state.owns_workspace = owned
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    app.add_middleware(OriginGuard, loopback_only=config.host in LOOPBACK_HOSTS)
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the worker; on shut-down stop it and remove the workspace if the server made it."""
    jobs: JobQueue = app.state.jobs
    jobs.start()
    try:
        yield
    finally:
        await run_in_threadpool(jobs.close)
        if app.state.owns_workspace:
            shutil.rmtree(app.state.workspace, ignore_errors=True)


def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def _workspace(config: ServerConfig) -> tuple[Path, bool]:
    """The server's own folder, and whether the server made it (and so removes it)."""
    if config.workdir is None:
        return Path(tempfile.mkdtemp(prefix="impasto-web-")), True
    folder = Path(config.workdir).resolve()
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    # Jobs live in memory only: folders left by an earlier run belong to nobody now.
    for leftover in (folder / "jobs").iterdir():
        if leftover.is_dir() and JOB_FOLDER.match(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)
    return folder, False


# --- errors --------------------------------------------------------------------------------
def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


# Clients that get 429 may come back this many seconds later.
RETRY_LATER = {"Retry-After": "30"}


async def _validation_problem(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own checks (missing fields, wrong types) answered in one readable line."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


# --- the API ---------------------------------------------------------------------------------
def _queue(request: Request) -> JobQueue:
    return request.app.state.jobs


def _config(request: Request) -> ServerConfig:
    return request.app.state.config


Queue = Annotated[JobQueue, Depends(_queue)]
Config = Annotated[ServerConfig, Depends(_config)]

NOT_FOUND = {404: {"model": Problem, "description": "no such job (or it was cleaned up)"}}
NOT_READY = {409: {"model": Problem, "description": "the image is not there yet"}}
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
UNKNOWN_JOB = "unknown job id (finished jobs are deleted after a while)"


def _found(status: dict[str, Any] | None) -> dict[str, Any]:
    if status is None:
        raise _problem(404, UNKNOWN_JOB)
    return status


api = APIRouter(prefix="/api", responses={422: {"model": Problem}})


@api.get("/settings", response_model=SettingsSchema, summary="The settings a job accepts")
def get_settings(config: Config) -> dict[str, Any]:
    """Names, types, defaults, help texts and choices of every setting, built from the
    same dataclass as the command line, plus the server's limits."""
    return {
        "fields": settings_schema(config),
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
        429: {"model": Problem, "description": "the queue is full"},
    },
)
async def create_job(
    queue: Queue,
    config: Config,
    content: Annotated[UploadFile, File(description="the photo to repaint")],
    styles: Annotated[list[UploadFile], File(description="one or more style images")],
    settings: Annotated[
        str,
        Form(description='a JSON object of settings, e.g. {"size": 256, "iterations": 100}'),
    ] = "{}",
) -> dict[str, Any]:
    """Queue a stylisation of `content` in the style of `styles`; unknown or invalid
    settings are refused with 422 and a message naming the setting."""
    try:
        queue.check_room()
    except QueueFull as e:
        raise _problem(429, str(e), RETRY_LATER) from None
    if len(styles) > config.max_styles:
        raise _problem(
            422, f"styles: at most {config.max_styles} style images per job, got {len(styles)}"
        )
    parsed = _client_settings(settings, config)
    job_id, folder = queue.new_folder()
    try:
        job = await run_in_threadpool(_prepare, job_id, folder, content, styles, parsed, config)
        return queue.submit(job)
    except UploadRejected as e:
        remove_tree(folder)
        raise _problem(e.status, str(e)) from None
    except SettingsError as e:
        remove_tree(folder)
        raise _problem(422, str(e)) from None
    except QueueFull as e:
        remove_tree(folder)
        raise _problem(429, str(e), RETRY_LATER) from None
    except BaseException:
        remove_tree(folder)
        raise


def _client_settings(text: str, config: ServerConfig) -> Settings:
    """The settings form field, parsed and checked; errors name the setting."""
    try:
        data = json.loads(text or "{}")
    except (ValueError, RecursionError) as e:
        raise _problem(422, f"settings: not valid JSON ({e})") from None
    try:
        return settings_from_client(data, config)
    except SettingsError as e:
        raise _problem(422, str(e)) from None


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
    changed, then one `end` event once the job has finished."""
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
        raise _problem(409, "no preview yet: the job has not made its first step")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@api.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    responses={**PNG, **NOT_FOUND, **NOT_READY},
    summary="The final image",
)
async def job_result(job_id: str, queue: Queue) -> Response:
    """The finished image as PNG, with the settings used embedded in its metadata. A
    cancelled job's result is the best image it had reached."""
    state = queue.job_state(job_id)
    if state is None:
        raise _problem(404, UNKNOWN_JOB)
    data = await run_in_threadpool(queue.result_png, job_id)
    if data is None:
        if state[0] is State.FAILED:
            raise _problem(409, f"the job failed: {state[1]}")
        if state[0].finished:
            raise _problem(409, "the job was cancelled before it started; it has no result")
        raise _problem(409, f"the job is {state[0].value}; the result is not ready yet")
    name = f"impasto-{job_id[:8]}.png"
    return Response(
        data,
        media_type="image/png",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


@api.post(
    "/jobs/{job_id}/cancel",
    response_model=JobStatus,
    responses=NOT_FOUND,
    summary="Cancel a job",
)
def cancel_job(job_id: str, queue: Queue) -> dict[str, Any]:
    """A queued job is dropped; a running one stops after its current iteration and keeps
    its best image as the result. Cancelling a finished job changes nothing."""
    return _found(queue.cancel(job_id))


@api.delete(
    "/jobs/{job_id}", status_code=204, responses=NOT_FOUND, summary="Cancel and delete a job"
)
def delete_job(job_id: str, queue: Queue) -> Response:
    """Cancel the job if needed and delete it with its files."""
    if not queue.delete(job_id):
        raise _problem(404, UNKNOWN_JOB)
    return Response(status_code=204)


def _prepare(
    job_id: str,
    folder: Path,
    content: UploadFile,
    styles: list[UploadFile],
    settings: Settings,
    config: ServerConfig,
) -> Job:
    """Store and check every upload (in a worker thread: decoding takes a while)."""
    content_path = folder / "content.upload"
    store(content.file, content_path, label="content", max_bytes=config.max_upload_bytes)
    size = check_image(content_path, label="content", max_pixels=config.max_pixels)
    style_paths = []
    for i, upload in enumerate(styles, start=1):
        label = "styles" if len(styles) == 1 else f"styles[{i}]"
        path = folder / f"style-{i}.upload"
        store(upload.file, path, label=label, max_bytes=config.max_upload_bytes)
        check_image(path, label=label, max_pixels=config.max_pixels)
        style_paths.append(path)
    settings.validate(n_styles=len(styles))
    planned = check_work(settings, settings.size or max(size), config)
    return Job(
        id=job_id,
        folder=folder,
        content=content_path,
        styles=style_paths,
        settings=settings,
        iterations=planned,
    )


async def _events(
    job_id: str, queue: JobQueue, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    last, last_sent = "", loop.time()
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
        if await disconnected():
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)

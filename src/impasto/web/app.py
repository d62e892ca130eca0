"""The FastAPI application: REST API, progress stream, API docs and the single page."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from .. import __version__
from ..errors import ImpastoError
from .config import LOOPBACK_HOSTS, ServerConfig
from .guards import BodyLimit, HeadAsGet, OriginGuard, answer_problem
from .job import Engine
from .jobs import JobQueue
from .routes import api
from .store import StoreError
from .uploads import DecodeSlots

STATIC = Path(__file__).with_name("static")
DOCS_ASSETS = "/docs-assets"

DESCRIPTION = """\
Neural style transfer (Gatys, Ecker & Bethge 2016) as a service. Upload a content image
and one or more style images with settings (see `GET /api/settings`); jobs run in the
order they came, one at a time (several at once on a Ray cluster). Errors are answered
as `{"detail": "..."}`.
"""


def create_app(
    config: ServerConfig | None = None, *, engine: Engine | None = None, workers: int = 1
) -> FastAPI:
    """The web app; ``engine`` replaces the real stylizer (tests use a fast fake, and
    ``impasto serve --ray`` Ray tasks), ``workers`` jobs of it run at once."""
    config = (config or ServerConfig()).validate()
    workspace, owned = _workspace(config)
    app = FastAPI(
        title="impasto",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # served below from the package: no CDN, so it works offline
        redoc_url=None,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.workers = workers
    app.state.decodes = DecodeSlots(config.max_decodes)
    app.state.workspace = workspace
    app.state.owns_workspace = owned
    _open_queue(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    app.add_middleware(OriginGuard, loopback_only=config.host in LOOPBACK_HOSTS)
    app.add_middleware(HeadAsGet)
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    _add_docs(app)
    _document_limits(app, config)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the worker; on shut-down stop it and remove the workspace if the server made it.

    Test clients may run the app's lifespan more than once, even at the same time: the
    last one to end shuts the queue down, and the next to start opens it again.
    """
    if app.state.jobs.closed:
        _open_queue(app)
    jobs: JobQueue = app.state.jobs
    app.state.lifespans = getattr(app.state, "lifespans", 0) + 1
    jobs.start()
    try:
        yield
    finally:
        app.state.lifespans -= 1
        if not app.state.lifespans:
            await run_in_threadpool(jobs.close)
            if app.state.owns_workspace:
                shutil.rmtree(app.state.workspace, ignore_errors=True)


def _open_queue(app: FastAPI) -> None:
    state = app.state
    try:
        state.jobs = JobQueue(
            state.config,
            state.workspace,
            state.engine,
            decodes=state.decodes,
            workers=state.workers,
        )
    except StoreError as e:
        raise ImpastoError(f"--workdir: {e}") from None


def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def _workspace(config: ServerConfig) -> tuple[Path, bool]:
    """The server's own folder, and whether the server made it (and so removes it)."""
    if config.workdir is None:
        return Path(tempfile.mkdtemp(prefix="impasto-web-")), True
    folder = Path(config.workdir).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImpastoError(f"--workdir: cannot use {folder} ({e.strerror})") from None
    return folder, False


# --- the API's documentation ------------------------------------------------------------------
def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs, its files served from the fastapi-offline package."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).with_name("static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="impasto API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def _document_limits(app: FastAPI, config: ServerConfig) -> None:
    """Put this server's limit on style images into the schema of ``POST /api/jobs``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for body in schema.get("components", {}).get("schemas", {}).values():
                styles = body.get("properties", {}).get("styles")
                if styles is not None and styles.get("type") == "array":
                    styles.update(minItems=1, maxItems=config.max_styles)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- errors --------------------------------------------------------------------------------
async def _validation_problem(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own checks (missing fields, wrong types) answered in one readable line."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
    return answer_problem(request.scope, 422, "; ".join(parts) or "invalid request")


async def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    """Every HTTP error as ``{"detail": ...}``; a 405 lists every method the path takes."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_methods_of(request))
    return answer_problem(request.scope, exc.status_code, str(exc.detail), headers)


def _methods_of(request: Request) -> list[str]:
    """Every method some route takes at this path (the router names only the first route's)."""
    methods = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        for route in request.app.routes:
            match, _ = route.matches({**request.scope, "method": method})
            if isinstance(route, Mount) and match is not Match.NONE:
                methods |= {"GET"}  # static files
            elif match is Match.FULL:
                methods.add(method)
    if "GET" in methods:
        methods.add("HEAD")  # see HeadAsGet
    return sorted(methods)

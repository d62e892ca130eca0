"""The impasto web app: a REST API, a progress stream and a single page (``impasto serve``).

Importing this package costs nothing: FastAPI and uvicorn (the ``web`` extra) are
imported only when the server is built, so the command line works without them; Ray
(the ``ray`` extra) only when ``--ray`` asks for it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ImpastoError
from .config import (
    LOOPBACK_HOSTS,
    RayOptions,
    ServerConfig,
    config_from_args,
    ray_options_from_args,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .job import Engine

MISSING_EXTRA = "the web app needs the 'web' extra: pip install 'impasto[web]'"
# Seconds uvicorn waits for open connections at shut-down before it closes them; progress
# streams end by themselves sooner (see routes.STREAM_SHUTDOWN_SECONDS).
GRACEFUL_SECONDS = 5.0

__all__ = ["MISSING_EXTRA", "ServerConfig", "create_app", "serve", "serve_from_args"]


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401  (the API docs' files)
        import uvicorn  # noqa: F401

        try:  # FastAPI parses uploads with python-multipart (import name since 0.0.13)
            import python_multipart  # noqa: F401
        except ImportError:
            import multipart  # noqa: F401
    except ImportError:
        raise ImpastoError(MISSING_EXTRA) from None


def create_app(
    config: ServerConfig | None = None, *, engine: Engine | None = None, workers: int = 1
) -> FastAPI:
    """The FastAPI application (see :func:`impasto.web.app.create_app`)."""
    _require_extra()
    from .app import create_app as build

    return build(config, engine=engine, workers=workers)


def serve(config: ServerConfig, *, engine: Engine | None = None, workers: int = 1) -> None:
    """Run the server until Ctrl-C or SIGTERM (which stops the running jobs, to resume)."""
    _require_extra()
    import uvicorn

    app = create_app(config, engine=engine, workers=workers)
    workspace: Path = app.state.workspace
    _log_to_stderr(workspace)
    # Starlette spools large uploads to temporary files: keep even those in our folder.
    spool = workspace / "spool"
    spool.mkdir(exist_ok=True)
    tempfile.tempdir = str(spool)
    if config.host not in LOOPBACK_HOSTS:
        print(
            f"impasto: warning: listening on {config.host}: anyone who can reach this machine "
            "can use the server (it has no authentication)",
            file=sys.stderr,
        )
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(f"impasto: serving on http://{host}:{config.port}/ (Ctrl-C stops)", file=sys.stderr)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    _server_class()(settings).run()


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, but a shut-down signal first stops the running job at its iteration.

        uvicorn waits for open connections, and a page watching a job keeps its event
        stream open for as long as the job runs: the streams end once the job is saved.
        A second signal stops waiting for anything.
        """

        def handle_exit(self, sig: int, frame: Any) -> None:
            jobs = self.config.app.state.jobs
            if self.should_exit:
                self.force_exit = True
                jobs.stop_now()
            else:
                jobs.stop_soon()
            super().handle_exit(sig, frame)

    return Server


def _log_to_stderr(workspace: Path) -> None:
    """One line per request problem or warning on stderr, without the server's paths."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("impasto: %(message)s"))
    log = logging.getLogger("impasto.web")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # python-multipart logs the details of malformed bodies line by line; the 400 answer
    # (and its line in this log) says what matters.
    for name in ("python_multipart", "multipart"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = str(message).replace(str(workspace), "(workdir)")
        log.warning("warning: %s (%s)", text, category.__name__)

    warnings.showwarning = show


def serve_from_args(args: argparse.Namespace) -> int:
    """``impasto serve``: options come from :class:`ServerConfig` (and :class:`RayOptions`)."""
    _require_extra()
    config = config_from_args(args)
    ray = ray_options_from_args(args)
    if ray is None:
        serve(config)
    else:
        serve_on_ray(config, ray)
    return 0


def serve_on_ray(config: ServerConfig, options: RayOptions) -> None:
    """``impasto serve --ray``: the jobs run as Ray tasks, ``options.jobs`` at once.

    A shut-down signal stops the running tasks as it stops an in-process job; then the
    server leaves the cluster (a local instance it started stops with it) and exits.
    """
    from ..distributed.jobs import ray_engine

    engine = ray_engine(
        options.address,
        task_cpus=options.task_cpus,
        task_gpus=options.task_gpus,
        preview_seconds=config.preview_seconds,
    )
    # uvicorn sends SIGTERM on to the handler it found once it has shut down: Ray's, for
    # a local instance, which would wait for the node to drain. Leave cleanly instead.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        workers = options.jobs or engine.slots
        print(
            f"impasto: jobs run as Ray tasks on {engine.address}, {workers} at once",
            file=sys.stderr,
        )
        serve(config, engine=engine, workers=workers)
    finally:
        engine.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(sig: int, frame: Any) -> None:
    raise SystemExit(128 + sig)

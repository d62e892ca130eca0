"""The impasto web app: a REST API, a progress stream and a single page (``impasto serve``).

Importing this package costs nothing: FastAPI and uvicorn (the ``web`` extra) are
imported only when the server is built, so the command line works without them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import TYPE_CHECKING

from ..errors import ImpastoError
from .config import LOOPBACK_HOSTS, ServerConfig, config_from_args

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .job import Engine

MISSING_EXTRA = "the web app needs the 'web' extra: pip install 'impasto[web]'"

__all__ = ["MISSING_EXTRA", "ServerConfig", "create_app", "serve", "serve_from_args"]


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        try:  # FastAPI parses uploads with python-multipart (import name since 0.0.13)
            import python_multipart  # noqa: F401
        except ImportError:
            import multipart  # noqa: F401
    except ImportError:
        raise ImpastoError(MISSING_EXTRA) from None


def create_app(config: ServerConfig | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application (see :func:`impasto.web.app.create_app`)."""
    _require_extra()
    from .app import create_app as build

    return build(config, engine=engine)


def serve(config: ServerConfig) -> None:
    """Run the server until Ctrl-C."""
    _require_extra()
    import uvicorn

    app = create_app(config)
    # Starlette spools large uploads to temporary files: keep even those in our folder.
    spool = app.state.workspace / "spool"
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
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


def serve_from_args(args: argparse.Namespace) -> int:
    """``impasto serve``: options come from :class:`ServerConfig`."""
    _require_extra()
    serve(config_from_args(args))
    return 0

"""What every request passes through before it reaches the API.

``HeadAsGet`` answers HEAD wherever GET is answered. ``BodyLimit`` bounds uploads before
they are parsed. ``OriginGuard`` keeps other web
sites out: a page on any site can make the browser send a form to ``127.0.0.1``
(cross-site request forgery) or, by pointing its own domain at ``127.0.0.1``, even read
the answers (DNS rebinding); the server has no login, so it checks where requests come from.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Names a loopback server answers to besides loopback addresses; "testserver" is what
# Starlette's TestClient sends.
_LOCAL_NAMES = ("localhost", "testserver")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

log = logging.getLogger("impasto.web")


def answer_problem(
    scope: Any, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error answer, ``{"detail": ...}``, and one line about it in the server's log."""
    log.info("%s %s: %d %s", scope.get("method"), scope.get("path"), status, detail)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` before they are parsed or spooled.

    Content-Length is checked up front; a chunked body is counted as it arrives and the
    request fails with 413 as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request is larger than this server accepts ({self.max_bytes} bytes)"
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await answer_problem(scope, 413, message)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                # FastAPI re-raises an HTTPException from body parsing as it is.
                raise HTTPException(status_code=413, detail=message)
            return msg

        await self.app(scope, counted, send)


class OriginGuard:
    """Refuse state-changing requests from other sites, and unknown Host names on loopback."""

    def __init__(self, app: ASGIApp, loopback_only: bool):
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self._problem(scope)
            if problem:
                await answer_problem(scope, 403, problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.loopback_only and not _is_local(_hostname(host)):
            return f"this server answers to localhost only, not to {host!r}"
        # Browsers always send Origin with a cross-site POST; "null" (sandboxed frames, files)
        # is foreign too. Clients that are not browsers send none.
        origin = headers.get("origin")
        unsafe = scope.get("method") not in _SAFE_METHODS
        if unsafe and origin is not None and urlsplit(origin).netloc != host:
            return "requests from other web sites are not accepted"
        return None


def _hostname(host: str) -> str:
    """The name in a Host header, without the port (IPv6 addresses come in brackets)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_local(name: str) -> bool:
    if name.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a name, not an address
        return False


class HeadAsGet:
    """Answer HEAD as GET would, headers only (HTTP requires HEAD wherever GET works).

    The request goes on as a GET; the answer's body is cut off after its first part, and
    the app is then told the client left, so a progress stream does not go on unread.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not done:
                done = True
                # The server sends no body for HEAD whatever it is given; this ends the answer.
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def until_done() -> Message:
            if done:
                return {"type": "http.disconnect"}
            return await receive()

        await self.app({**scope, "method": "GET"}, until_done, headers_only)

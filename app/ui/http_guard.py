"""What the web server checks before Gradio sees a request (an ASGI middleware on every route).

- Host: the request must name the server by one of `Settings.accepted_host_names` (loopback names, the bound
  address, `RISE_ALLOWED_HOSTS`). Gradio itself answers any name, so a page on another site whose name was made to
  point at 127.0.0.1 (DNS rebinding) could otherwise drive a server that skips login on loopback.
- Origin: a request that changes something (any method but GET, HEAD, OPTIONS) and a websocket that carries an
  Origin header must come from a page of one of those names; a browser always sends one, so another site's page
  cannot post to the app.
- Gradio's own routes, outside the app's events and so outside its login: uploads need a signed-in admin, files
  (images, exports) a signed-in user, and the routes the app does not use (proxy, streaming, recording, editing,
  run history, monitoring) answer 404. The browser proves who it is with the cookie it got at sign-in
  (`app.services.browser_sessions`). Without login, on loopback, everyone is the local admin.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocketClose

from app.runtime import Runtime
from app.services.browser_sessions import BrowserSessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Access(enum.IntEnum):
    """Who may use a route, from the most open to the most closed."""

    anyone = 0
    signed_in = 1
    admin = 2
    nobody = 3


# Gradio's routes that need more than the app's own checks; the app's events (queue, call, run) check their user
# themselves. A path matching several patterns gets the most closed access.
ROUTE_ACCESS: tuple[tuple[re.Pattern[str], Access], ...] = (
    (re.compile(r"/gradio_api/upload(_progress)?/?$"), Access.admin),
    (re.compile(r"/gradio_api/file[=/]"), Access.signed_in),
    (
        re.compile(r"/gradio_api/(proxy=|stream/|process_recording|vibe|undo-vibe|run-history|runs/?$|dev/|mcp)"),
        Access.nobody,
    ),  # fmt: skip
    (re.compile(r"^/monitoring"), Access.nobody),
)


def route_access(path: str) -> Access:
    return max((access for pattern, access in ROUTE_ACCESS if pattern.search(path)), default=Access.anyone)


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port: `Example.org:7860` -> `example.org`, `[::1]:80` -> `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def origin_name(origin: str) -> str | None:
    """The host name of an Origin header; None for `null` or anything that is not a URL."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
    except ValueError:
        return None
    return parts.hostname if parts.scheme in ("http", "https") else None


class HttpGuard:
    """The middleware: `Middleware(HttpGuard, runtime=..., sessions=..., host_names=..., login_required=...)`."""

    def __init__(
        self,
        app: Any,
        *,
        runtime: Runtime,
        sessions: BrowserSessions,
        host_names: frozenset[str],
        login_required: bool,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.sessions = sessions
        self.host_names = host_names
        self.login_required = login_required

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(HTTPConnection(scope), scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008, reason=refusal[1])(scope, receive, send)
        else:
            await PlainTextResponse(refusal[1], status_code=refusal[0])(scope, receive, send)

    async def _refusal(self, connection: HTTPConnection, scope: dict[str, Any]) -> tuple[int, str] | None:
        """(HTTP status, message) when the request is refused, None when it may go on."""
        if host_name(connection.headers.get("host", "")) not in self.host_names:
            return 400, "This server does not answer to that host name; its admin can add it to RISE_ALLOWED_HOSTS."
        origin = connection.headers.get("origin")
        changes = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if origin is not None and changes and origin_name(origin) not in self.host_names:
            return 403, "Refused: the request came from a page of another site."
        access = route_access(scope.get("path", ""))
        if access is Access.nobody:
            return 404, "Not found."
        if access is Access.anyone or not self.login_required:
            return None
        token = connection.cookies.get(self.sessions.cookie_name)
        user = await run_in_threadpool(self.sessions.user, self.runtime, token)
        if user is None:
            return 401, "Sign in first."
        if access is Access.admin and not user.is_admin:
            return 403, "Only admins can upload files."
        return None

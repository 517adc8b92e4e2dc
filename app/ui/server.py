"""Serving the web app: `serve_web_app(runtime)` builds it and launches Gradio's server with the HTTP guard in
front of every route (`app.ui.http_guard`) and Gradio's own openings shut.

    serve_web_app(runtime)                      # RISE_HOST:RISE_PORT until interrupted
    serve_web_app(runtime, port=0, block=False) # tests: returns the running Blocks at once
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
from starlette.middleware import Middleware

from app.runtime import Runtime
from app.services.browser_sessions import BrowserSessions, cookie_name_for
from app.services.login_throttle import LoginThrottle
from app.ui.http_guard import HttpGuard
from app.ui.web_app import build_web_app, login_required


def serve_web_app(
    runtime: Runtime,
    *,
    require_login: bool | None = None,
    port: int | None = None,
    block: bool = True,
    throttle: LoginThrottle | None = None,
    on_sign_in: Callable[[int], None] | None = None,
) -> gr.Blocks:
    """Build the app and serve it on the runtime's host and port (or `port`) until interrupted; with
    `block=False`, return the running app at once (`.close()` stops it). `throttle`: the back-off for failed
    sign-ins (default: a new one). `on_sign_in`: told after each sign-in how many different users are signed in.

    Raises:
        LoginRequiredError: `require_login=False` while the configured host is reachable from other machines.
    """
    settings = runtime.settings
    port = settings.port if port is None else port
    login = login_required(settings, require_login)
    sessions = BrowserSessions(cookie_name_for(port), on_sign_in=on_sign_in)
    web_app = build_web_app(runtime, require_login=login, browser_sessions=sessions, throttle=throttle)
    guard = Middleware(
        HttpGuard,
        runtime=runtime,
        sessions=sessions,
        host_names=settings.accepted_host_names,
        login_required=login,
    )
    web_app.launch(
        server_name=settings.host,
        server_port=port,
        prevent_thread_lock=not block,
        # Only the messages handlers raise as gr.Error reach the page; any other exception shows as a bare "Error"
        # (its traceback goes to the server's log), so no SQL, path or remote answer inside one is shown.
        show_error=False,
        quiet=True,
        app_kwargs={"middleware": [guard]},
        max_file_size=settings.max_upload_mb * 1024 * 1024,
        # Said explicitly, so the environment cannot change them: Gradio opens a public link of its own in a notebook
        # or with GRADIO_SHARE=true (while the app believes it is on loopback, without login), and static-file workers
        # (GRADIO_NUM_WORKERS) or server-side rendering would serve files and uploads on ports the guard is not on.
        share=False,
        num_workers=0,
        ssr_mode=False,
        mcp_server=False,
        # Gradio's run history keeps every event's inputs and outputs, a sign-in's password among them, in the
        # browser's storage, and parses and rewrites that whole list on every event: tens of milliseconds of each
        # review key press, for a page nobody here uses.
        run_history=False,
    )
    return web_app

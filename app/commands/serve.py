"""`rise serve`: the review UI in the browser.

rise serve                              # http://127.0.0.1:7860, no login needed on loopback
rise serve --host 0.0.0.0 --port 8080   # reachable by the team; login required
"""

from __future__ import annotations

import dataclasses

import typer

from app.commands._common import cli, console, fail, migrated_runtime
from app.runtime import Runtime
from app.settings import Settings, SettingsError, load_settings


def launch_ui(runtime: Runtime, *, require_login: bool | None = None, block: bool = True) -> None:
    """Build the app and serve it on the runtime's host and port until interrupted (`block=False`: return at once)."""
    # Imported here: gradio takes a second or two to import, which other commands should not pay for.
    from app.ui.web_app import LoginRequiredError, build_web_app

    settings = runtime.settings
    try:
        web_app = build_web_app(runtime, require_login=require_login)
    except LoginRequiredError as error:
        raise fail(error) from None
    login_note = "login required" if require_login or not settings.is_loopback else "no login on loopback"
    console.print(f"Serving the review UI on http://{settings.host}:{settings.port} ({login_note}). Ctrl+C stops it.")
    web_app.launch(
        server_name=settings.host,
        server_port=settings.port,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=True,
    )


def _settings(host: str | None, port: int | None) -> Settings:
    settings = load_settings()
    try:
        return dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    except SettingsError as error:
        raise fail(error) from None


@cli.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on; default RISE_HOST or 127.0.0.1."),
    port: int | None = typer.Option(None, help="Port; default RISE_PORT or 7860."),
    login: bool | None = typer.Option(
        None, "--login/--no-login", help="Ask for a username and password; default: only off on 127.0.0.1."
    ),
) -> None:
    """Open the review UI: review, dashboard, projects and (admins) users and runs."""
    with migrated_runtime(_settings(host, port)) as runtime:
        launch_ui(runtime, require_login=login)

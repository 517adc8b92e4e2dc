"""`rise serve`: the review UI in the browser.

rise serve                              # http://127.0.0.1:7860, no login needed on loopback
rise serve --host 0.0.0.0 --port 8080   # reachable by the team; login required
RISE_ALLOWED_HOSTS=annotate.example.org rise serve --host 0.0.0.0   # the names the team's browsers use
"""

from __future__ import annotations

import dataclasses

import typer

from app.commands._common import cli, console, fail, migrated_runtime
from app.runtime import Runtime
from app.settings import WILDCARD_HOSTS, Settings, SettingsError, load_settings

# Reviewers at once that SQLite serves within the review targets on two cores (bench/results/review_browser.md); a
# larger team gets told, on the server's console, that PostgreSQL is its backend.
SQLITE_TEAM_SIZE = 4


class SqliteTeamNote:
    """Says on the console, once for each new team size above `SQLITE_TEAM_SIZE`, that PostgreSQL is the backend for
    that many reviewers signed in at once."""

    def __init__(self) -> None:
        self.told = SQLITE_TEAM_SIZE

    def __call__(self, signed_in: int) -> None:
        if signed_in <= self.told:
            return
        self.told = signed_in
        console.print(
            f"{signed_in} reviewers are signed in. SQLite answers up to about {SQLITE_TEAM_SIZE} at once without "
            f"making them wait; for {signed_in}, PostgreSQL is the backend: "
            "RISE_DATABASE_URL=postgresql+psycopg://user:password@host/database (see SECURITY.md)."
        )


def launch_ui(runtime: Runtime, *, require_login: bool | None = None, block: bool = True) -> None:
    """Build the app and serve it on the runtime's host and port until interrupted (`block=False`: return at once)."""
    # Imported here: gradio takes a second or two to import, which other commands should not pay for.
    from app.ui.server import serve_web_app
    from app.ui.web_app import LoginRequiredError, login_required

    settings = runtime.settings
    try:
        login = login_required(settings, require_login)
    except LoginRequiredError as error:
        raise fail(error) from None
    login_note = "login required" if login else "no login on loopback"
    console.print(f"Serving the review UI on http://{settings.host}:{settings.port} ({login_note}). Ctrl+C stops it.")
    if settings.host in WILDCARD_HOSTS and not settings.allowed_hosts:
        console.print(
            "Only requests to this machine's loopback names are answered: set RISE_ALLOWED_HOSTS to the names "
            "clients use, e.g. RISE_ALLOWED_HOSTS=annotate.example.org"
        )
    on_sign_in = SqliteTeamNote() if runtime.engine.dialect.name == "sqlite" else None
    serve_web_app(runtime, require_login=login, block=block, on_sign_in=on_sign_in)


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

"""`rise init`: create the database or upgrade it to the newest schema."""

from __future__ import annotations

from app.commands._common import cli, console
from app.runtime import open_runtime
from db.migrate import head_revision


@cli.command()
def init() -> None:
    """Create the database (or upgrade it to the newest schema) and the media folder."""
    runtime = open_runtime(upgrade=True)
    url = runtime.engine.url.render_as_string(hide_password=True)
    console.print(f"Database ready at schema {head_revision()}: {url}")
    console.print(f"Media folder: {runtime.settings.media_dir}")
    runtime.close()

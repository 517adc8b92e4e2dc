"""`rise`: the command line.

    rise init                                   # create or upgrade the database
    rise project create demo --task classification --labels circle,square
    rise import --project demo images/ more/*.png
    rise demo                                   # demo project from the bundled images, then the UI

Sub-commands live in `app/commands/`, one module per concern; each registers itself on `cli` when imported below.
"""

from __future__ import annotations

import typer
from rich.console import Console

from app.runtime import open_runtime
from db.migrate import head_revision

cli = typer.Typer(
    name="rise",
    help="RISE Annotate: a vision-language model proposes annotations with its reasoning; you review them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()


@cli.callback()
def _root() -> None:
    """RISE Annotate: a vision-language model proposes annotations with its reasoning; you review them."""
    # An explicit callback keeps `rise init` a sub-command even if no other command module is registered.


@cli.command()
def init() -> None:
    """Create the database (or upgrade it to the newest schema) and the media folder."""
    runtime = open_runtime(upgrade=True)
    url = runtime.engine.url.render_as_string(hide_password=True)
    console.print(f"Database ready at schema {head_revision()}: {url}")
    console.print(f"Media folder: {runtime.settings.media_dir}")
    runtime.close()


def main() -> None:
    # Imported here, not at the top, so that each command module can `from app.cli import cli` to register itself.
    from app import commands  # noqa: F401

    cli()

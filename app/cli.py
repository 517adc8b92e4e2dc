"""`rise`: the command line.

    rise init                                   # create or upgrade the database
    rise project create demo --task classification --labels circle,square
    rise import --project demo images/ more/*.png
    rise demo                                   # demo project from the bundled images, then the UI

Sub-commands live in `app/commands/`, one module per concern; each registers itself on `cli` when imported
below.
"""

from __future__ import annotations

from app import commands  # noqa: F401  (registers every sub-command on `cli`)
from app.commands._common import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli()

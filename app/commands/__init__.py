"""CLI sub-commands; importing this package registers all of them on `app.cli.cli` (one import per module)."""

from app.commands import projects  # noqa: F401

"""What every `rise` sub-command does the same way: report a user error, open a runtime on an initialised database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.text import Text

from app.cli import console
from app.runtime import Runtime, open_runtime
from app.settings import Settings
from db.migrate import current_revision, head_revision


def fail(message: str) -> typer.Exit:
    """Print `message` as one red error line; raise the returned exit (code 1) to end the command."""
    console.print(Text(f"Error: {message}", style="bold red"))
    return typer.Exit(code=1)


@contextmanager
def migrated_runtime(
    settings: Settings | None = None, *, user_errors: tuple[type[Exception], ...] = ()
) -> Iterator[Runtime]:
    """The configured runtime, refusing a database that `rise init` has not created or upgraded; closed on exit.

    `user_errors` raised inside the block (the services' errors whose message says the fix) become one red line and
    exit code 1.
    """
    runtime = open_runtime(settings)
    try:
        revision = current_revision(runtime.engine)
        if revision != head_revision():
            state = "has no schema yet" if revision is None else f"is at schema {revision}, not {head_revision()}"
            raise fail(f"The database {state}. Run `rise init` first.")
        yield runtime
    except user_errors as error:
        raise fail(str(error)) from None
    finally:
        runtime.close()

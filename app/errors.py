"""The base of every error the app raises on purpose.

Each error class of `app` derives from `AppError` and keeps the built-in base it had (`ValueError` for a request the
app refuses, `RuntimeError` for a failure outside it), so `except AppError` catches them all and `except ValueError`
still catches what it did. The database layer and the ML core have their own bases, `db.errors.DbError` and
`rise.errors.RiseError`: neither may import `app`, nor each other.
"""

from __future__ import annotations


class AppError(Exception):
    """An error the app raises on purpose; its message says what happened and, where it can, what to do, in words any
    caller can show. `setting`, when one input is at fault, names it, so that a caller can add how its own users give
    that input (the command line: `app.commands._common.with_cli_hint`)."""

    def __init__(self, *args: object, setting: str | None = None) -> None:
        super().__init__(*args)
        self.setting = setting

"""The base of every error the app raises on purpose.

Each error class of `app` derives from `AppError` and keeps the built-in base it had (`ValueError` for a request the
app refuses, `RuntimeError` for a failure outside it), so `except AppError` catches them all and `except ValueError`
still catches what it did. The database layer and the ML core have their own bases, `db.errors.DbError` and
`rise.errors.RiseError`: neither may import `app`, nor each other.
"""

from __future__ import annotations


class AppError(Exception):
    """An error the app raises on purpose; its message says what happened and, where it can, what to do."""

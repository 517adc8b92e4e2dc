"""The base of every error the database layer raises on purpose (SQLAlchemy's own errors are not among them)."""

from __future__ import annotations


class DbError(Exception):
    """A request the database layer refuses; its message says why, in words any caller can show."""

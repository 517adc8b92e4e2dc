"""The base of every error class of the ML core. Many of its checks raise a plain `ValueError` whose message names the
fix; a class of its own is for an error a caller tells apart."""

from __future__ import annotations


class RiseError(Exception):
    """An error the ML core raises on purpose; its message says what happened and what to do."""

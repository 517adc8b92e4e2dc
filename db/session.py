"""Engine and session factory.

SQLite gets WAL (readers never block the writer), foreign keys (off by default in SQLite) and a busy timeout so
concurrent reviewers wait for the write lock instead of failing. PostgreSQL gets the same wait as its lock_timeout.
Past that wait a write fails, and `is_database_busy` tells that failure from others, so a caller can say "try again"
instead of showing SQL.

A transaction that writes can take SQLite's write lock at its start (`begin_immediate`), so that it waits its turn
once, up front, and then runs without meeting another writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

# SQLite errors that mean "another connection holds the lock" (the messages of SQLITE_BUSY and SQLITE_LOCKED).
_SQLITE_BUSY_MESSAGES = ("database is locked", "database is busy", "database table is locked")
# PostgreSQL SQLSTATEs of the same: lock_timeout, deadlock detected, serialization failure, statement cancelled.
_POSTGRES_BUSY_CODES = frozenset({"55P03", "40P01", "40001", "57014"})
DEFAULT_LOCK_TIMEOUT_S = 10.0
# The key of `Session.info` under which a session carries the reader of answer labels (`make_session_factory`).
ANSWER_LABELS_INFO = "answer_labels"


def is_database_busy(error: BaseException) -> bool:
    """Whether a database error means that the database was busy (locked by another writer) past its timeout."""
    if not isinstance(error, DBAPIError):
        return False
    original = error.orig
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if code in _POSTGRES_BUSY_CODES:
        return True
    return any(message in str(original).lower() for message in _SQLITE_BUSY_MESSAGES)


def _sqlite_configurator(lock_timeout_s: float):
    def configure(dbapi_connection, _connection_record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(lock_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return configure


def begin_immediate(session: Session) -> None:
    """On SQLite, take the write lock now, waiting up to the busy timeout for it: call it first in a transaction that
    will write. The driver would only begin the transaction at its first write, and reads before that, in the same
    transaction, could not then wait for the lock if another writer got in between. Elsewhere it does nothing."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def make_engine(url: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, **kwargs) -> Engine:
    """Create an engine for `url`; for a SQLite file, create its folder first. Writes wait up to `lock_timeout_s`
    for another one's lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Gradio handlers run in worker threads; one SQLite connection may be used by another thread than the one
        # that opened it, which is safe because each session is used by one thread at a time.
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_configurator(lock_timeout_s))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        options = kwargs.setdefault("connect_args", {}).get("options", "")
        kwargs["connect_args"]["options"] = f"{options} -c lock_timeout={round(lock_timeout_s * 1000)}".strip()
    return create_engine(url, **kwargs)


def make_session_factory(
    engine: Engine, *, answer_labels: Callable[[Any], Iterable[str]] | None = None
) -> sessionmaker[Session]:
    """Sessions on `engine`.

    Args:
        answer_labels: the labels a stored answer names (the app passes `rise.answers.answer_labels`). The review
            queue files each prediction under them; this layer keeps answers opaque, so its sessions carry the
            reader in `Session.info` (`ANSWER_LABELS_INFO`). Sessions without it cannot fill the review queue.
    """
    info = {} if answer_labels is None else {ANSWER_LABELS_INFO: answer_labels}
    # expire_on_commit=False: services return ORM objects after their transaction closes (e.g. to a UI handler).
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)

"""Engine and session factory.

SQLite gets WAL (readers never block the writer), foreign keys (off by default in SQLite) and a busy timeout so
concurrent reviewers wait for the write lock instead of failing. PostgreSQL gets the same wait as its lock_timeout.
Past that wait a write fails, and `is_database_busy` tells that failure from others, so a caller can say "try again"
instead of showing SQL.

A transaction that writes can take the write lock at its start (`write_transaction`), so that it waits its turn once,
up front, and then runs without meeting another writer. On SQLite the writers of one process take turns on a lock of
their own first: SQLite's busy handler makes a waiting writer sleep and retry, up to 100 ms a sleep, so under load a
writer would often still be asleep long after the lock was free; a process lock wakes the next one at once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import DbError

# SQLite errors that mean "another connection holds the lock" (the messages of SQLITE_BUSY and SQLITE_LOCKED).
_SQLITE_BUSY_MESSAGES = ("database is locked", "database is busy", "database table is locked")
# PostgreSQL SQLSTATEs of the same: lock_timeout, deadlock detected, serialization failure, statement cancelled.
_POSTGRES_BUSY_CODES = frozenset({"55P03", "40P01", "40001", "57014"})
DEFAULT_LOCK_TIMEOUT_S = 10.0
# The key of `Session.info` under which a session carries the reader of answer labels (`make_session_factory`).
ANSWER_LABELS_INFO = "answer_labels"
# Each SQLite engine's lock for the writers of this process, and how long a writer waits for it (`write_transaction`).
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, tuple[threading.Lock, float]] = weakref.WeakKeyDictionary()


class WriteLockTimeout(DbError):
    """Another writer of this process held the database past the lock timeout."""


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


@contextmanager
def write_transaction(sessions: sessionmaker[Session], engine: Engine) -> Iterator[Session]:
    """A transaction of `sessions` (bound to `engine`) that will write, holding the write lock from its start; it
    commits when the block ends. On SQLite it first waits its turn among this process's writers, then takes the
    file's lock with `BEGIN IMMEDIATE` (reads before the first write could not wait for it otherwise). Elsewhere it is
    a plain transaction.

    Raises:
        WriteLockTimeout: this process's other writers held the lock past the lock timeout (a lock held by another
            process past it raises the driver's busy error, see `is_database_busy`).
    """
    writers = _SQLITE_WRITERS.get(engine)
    if writers is None:
        with sessions.begin() as session:
            yield session
        return
    lock, timeout_s = writers
    if not lock.acquire(timeout=timeout_s):
        raise WriteLockTimeout(f"The database stayed busy for {timeout_s:g} s.")
    try:
        with sessions.begin() as session:
            session.execute(text("BEGIN IMMEDIATE"))
            yield session
    finally:
        lock.release()


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
        _SQLITE_WRITERS[engine] = (threading.Lock(), lock_timeout_s)
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

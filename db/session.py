"""Engine and session factory.

SQLite gets WAL (readers never block the writer), foreign keys (off by default in SQLite) and a busy timeout so
concurrent reviewers wait for the write lock instead of failing. PostgreSQL is used as configured.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _configure_sqlite(dbapi_connection, _connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine for `url`; for a SQLite file, create its folder first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Gradio handlers run in worker threads; one SQLite connection may be used by another thread than the one
        # that opened it, which is safe because each session is used by one thread at a time.
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: services return ORM objects after their transaction closes (e.g. to a UI handler).
    return sessionmaker(bind=engine, expire_on_commit=False)

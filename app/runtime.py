"""The objects every entry point needs: settings, the database engine and the session factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings, load_settings
from db import migrate
from db.session import make_engine, make_session_factory
from rise.answers import answer_labels


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, upgrade: bool = False) -> Runtime:
    """Connect to the configured database; with `upgrade`, first migrate it to the newest schema."""
    settings = settings or load_settings()
    if upgrade:
        migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url, lock_timeout_s=settings.db_lock_timeout_s)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    sessions = make_session_factory(engine, answer_labels=answer_labels)
    return Runtime(settings=settings, engine=engine, sessions=sessions)

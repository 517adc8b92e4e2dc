"""Annotation runs started from the UI: what ran, for whom, how far it got and how it ended.

Kept in memory by the server process (a run is a long request of one browser tab, so the process is the natural
owner); predictions themselves are in the database the moment each batch finishes, so a restart loses only this
list, never work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class RunRecord:
    number: int
    project: str
    model: str
    started_by: str
    started_at: datetime
    status: str = "running"  # running / finished / failed
    done: int = 0
    total: int | None = None
    stored: int = 0
    parsed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    message: str = ""


@dataclass
class RunLog:
    runs: list[RunRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, *, project: str, model: str, started_by: str) -> RunRecord:
        with self._lock:
            record = RunRecord(
                number=len(self.runs) + 1,
                project=project,
                model=model,
                started_by=started_by,
                started_at=datetime.now().replace(microsecond=0),
            )
            self.runs.append(record)
            return record

    def rows(self) -> list[list[object]]:
        """Newest first, for the Runs table."""
        with self._lock:
            records = list(reversed(self.runs))
        return [
            [
                r.number,
                r.project,
                r.model,
                r.started_by,
                r.started_at.isoformat(sep=" "),
                r.status,
                f"{r.done}/{r.total if r.total is not None else '?'}",
                r.stored,
                r.parsed,
                r.failed,
                r.skipped,
                round(r.seconds, 1),
                r.message,
            ]
            for r in records
        ]


RUN_HEADERS = [
    "#",
    "project",
    "model",
    "by",
    "started",
    "status",
    "progress",
    "stored",
    "readable",
    "unreadable",
    "images skipped",
    "seconds",
    "message",
]

"""Keeping a claimed job: heartbeats that renew the lease and carry progress, and what ends a job early.

A job's code calls `keeper.beat(...)` often (every poll); it writes to the database only every `interval` seconds,
or at once with `force=True`, and raises when the job must stop:

- `CancelRequested`: an admin asked to cancel; the caller stops its work and the job ends as cancelled;
- `LeaseLost`: the worker no longer owns the job (its lease expired and the job was recovered); the caller stops
  and writes nothing more about the job;
- `WorkerStopping`: the worker itself is shutting down (SIGTERM / Ctrl-C); the job goes back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.errors import AppError
from app.runtime import Runtime
from db.crud import jobs as crud

log = logging.getLogger("rise.worker")


class JobInterrupted(AppError):
    """The job must stop before it finishes."""


class CancelRequested(JobInterrupted):
    pass


class LeaseLost(JobInterrupted):
    pass


class WorkerStopping(JobInterrupted):
    pass


class JobFailed(AppError):
    """The job ran and failed; the message is the job's error for the admin."""


class LeaseKeeper:
    def __init__(
        self,
        runtime: Runtime,
        *,
        job_id: int,
        worker_id: str,
        lease_seconds: float,
        interval: float,
        stop: threading.Event | None = None,
    ):
        self.runtime = runtime
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = interval
        self.stop = stop or threading.Event()
        self._last = 0.0
        self._pending: dict[str, Any] = {}

    def beat(self, *, force: bool = False, **progress: Any) -> None:
        """Queue `progress` fields for the row; renew the lease and write them if due. Raises `JobInterrupted`."""
        self._pending.update(progress)
        if self.stop.is_set():
            raise WorkerStopping("the worker is stopping")
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        try:
            with self.runtime.sessions.begin() as session:
                result = crud.heartbeat(
                    session=session, job_id=self.job_id, worker_id=self.worker_id, lease=self.lease, **self._pending
                )
        except SQLAlchemyError as error:
            # A busy or briefly unreachable database: keep working and try again at the next beat. If it stays
            # away past the lease, the job is recovered elsewhere and the next beat that gets through says so.
            log.warning("job #%s: heartbeat failed (%s); retrying", self.job_id, error)
            return
        self._last = now
        self._pending = {}
        if not result.owned:
            raise LeaseLost(f"worker {self.worker_id} no longer holds job #{self.job_id}")
        if result.cancel_requested:
            raise CancelRequested("cancelled by an admin")

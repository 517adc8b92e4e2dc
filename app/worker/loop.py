"""`rise worker`: claim queued jobs one at a time and run them, recovering jobs whose worker died.

Between jobs the worker (1) hands jobs with an expired lease back to the queue, or fails them after their last
attempt, (2) queues the retraining that projects' periodic policies ask for, and (3) claims the oldest queued job.
Any number of workers can share a PostgreSQL database; on SQLite run one per database file.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from app.runtime import Runtime
from app.services.jobs import DEFAULT_MAX_ATTEMPTS, JobView, job_dir, job_view
from app.services.retrain_policy import queue_due_retraining
from app.worker.annotate_job import run_annotate_job
from app.worker.context import JobContext
from app.worker.lease import CancelRequested, JobFailed, LeaseKeeper, LeaseLost, WorkerStopping
from db.crud import jobs as crud
from db.models import JobKind, JobStatus, Project

log = logging.getLogger("rise.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerConfig:
    """How a worker behaves. Times are in seconds.

    lease_seconds: how long a claimed job stays this worker's without a heartbeat; a worker that dies loses its
        job this long after its last heartbeat.
    heartbeat_seconds: how often the lease is renewed at the least (default: a quarter of the lease).
    progress_seconds: how often a running job's progress is written, which also renews the lease and picks up a
        cancel request; so a cancel takes effect within about this long.
    idle_seconds: how long to wait before looking for work again when the queue is empty.
    max_attempts: attempts a job gets when its config does not say (a lost worker uses one up).
    grace_seconds: between SIGTERM and SIGKILL when a training process is stopped.
    check_policies: queue the retraining that projects' periodic policies ask for.
    """

    worker_id: str = field(default_factory=default_worker_id)
    lease_seconds: float = 60.0
    heartbeat_seconds: float | None = None
    progress_seconds: float = 1.0
    idle_seconds: float = 5.0
    poll_seconds: float = 0.25
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    grace_seconds: float = 10.0
    check_policies: bool = True
    kinds: tuple[JobKind, ...] = (JobKind.train, JobKind.annotate)

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, e.g. 60 (got {self.lease_seconds})")
        if self.heartbeat_seconds is None:
            self.heartbeat_seconds = self.lease_seconds / 4
        if not 0 < self.heartbeat_seconds < self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be positive and shorter than lease_seconds "
                f"({self.lease_seconds}), or the lease expires between heartbeats; e.g. a quarter of it."
            )


RUNNERS: dict[JobKind, Callable[[JobContext], str]] = {
    JobKind.annotate: run_annotate_job,
}


def _runner(kind: JobKind) -> Callable[[JobContext], str]:
    if kind is JobKind.train:
        # Imported on first use: it pulls in the training pipeline's modules (datasets), which an annotation-only
        # worker never needs.
        from app.worker.train_job import run_train_job

        return run_train_job
    return RUNNERS[kind]


class Worker:
    def __init__(self, runtime: Runtime, config: WorkerConfig | None = None, stop: threading.Event | None = None):
        self.runtime = runtime
        self.config = config or WorkerConfig()
        self.stop = stop or threading.Event()
        self._reported_skips: set[tuple[str, str]] = set()

    # Between jobs

    def recover(self) -> None:
        with self.runtime.sessions.begin() as session:
            recovered = crud.recover_expired_jobs(session=session, max_attempts=self.config.max_attempts)
        for job in recovered:
            outcome = "queued again" if job.requeued else "failed (no attempts left)"
            log.warning("job #%s: worker %s lost its lease; %s", job.job_id, job.worker_id, outcome)

    def queue_policies(self) -> None:
        result = queue_due_retraining(self.runtime)
        for job in result.queued:
            log.info("job #%s queued for %s by its retraining policy (%s)", job.id, job.project, job.config["reason"])
        for project, why in result.skipped:
            if (project, why) not in self._reported_skips:  # once, not every few seconds
                self._reported_skips.add((project, why))
                log.warning("retraining policy of %s is due but cannot run: %s", project, why)

    def claim(self) -> JobView | None:
        with self.runtime.sessions.begin() as session:
            job = crud.claim_next_job(
                session=session,
                worker_id=self.config.worker_id,
                lease=timedelta(seconds=self.config.lease_seconds),
                kinds=self.config.kinds,
            )
            if job is None:
                return None
            project = session.get(Project, job.project_id)
            return job_view(job, project.name if project else "?")

    # One job

    def execute(self, job: JobView) -> str:
        """Run a claimed job to its end; returns the final status."""
        keeper = LeaseKeeper(
            self.runtime,
            job_id=job.id,
            worker_id=self.config.worker_id,
            lease_seconds=self.config.lease_seconds,
            interval=min(float(self.config.heartbeat_seconds or 0), self.config.progress_seconds),
            stop=self.stop,
        )
        ctx = JobContext(
            self.runtime,
            job,
            keeper,
            job_dir(self.runtime, job.id),
            poll_seconds=self.config.poll_seconds,
            grace_seconds=self.config.grace_seconds,
        )
        log.info("job #%s (%s, %s): attempt %s", job.id, job.kind, job.project, job.attempts)
        try:
            message = _runner(JobKind(job.kind))(ctx)
        except CancelRequested:
            ctx.note("cancelled")
            return self._finish(ctx, JobStatus.cancelled, "Cancelled by an admin.")
        except LeaseLost as lost:
            ctx.note(f"{lost}; leaving the job to its new owner")
            log.warning("job #%s: %s", job.id, lost)
            return "lost"
        except WorkerStopping:
            ctx.note("the worker is stopping; the job goes back to the queue")
            with self.runtime.sessions.begin() as session:
                crud.release_job(
                    session=session, job_id=job.id, worker_id=self.config.worker_id, note="\n" + ctx.row_log()
                )
            return JobStatus.queued.value
        except JobFailed as failure:
            ctx.note(f"failed: {failure}")
            return self._finish(ctx, JobStatus.failed, str(failure))
        except Exception as error:
            ctx.note("failed with an unexpected error:\n" + traceback.format_exc())
            log.exception("job #%s failed", job.id)
            return self._finish(ctx, JobStatus.failed, f"{type(error).__name__}: {error}")
        log.info("job #%s: %s", job.id, message)
        return JobStatus.succeeded.value

    def _finish(self, ctx: JobContext, status: JobStatus, error: str) -> str:
        with self.runtime.sessions.begin() as session:
            owned = crud.finish_job(
                session=session, job_id=ctx.job.id, worker_id=self.config.worker_id, status=status, error=error,
                log=ctx.row_log(),
            )  # fmt: skip
        log.info("job #%s %s: %s", ctx.job.id, status.value if owned else "lost before it ended", error)
        return status.value if owned else "lost"

    # The loop

    def run_once(self) -> JobView | None:
        """Recover, apply policies, then claim and run at most one job; returns the job it ran."""
        self.recover()
        if self.config.check_policies:
            self.queue_policies()
        job = self.claim()
        if job is not None:
            self.execute(job)
        return job

    def run(self, *, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Work until stopped (or `max_jobs` ran, or the queue is empty with `exit_when_idle`); jobs run."""
        ran = 0
        while not self.stop.is_set():
            try:
                job = self.run_once()
            except SQLAlchemyError:
                # The database is unreachable or busy (another writer on SQLite): try again after a pause rather
                # than stop working; a job that was running keeps its lease logic and recovery.
                log.exception("worker %s: database error between jobs; retrying", self.config.worker_id)
                self.stop.wait(self.config.idle_seconds)
                continue
            if job is not None:
                ran += 1
                if max_jobs is not None and ran >= max_jobs:
                    break
                continue
            if exit_when_idle:
                break
            self.stop.wait(self.config.idle_seconds)
        return ran

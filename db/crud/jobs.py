"""Training jobs: queueing, claiming with a lease, heartbeats, progress, cancellation and recovery.

A job belongs to the worker named in `worker_id` only while its lease (`lease_expires_at`) runs; the worker renews
it with every heartbeat. Every write a worker makes is a conditional UPDATE on (id, worker_id, status='running'):
its row count says whether the worker still owns the job, so a worker whose lease expired and whose job was handed
to another worker can never overwrite the new owner's progress or finish the job twice.

Claiming takes the oldest queued job. On PostgreSQL it is `SELECT … FOR UPDATE SKIP LOCKED`, so several workers
claim different jobs without waiting on each other; elsewhere (SQLite, one worker per database file) it is a
conditional UPDATE on status='queued' whose row count says who won.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import DbError
from db.models import Annotation, Item, JobKind, JobStatus, Project, Review, Split, TrainingJob, utcnow

ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)
FINISHED_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
# Candidates tried per claim on backends without SKIP LOCKED; each failed try means another worker just won it.
_CLAIM_CANDIDATES = 5


class ActiveJobExistsError(DbError, ValueError):
    """The project already has a queued or running training job."""

    def __init__(self, job_id: int | None):
        self.job_id = job_id
        where = f" (job #{job_id})" if job_id is not None else ""
        super().__init__(
            f"This project already has a training job queued or running{where}; wait for it to finish or cancel it."
        )


def get_job(*, session: Session, job_id: int) -> TrainingJob | None:
    return session.get(TrainingJob, job_id)


def active_train_job(*, session: Session, project_id: int) -> TrainingJob | None:
    stmt = select(TrainingJob).where(
        TrainingJob.project_id == project_id,
        TrainingJob.kind == JobKind.train,
        TrainingJob.status.in_(ACTIVE_STATUSES),
    )
    return session.scalars(stmt.limit(1)).first()


def latest_job(*, session: Session, project_id: int, kind: JobKind = JobKind.train) -> TrainingJob | None:
    stmt = (
        select(TrainingJob)
        .where(TrainingJob.project_id == project_id, TrainingJob.kind == kind)
        .order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc())
    )
    return session.scalars(stmt.limit(1)).first()


def list_jobs(
    *, session: Session, project_id: int | None = None, kind: JobKind | None = None, limit: int = 50
) -> list[TrainingJob]:
    """Newest first; of one project and of one kind when given."""
    stmt = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit)
    if project_id is not None:
        stmt = stmt.where(TrainingJob.project_id == project_id)
    if kind is not None:
        stmt = stmt.where(TrainingJob.kind == kind)
    return list(session.scalars(stmt))


def create_job(
    *,
    session: Session,
    project_id: int,
    kind: JobKind,
    config: dict[str, Any],
    requested_by_id: int | None = None,
) -> TrainingJob:
    """Queue a job. A training job for a project that already has one queued or running raises
    `ActiveJobExistsError`: the check is the database's partial unique index, so it holds under any race."""
    job = TrainingJob(
        project_id=project_id,
        kind=kind,
        status=JobStatus.queued,
        config=dict(config),
        requested_by_id=requested_by_id,
        created_at=utcnow(),
    )
    # A savepoint, so a refused insert leaves the caller's transaction usable.
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = active_train_job(session=session, project_id=project_id) if kind is JobKind.train else None
        if kind is JobKind.train:
            raise ActiveJobExistsError(existing.id if existing else None) from None
        raise
    return job


def claim_next_job(
    *,
    session: Session,
    worker_id: str,
    lease: timedelta,
    kinds: Sequence[JobKind] = (JobKind.train, JobKind.annotate),
    now: datetime | None = None,
) -> TrainingJob | None:
    """Take the oldest queued job of one of `kinds` for `worker_id`: status running, a lease of `lease`, one more
    attempt. Returns `None` when no job is waiting (or other workers won every candidate)."""
    now = now or utcnow()
    waiting = (
        select(TrainingJob)
        .where(TrainingJob.status == JobStatus.queued, TrainingJob.kind.in_(list(kinds)))
        .order_by(TrainingJob.created_at, TrainingJob.id)
    )
    claim_values = {
        "status": JobStatus.running,
        "worker_id": worker_id,
        "heartbeat_at": now,
        "lease_expires_at": now + lease,
        "attempts": TrainingJob.attempts + 1,
        "started_at": func.coalesce(TrainingJob.started_at, now),
        "error": None,
    }
    if session.get_bind().dialect.name == "postgresql":
        job = session.scalars(waiting.limit(1).with_for_update(skip_locked=True)).first()
        if job is None:
            return None
        session.execute(update(TrainingJob).where(TrainingJob.id == job.id).values(**claim_values))
        session.refresh(job)
        return job
    for candidate in list(session.scalars(waiting.with_only_columns(TrainingJob.id).limit(_CLAIM_CANDIDATES))):
        won = session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == candidate, TrainingJob.status == JobStatus.queued)
            .values(**claim_values)
        )
        if won.rowcount == 1:
            job = session.get(TrainingJob, candidate, populate_existing=True)
            return job
    return None


@dataclass(frozen=True)
class Heartbeat:
    owned: bool  # False: the lease was lost (the job was recovered for another worker, or finished elsewhere)
    cancel_requested: bool


def _owned_by(job_id: int, worker_id: str):
    return (
        (TrainingJob.id == job_id) & (TrainingJob.worker_id == worker_id) & (TrainingJob.status == JobStatus.running)
    )


def heartbeat(
    *,
    session: Session,
    job_id: int,
    worker_id: str,
    lease: timedelta,
    now: datetime | None = None,
    **progress: Any,
) -> Heartbeat:
    """Renew the lease and write progress fields (`stage`, `step`, `total_steps`, `progress`, `metrics`, `log`) in
    one conditional UPDATE; say whether the worker still owns the job and whether a cancel was asked for."""
    allowed = {"stage", "step", "total_steps", "progress", "metrics", "log"}
    unknown = set(progress) - allowed
    if unknown:
        raise ValueError(f"heartbeat() cannot write {sorted(unknown)}; it writes {sorted(allowed)}")
    now = now or utcnow()
    result = session.execute(
        update(TrainingJob)
        .where(_owned_by(job_id, worker_id))
        .values(heartbeat_at=now, lease_expires_at=now + lease, **progress)
    )
    if result.rowcount != 1:
        return Heartbeat(owned=False, cancel_requested=False)
    cancel = session.scalar(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id))
    return Heartbeat(owned=True, cancel_requested=bool(cancel))


def finish_job(
    *,
    session: Session,
    job_id: int,
    worker_id: str,
    status: JobStatus,
    error: str | None = None,
    now: datetime | None = None,
    **progress: Any,
) -> bool:
    """End the worker's job with `status` (succeeded / failed / cancelled); False when the worker no longer owns it,
    in which case nothing is written and the caller must not act on the job's outcome (e.g. register a version)."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"finish_job() needs a final status ({', '.join(FINISHED_STATUSES)}), got {status!r}")
    now = now or utcnow()
    result = session.execute(
        update(TrainingJob)
        .where(_owned_by(job_id, worker_id))
        .values(status=status, error=error, finished_at=now, lease_expires_at=None, **progress)
    )
    return result.rowcount == 1


def update_final_log(*, session: Session, job_id: int, worker_id: str, log: str) -> bool:
    """Replace the log of a job this worker finished (its last notes arrive after the finishing transaction)."""
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.worker_id == worker_id,
            TrainingJob.status.in_(FINISHED_STATUSES),
        )
        .values(log=log)
    )
    return result.rowcount == 1


def release_job(*, session: Session, job_id: int, worker_id: str, note: str) -> bool:
    """Put the worker's job back in the queue (the worker is shutting down): the attempt is not counted against it,
    since the job did nothing wrong. False when the worker no longer owns it."""
    result = session.execute(
        update(TrainingJob)
        .where(_owned_by(job_id, worker_id))
        .values(
            status=JobStatus.queued,
            worker_id=None,
            lease_expires_at=None,
            attempts=TrainingJob.attempts - 1,  # claiming added one; attempts >= 1 while running
            log=TrainingJob.log + note,
        )
    )
    return result.rowcount == 1


def request_cancel(*, session: Session, job_id: int, now: datetime | None = None) -> JobStatus | None:
    """Cancel a job: a queued one is cancelled at once; a running one gets `cancel_requested`, which its worker sees
    at its next heartbeat (it stops the training process, then marks the job cancelled). Returns the job's status
    after the call, or `None` for an unknown job."""
    now = now or utcnow()
    queued = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, cancel_requested=True, finished_at=now, error="cancelled before it ran")
    )
    if queued.rowcount == 0:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.running)
            .values(cancel_requested=True)
        )
    return session.scalar(select(TrainingJob.status).where(TrainingJob.id == job_id))


@dataclass(frozen=True)
class Recovered:
    job_id: int
    worker_id: str | None
    requeued: bool  # False: it had used up its attempts and failed


def recover_expired_jobs(*, session: Session, max_attempts: int, now: datetime | None = None) -> list[Recovered]:
    """Running jobs whose lease expired (their worker died or hung): queued again while `attempts < max_attempts`
    (a job's own `config["max_attempts"]` wins), otherwise failed with an error saying so. A note goes to the log.

    Each row changes by a conditional UPDATE on the expired lease, so a worker that renews its lease at the same
    moment keeps its job, and two workers recovering at once recover each job once."""
    now = now or utcnow()
    expired = session.scalars(
        select(TrainingJob).where(TrainingJob.status == JobStatus.running, TrainingJob.lease_expires_at < now)
    ).all()
    recovered = []
    for job in expired:
        # Read before the UPDATE: it synchronises the ORM object in this session.
        job_id, worker_id, expired_at = job.id, job.worker_id, job.lease_expires_at
        limit = int(job.config.get("max_attempts", max_attempts))
        requeue = job.attempts < limit and not job.cancel_requested
        note = (
            f"\n[worker] {now:%Y-%m-%d %H:%M:%S} UTC: worker {worker_id} stopped renewing its lease "
            f"(expired {expired_at:%H:%M:%S}) during attempt {job.attempts} of {limit}; "
        )
        if requeue:
            note += "queued again; the next attempt resumes from the last finished stage.\n"
            values: dict[str, Any] = {"status": JobStatus.queued, "worker_id": None, "lease_expires_at": None}
        else:
            reason = "cancelled" if job.cancel_requested else f"failed after {job.attempts} attempt(s)"
            note += f"{reason}.\n"
            values = {
                "status": JobStatus.cancelled if job.cancel_requested else JobStatus.failed,
                "lease_expires_at": None,
                "finished_at": now,
                "error": f"The worker running this job was lost (lease expired) on attempt {job.attempts} of "
                f"{limit}; no attempts left. See the log for what it was doing.",
            }
        result = session.execute(
            update(TrainingJob)
            .where(
                TrainingJob.id == job_id,
                TrainingJob.status == JobStatus.running,
                TrainingJob.lease_expires_at == expired_at,
            )
            .values(log=TrainingJob.log + note, **values)
        )
        if result.rowcount == 1:
            recovered.append(Recovered(job_id=job_id, worker_id=worker_id, requeued=requeue))
    session.expire_all()
    return recovered


# Periodic retraining policy


def update_retrain_policy(
    *, session: Session, project_id: int, every_verdicts: int | None, every_hours: float | None
) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise ValueError(f"No project with id {project_id}")
    project.retrain_every_verdicts = every_verdicts
    project.retrain_every_hours = every_hours
    session.flush()
    return project


def projects_with_retrain_policy(*, session: Session) -> list[Project]:
    stmt = select(Project).where(
        (Project.retrain_every_verdicts.is_not(None)) | (Project.retrain_every_hours.is_not(None))
    )
    return list(session.scalars(stmt.order_by(Project.id)))


def count_verdicts_since(*, session: Session, project_id: int, since: datetime | None) -> int:
    """Verdicts on the project's items recorded after `since` (all of them for `None`) and not undone."""
    stmt = (
        select(func.count())
        .select_from(Review)
        .join(Item, Item.id == Review.item_id)
        .where(Item.project_id == project_id, Review.undone_at.is_(None))
    )
    if since is not None:
        stmt = stmt.where(Review.created_at > since)
    return session.scalar(stmt) or 0


def count_trusted_items(*, session: Session, project_id: int) -> dict[Split, int]:
    """Items with a trusted annotation (imported, accepted or corrected), per split: what training and the held-out
    evaluation can use."""
    stmt = (
        select(Item.split, func.count(func.distinct(Item.id)))
        .join(Annotation, Annotation.item_id == Item.id)
        .where(Item.project_id == project_id)
        .group_by(Item.split)
    )
    counts = {split: 0 for split in Split}
    counts.update({split: count for split, count in session.execute(stmt)})
    return counts

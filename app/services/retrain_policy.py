"""Periodic retraining: each project may retrain after N new verdicts and/or every H hours.

"New" counts from the project's latest training job (whatever became of it), or from the start when it has none,
so a job that failed is not retried in a loop: the next one waits for N more verdicts or H more hours. A schedule
only fires when at least one verdict arrived since the last job, since retraining on unchanged data would only
repeat it. A policy job reuses the settings (base model, pipeline settings, launcher) of the project's latest
training job, so an admin sets a retraining up once from the UI or CLI and the policy repeats it.

`rise worker` checks every project's policy between jobs (`queue_due_retraining`); the database refuses a second
queued-or-running training job for a project, so several workers checking at once queue one job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import AppError
from app.runtime import Runtime
from app.services.jobs import ActiveJobExistsError, JobRequestError, JobView, request_retrain
from app.services.projects import project_with_id
from db.crud import jobs as crud
from db.models import Project, utcnow

# Settings of the latest training job that a policy job repeats (keyword arguments of `request_retrain`).
REUSED_SETTINGS = (
    "model",
    "overrides",
    "launcher",
    "accelerate_args",
    "max_attempts",
    "promotion_tolerance",
    "promotion_min_items",
    "reannotate",
)

__all__ = ["PolicyError", "PolicyStatus", "policy_status", "queue_due_retraining", "set_retrain_policy"]


class PolicyError(AppError, ValueError):
    pass


@dataclass(frozen=True)
class PolicyStatus:
    project_id: int
    project: str  # its name, to show
    every_verdicts: int | None
    every_hours: float | None
    new_verdicts: int
    since: datetime | None  # the latest training job's creation, or None
    active_job_id: int | None
    due: bool
    reason: str


def _status(session, project: Project, now: datetime) -> PolicyStatus:
    latest = crud.latest_job(session=session, project_id=project.id)
    since = latest.created_at if latest is not None else None
    new = crud.count_verdicts_since(session=session, project_id=project.id, since=since)
    active = crud.active_train_job(session=session, project_id=project.id)
    every_n, every_h = project.retrain_every_verdicts, project.retrain_every_hours
    due, reason = False, "no policy set"
    if active is not None:
        reason = f"job #{active.id} is {active.status.value}"
    elif every_n is not None and new >= every_n:
        due, reason = True, f"{new} new verdicts (policy: every {every_n})"
    elif every_h is not None:
        elapsed = now - (since or project.created_at)
        if elapsed >= timedelta(hours=every_h) and new > 0:
            due, reason = (
                True,
                f"{elapsed.total_seconds() / 3600:.1f} h since the last job (policy: every {every_h} h)",
            )
        else:
            reason = f"{new} new verdicts, {elapsed.total_seconds() / 3600:.1f} h since the last job"
    elif every_n is not None:
        reason = f"{new} of {every_n} new verdicts"
    return PolicyStatus(
        project.id, project.name, every_n, every_h, new, since, active.id if active else None, due, reason
    )


def policy_status(runtime: Runtime, project_id: int, *, now: datetime | None = None) -> PolicyStatus:
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, PolicyError)
        return _status(session, project, now or utcnow())


def set_retrain_policy(
    runtime: Runtime, project_id: int, *, every_verdicts: int | None, every_hours: float | None
) -> PolicyStatus:
    """Set (or with None, switch off) the project's retraining triggers."""
    if every_verdicts is not None and every_verdicts < 1:
        raise PolicyError(f"Retrain after at least 1 new verdict (got {every_verdicts}), or leave it empty for off.")
    if every_hours is not None and every_hours <= 0:
        raise PolicyError(f"Retrain every a positive number of hours (got {every_hours}), or leave it empty for off.")
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, PolicyError)
        crud.update_retrain_policy(
            session=session, project_id=project.id, every_verdicts=every_verdicts, every_hours=every_hours
        )
    return policy_status(runtime, project_id)


@dataclass(frozen=True)
class PolicyRun:
    queued: list[JobView]
    skipped: list[tuple[str, str]]  # (project, why a due retraining was not queued)


def queue_due_retraining(runtime: Runtime, *, now: datetime | None = None) -> PolicyRun:
    """Queue a retraining for every project whose policy is due; a project that cannot be trained yet (no held-out
    answers, no base model) is reported in `skipped`, not raised."""
    now = now or utcnow()
    with runtime.sessions.begin() as session:
        due = []
        for project in crud.projects_with_retrain_policy(session=session):
            status = _status(session, project, now)
            if status.due:
                latest = crud.latest_job(session=session, project_id=project.id)
                due.append((status, dict(latest.config) if latest is not None else {}))
    queued, skipped = [], []
    for status, previous in due:
        settings = {key: previous[key] for key in REUSED_SETTINGS if key in previous}
        if "requested_overrides" in previous:  # without the project's defaults, which request_retrain adds again
            settings["overrides"] = previous["requested_overrides"]
        try:
            queued.append(request_retrain(runtime, status.project_id, reason=f"policy: {status.reason}", **settings))
        except ActiveJobExistsError:
            continue  # another worker queued it a moment ago
        except JobRequestError as error:
            skipped.append((status.project, str(error)))
    return PolicyRun(queued=queued, skipped=skipped)

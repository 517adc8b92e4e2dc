"""Retraining and annotation requests: the job queue as the UI, the CLI and the periodic policy see it.

A request becomes a `TrainingJob` row holding everything the worker needs (base model, pipeline overrides,
launcher, attempts); `rise worker` claims it, runs it and writes its progress back (`app.worker`). Requests are
checked here, before anything is queued, so a job never fails late for a reason known at request time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.runtime import Runtime
from app.services.projects import ProjectError, project_model, project_with_id
from db.crud import jobs as crud
from db.crud import model_versions as version_crud
from db.crud.jobs import ActiveJobExistsError
from db.crud.projects import list_projects
from db.models import JobKind, JobStatus, Project, Split, TrainingJob

__all__ = [
    "LAUNCHERS",
    "ActiveJobExistsError",
    "JobRequestError",
    "JobView",
    "cancel_job",
    "get_job",
    "job_dir",
    "list_jobs",
    "request_annotation",
    "request_reannotation",
    "request_retrain",
]

# "auto": `accelerate launch` when accelerate is installed, falling back to `python -m` when its launcher fails
# before the pipeline starts; "accelerate" and "python" force one (see app.worker.train_job).
LAUNCHERS = ("auto", "accelerate", "python")
DEFAULT_MAX_ATTEMPTS = 3
# A new version scored on fewer held-out items than this is registered but not promoted automatically: at 20 items an
# accuracy's bootstrap 95 % interval is already about ±0.2 wide.
DEFAULT_PROMOTION_MIN_ITEMS = 20


class JobRequestError(AppError, ValueError):
    """A job cannot be queued as asked; the message says what to do."""


@dataclass(frozen=True)
class JobView:
    """A job as plain values, for the UI and the CLI."""

    id: int
    project_id: int
    project: str
    kind: str
    status: str
    stage: str
    step: int
    total_steps: int
    progress: float
    attempts: int
    worker_id: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: str | None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    log: str = ""

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.queued.value, JobStatus.running.value)


def job_view(job: TrainingJob, project_name: str) -> JobView:
    return JobView(
        id=job.id,
        project_id=job.project_id,
        project=project_name,
        kind=job.kind.value,
        status=job.status.value,
        stage=job.stage,
        step=job.step,
        total_steps=job.total_steps,
        progress=job.progress,
        attempts=job.attempts,
        worker_id=job.worker_id,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        error=job.error,
        config=dict(job.config),
        metrics=dict(job.metrics),
        log=job.log,
    )


def job_dir(runtime: Runtime, job_id: int) -> Path:
    """Where a job keeps its data snapshot, pipeline outputs and log; every attempt of the job uses the same one,
    so a retry resumes from the stages the previous attempt finished."""
    return runtime.settings.data_dir / "jobs" / f"job-{job_id:05d}"


def _base_model(session: Any, project: Project, model: str | None) -> str:
    """The model a retraining starts from: as asked, else the serving version's base, else the project's default."""
    if model:
        return model
    serving = version_crud.serving_version(session=session, project_id=project.id)
    if serving is not None:
        return serving.base_model
    if project.default_model:
        return project.default_model
    raise JobRequestError(
        f"Project {project.name!r} has no base model to train from. Name one: a Hub id such as "
        "Qwen/Qwen2-VL-2B-Instruct, or a local model folder.",
        setting="model",
    )


def _check_data(session: Any, project: Project) -> None:
    # Without trusted held-out answers the pipeline skips evaluation, and an unevaluated model is never registered,
    # so the whole run would be wasted: refuse it now, with the fix.
    counts = crud.count_trusted_items(session=session, project_id=project.id)
    if counts[Split.train] == 0:
        raise JobRequestError(
            f"Project {project.name!r} has no training item with a trusted answer yet. Review some predictions "
            "(accept or correct) or import ground truth first."
        )
    if counts[Split.eval] == 0:
        raise JobRequestError(
            f"Project {project.name!r} has no held-out item with a trusted answer, so a new version could not be "
            "evaluated. Review some held-out items (or import their ground truth) first."
        )


def _check_overrides(model: str, overrides: Sequence[str]) -> list[str]:
    # Imported here: the admin UI imports this module, and has no other use for the training package.
    from rise.training.config import PipelineConfig

    cleaned = [line.strip() for line in overrides if line.strip()]
    try:
        PipelineConfig(model=model, data="snapshot", output_dir="run").with_overrides(cleaned)
    except ValueError as error:
        raise JobRequestError(f"Pipeline settings: {error}") from None
    return cleaned


def set_retrain_settings(runtime: Runtime, project_id: int, settings: Sequence[str]) -> list[str]:
    """Make `settings` (`section.field=value` lines, checked now) the pipeline settings every retraining of the
    project starts from; returns them cleaned. An empty list goes back to the pipeline's defaults."""
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, JobRequestError)
        checked = _check_overrides(project.default_model or "model", settings)
        project.retrain_settings = checked
        return checked


def request_retrain(
    runtime: Runtime,
    project_id: int,
    *,
    model: str | None = None,
    overrides: Sequence[str] = (),
    launcher: str = "auto",
    accelerate_config: str | None = None,
    num_processes: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    promotion_tolerance: float = 0.0,
    promotion_min_items: int = DEFAULT_PROMOTION_MIN_ITEMS,
    reannotate: bool = True,
    reason: str = "requested",
    requested_by_id: int | None = None,
) -> JobView:
    """Queue a retraining of the project.

    Args:
        model: base model to train from (default: the serving version's base, else the project's default model).
        overrides: pipeline settings as `section.field=value`, e.g. `rft.max_steps=50` (checked now), on top of the
            project's own `retrain_settings`.
        launcher: "auto", "accelerate" or "python" (how the worker starts the training process).
        accelerate_config: an `accelerate config` file for the launch (several GPUs, DeepSpeed ZeRO-3, ...).
        num_processes: processes (GPUs) for `accelerate launch`; default: one, or what the config file says.
        max_attempts: how many workers may try it before it fails (a worker that dies costs one attempt).
        promotion_tolerance: the new version serves when its held-out score is at least the serving one's minus
            this (0: not worse).
        promotion_min_items: a held-out slice smaller than this never promotes automatically (an admin can).
        reannotate: after an automatic promotion, queue a re-annotation of unreviewed items with the new version.

    Raises:
        `JobRequestError` (bad request, nothing to train or evaluate on); `ActiveJobExistsError` when the project
        already has a training job queued or running.
    """
    if launcher not in LAUNCHERS:
        raise JobRequestError(f"Unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}.")
    if num_processes is not None and num_processes < 1:
        raise JobRequestError(f"num_processes must be at least 1, got {num_processes}.")
    if max_attempts < 1:
        raise JobRequestError(f"max_attempts must be at least 1, got {max_attempts}.")
    if promotion_tolerance < 0:
        raise JobRequestError(f"promotion_tolerance must be >= 0, got {promotion_tolerance}.")
    if promotion_min_items < 0:
        raise JobRequestError(f"promotion_min_items must be >= 0, got {promotion_min_items}.")
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, JobRequestError)
        base = _base_model(session, project, (model or "").strip() or None)
        requested = _check_overrides(base, overrides)
        # The project's own defaults first, so the request's settings win where both name a field.
        checked = _check_overrides(base, [*project.retrain_settings, *requested])
        existing = crud.active_train_job(session=session, project_id=project.id)
        if existing is not None:
            raise ActiveJobExistsError(existing.id)
        _check_data(session, project)
        config = {
            "model": base,
            "overrides": checked,
            # What the request itself asked for: a policy repeats this, on top of the project's defaults of the day.
            "requested_overrides": requested,
            "launcher": launcher,
            "accelerate_config": accelerate_config,
            "num_processes": num_processes,
            "max_attempts": max_attempts,
            "promotion_tolerance": promotion_tolerance,
            "promotion_min_items": promotion_min_items,
            "reannotate": reannotate,
            "reason": reason,
        }
        job = crud.create_job(
            session=session, project_id=project.id, kind=JobKind.train, config=config, requested_by_id=requested_by_id
        )
        return job_view(job, project.name)


def request_reannotation(
    runtime: Runtime,
    project_id: int,
    *,
    version_id: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    requested_by_id: int | None = None,
    reason: str = "requested",
) -> JobView:
    """Queue an annotation of the project's unreviewed items by a model version (default: the serving one)."""
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, JobRequestError)
        if version_id is None:
            version = version_crud.serving_version(session=session, project_id=project.id)
            if version is None:
                raise JobRequestError(f"Project {project.name!r} has no serving model version yet; promote one.")
        else:
            version = version_crud.get_model_version(session=session, version_id=version_id)
            if version is None or version.project_id != project.id:
                raise JobRequestError(f"Project {project.name!r} has no model version #{version_id}.")
        model = {"version_id": version.id, "version": version.name}
        return _queue_annotate_job(session, project, model, batch_size, max_new_tokens, requested_by_id, reason)


def request_annotation(
    runtime: Runtime,
    project_id: int,
    *,
    model: str | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    requested_by_id: int | None = None,
    reason: str = "requested",
) -> JobView:
    """Queue an annotation of the project's items that have no prediction from `model` yet and no trusted answer.

    Args:
        model: a model version of the project, a Hub id or a model folder (as the worker's machine sees it); None:
            the project's serving version, else its default model, chosen now so the job says what it runs.

    Raises:
        `JobRequestError` for an unknown project, or one with no model to default to.
    """
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, JobRequestError)
        try:
            chosen = (model or "").strip() or project_model(session, project)
        except ProjectError as error:
            raise JobRequestError(str(error)) from None
        model = {"model": chosen}
        return _queue_annotate_job(session, project, model, batch_size, max_new_tokens, requested_by_id, reason)


def _queue_annotate_job(
    session: Any,
    project: Project,
    model: dict[str, Any],
    batch_size: int,
    max_new_tokens: int,
    requested_by_id: int | None,
    reason: str,
) -> JobView:
    """An annotate job by `model` (a version's id and name, or a model reference) with the generation settings."""
    config = {
        **model,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "reason": reason,
    }
    job = crud.create_job(
        session=session, project_id=project.id, kind=JobKind.annotate, config=config, requested_by_id=requested_by_id
    )
    return job_view(job, project.name)


def _project_names(session: Any) -> dict[int, str]:
    return {p.id: p.name for p in list_projects(session=session)}


def list_jobs(
    runtime: Runtime, project_id: int | None = None, *, kind: str | None = None, limit: int = 50
) -> list[JobView]:
    """Newest first; all projects when `project_id` is None, and only jobs of `kind` ("train", "annotate") when
    given."""
    with runtime.sessions.begin() as session:
        if project_id is not None:
            project = project_with_id(session, project_id, JobRequestError)
            names = {project.id: project.name}
        else:
            names = _project_names(session)
        jobs = crud.list_jobs(
            session=session, project_id=project_id, kind=JobKind(kind) if kind else None, limit=limit
        )
        return [job_view(job, names.get(job.project_id, "?")) for job in jobs]


def get_job(runtime: Runtime, job_id: int) -> JobView | None:
    with runtime.sessions.begin() as session:
        job = crud.get_job(session=session, job_id=job_id)
        if job is None:
            return None
        project = session.get(Project, job.project_id)
        return job_view(job, project.name if project else "?")


def cancel_job(runtime: Runtime, job_id: int) -> JobView:
    """Cancel a queued job at once, or ask the worker of a running one to stop it (it does within a heartbeat)."""
    with runtime.sessions.begin() as session:
        status = crud.request_cancel(session=session, job_id=job_id)
        if status is None:
            raise JobRequestError(f"No job #{job_id}.")
    view = get_job(runtime, job_id)
    assert view is not None
    return view

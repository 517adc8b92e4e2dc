"""Model versions: registering what a finished training job produced, deciding whether it serves, and the admin's
promote / roll back.

Which version serves decides which model annotates new items (`app.services.annotation.run_annotation` with the
version's name records `model_version_id` on every prediction). The rule (docs/design.md §4): a new version serves
automatically only if it is not worse than the serving one on the project's held-out items, both scored on the
same held-out slice; an admin can promote or roll back any version at any time. Before any version serves, the
project's base model is the one to beat; it is registered as a version of its own, so it can be rolled back to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import AppError
from app.runtime import Runtime
from app.services.jobs import DEFAULT_MAX_ATTEMPTS, DEFAULT_PROMOTION_MIN_ITEMS
from app.services.projects import project_with_id
from db.crud import jobs as job_crud
from db.crud import model_versions as crud
from db.models import JobKind, JobStatus, ModelVersion, Project

__all__ = [
    "LostLeaseError",
    "PromotionDecision",
    "Registration",
    "TrainingOutcome",
    "VersionError",
    "VersionView",
    "decide_promotion",
    "list_versions",
    "primary_metric",
    "promote_version",
    "register_training_result",
    "rollback",
    "serving_version",
]


class VersionError(AppError, ValueError):
    """A promotion or rollback cannot be done as asked; the message says why."""


def primary_metric(task_type: str, distribution: bool = False) -> str:
    """The held-out metric that decides promotion: higher is better for each."""
    if task_type == "classification":
        return "distribution_score" if distribution else "accuracy"
    if task_type == "detection":
        return "map50"
    return "mean_iou"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    metric: str
    candidate: float | None
    current: float | None
    tolerance: float
    reason: str


def decide_promotion(
    candidate: dict[str, Any],
    current: dict[str, Any] | None,
    metric: str,
    tolerance: float = 0.0,
    min_items: int = 0,
) -> PromotionDecision:
    """Promote when the candidate's `metric` is at least the current one's minus `tolerance` (not worse), and the
    held-out slice it was scored on has at least `min_items` items (`candidate["items"]`): on a smaller slice a
    score's bootstrap interval is too wide for "not worse" to mean anything, so an admin decides.

    >>> decide_promotion({"accuracy": 0.5}, {"accuracy": 0.5}, "accuracy").promote
    True
    >>> decide_promotion({"accuracy": 0.4}, {"accuracy": 0.5}, "accuracy").reason
    'accuracy 0.4000 is worse than the serving 0.5000'
    """
    new = candidate.get(metric)
    old = None if current is None else current.get(metric)
    if not isinstance(new, int | float):
        return PromotionDecision(False, metric, None, old, tolerance, f"the new version has no {metric} score")
    items = candidate.get("items")
    if isinstance(items, int) and items < min_items:
        return PromotionDecision(
            False, metric, new, old, tolerance,
            f"the held-out slice has {items} items, fewer than the {min_items} needed to promote automatically; "
            "an admin can promote it",
        )  # fmt: skip
    if current is None:
        return PromotionDecision(
            False, metric, new, None, tolerance, "no score of the serving model on the same held-out items"
        )
    if not isinstance(old, int | float):
        return PromotionDecision(True, metric, new, None, tolerance, f"the serving model has no {metric} score")
    if new >= old - tolerance:
        return PromotionDecision(True, metric, new, old, tolerance, f"{metric} {new:.4f} is not worse than {old:.4f}")
    return PromotionDecision(
        False, metric, new, old, tolerance, f"{metric} {new:.4f} is worse than the serving {old:.4f}"
    )


@dataclass(frozen=True)
class VersionView:
    id: int
    project_id: int
    name: str
    base_model: str
    adapter_path: str | None
    parent_id: int | None
    parent_name: str | None
    job_id: int | None
    data_snapshot: str | None
    metrics: dict[str, Any]
    is_serving: bool
    promoted_at: datetime | None
    created_at: datetime
    score_name: str
    score: float | None
    score_items: int | None = None  # the size of the held-out slice the score was measured on
    score_interval: tuple[float, float] | None = None  # its bootstrap 95 % interval

    @property
    def is_base(self) -> bool:
        return self.job_id is None and self.adapter_path is None

    @property
    def score_text(self) -> str:
        """ "accuracy 0.7333 [0.57–0.87] on 30 items", as much of it as is known; "" without a score."""
        if self.score is None:
            return ""
        text = f"{self.score_name} {self.score:.4f}"
        if self.score_interval is not None:
            text += f" [{self.score_interval[0]:.2f}–{self.score_interval[1]:.2f}]"
        if self.score_items is not None:
            text += f" on {self.score_items} items"
        return text


def _view(session: Session, version: ModelVersion, project: Project) -> VersionView:
    parent = crud.get_model_version(session=session, version_id=version.parent_id) if version.parent_id else None
    metric = primary_metric(project.task_type, project.distribution)
    scores = version.metrics.get("eval") or {}
    score = scores.get(metric)
    items = scores.get("items")
    interval = (scores.get("ci95") or {}).get(metric)
    return VersionView(
        id=version.id,
        project_id=version.project_id or project.id,
        name=version.name,
        base_model=version.base_model,
        adapter_path=version.adapter_path,
        parent_id=version.parent_id,
        parent_name=parent.name if parent else None,
        job_id=version.job_id,
        data_snapshot=version.data_snapshot,
        metrics=dict(version.metrics),
        is_serving=version.is_serving,
        promoted_at=version.promoted_at,
        created_at=version.created_at,
        score_name=metric,
        score=score if isinstance(score, int | float) else None,
        score_items=items if isinstance(items, int) else None,
        score_interval=(float(interval[0]), float(interval[1])) if isinstance(interval, list | tuple) else None,
    )


def list_versions(runtime: Runtime, project_id: int) -> list[VersionView]:
    """Newest first."""
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, VersionError)
        return [_view(session, v, project) for v in crud.list_model_versions(session=session, project_id=project.id)]


def serving_version(runtime: Runtime, project_id: int) -> VersionView | None:
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, VersionError)
        version = crud.serving_version(session=session, project_id=project.id)
        return _view(session, version, project) if version else None


def _queue_reannotation(
    session: Session, project: Project, version: ModelVersion, reason: str, settings: dict[str, Any] | None = None
) -> int:
    """Queue an annotation of the unreviewed items by `version`; `settings` (batch_size, max_new_tokens) default to
    the annotation service's."""
    config = {"version_id": version.id, "version": version.name, "batch_size": 16, "max_new_tokens": 256}
    config.update(settings or {})
    config.update(max_attempts=DEFAULT_MAX_ATTEMPTS, reason=reason)
    job = job_crud.create_job(session=session, project_id=project.id, kind=JobKind.annotate, config=config)
    return job.id


def _find_version(session: Session, project: Project, ref: int | str) -> ModelVersion:
    version = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        version = crud.get_model_version(session=session, version_id=int(ref))
    if version is None and isinstance(ref, str):
        version = crud.find_version_by_name(session=session, project_id=project.id, name=ref)
    if version is None or version.project_id != project.id:
        raise VersionError(
            f"Project {project.name!r} has no model version {ref!r}; name one of its versions by id or name.",
            setting="model_version",
        )
    return version


def promote_version(
    runtime: Runtime, project_id: int, version_ref: int | str, *, reannotate: bool = False
) -> VersionView:
    """Make a version (id or name) serve the project's new predictions; with `reannotate`, also queue an annotation
    of the unreviewed items by it."""
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, VersionError)
        crud.lock_project(session=session, project_id=project.id)
        version = crud.set_serving(session=session, version=_find_version(session, project, version_ref))
        if reannotate:
            _queue_reannotation(session, project, version, reason=f"promoted {version.name}")
        return _view(session, version, project)


def rollback(runtime: Runtime, project_id: int, *, reannotate: bool = False) -> VersionView:
    """Serve the version that served before the current one (or the base model's version)."""
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, VersionError)
        crud.lock_project(session=session, project_id=project.id)
        versions = crud.list_model_versions(session=session, project_id=project.id)
        current = next((v for v in versions if v.is_serving), None)
        if current is None:
            raise VersionError(f"No version of {project.name!r} serves yet, so there is nothing to roll back.")
        earlier = [v for v in versions if v.promoted_at is not None and v.id != current.id]
        earlier.sort(key=lambda v: v.promoted_at or datetime.min)
        # Never served before: fall back to the base model's version (one without a job or adapter).
        bases = [v for v in versions if v.job_id is None and not v.adapter_path and v.id != current.id]
        previous = earlier[-1] if earlier else (bases[-1] if bases else None)
        if previous is None:
            raise VersionError(
                f"{current.name} is the only version of {project.name!r}; there is nothing to roll back to."
            )
        version = crud.set_serving(session=session, version=previous)
        if reannotate:
            _queue_reannotation(session, project, version, reason=f"rolled back to {version.name}")
        return _view(session, version, project)


@dataclass
class TrainingOutcome:
    """What a finished pipeline run produced, read from its final stage marker and evaluation reports."""

    base_model: str
    model_path: str  # the model the adapter goes on (the base model), or a fully fine-tuned model folder
    adapter_path: str | None
    data_snapshot: str
    eval_metrics: dict[str, Any]
    eval_report: str
    base_metrics: dict[str, Any] | None = None
    # The serving version's metrics on the same held-out items, when a trained version served at evaluation time.
    compared_version_id: int | None = None
    compared_metrics: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    # How the version annotates after an automatic promotion: the generation settings it was evaluated with.
    annotation_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    version: VersionView
    decision: PromotionDecision
    reannotation_job_id: int | None


class LostLeaseError(AppError, RuntimeError):
    """The worker no longer owns the job (its lease expired and the job moved on); nothing was registered."""


def _next_version_name(session: Session, project: Project) -> str:
    trained = [v for v in crud.list_model_versions(session=session, project_id=project.id) if v.job_id is not None]
    number = len(trained) + 1
    while crud.find_version_by_name(session=session, project_id=project.id, name=f"{project.name}-v{number}"):
        number += 1
    return f"{project.name}-v{number}"


def _ensure_base_version(session: Session, project: Project, outcome: TrainingOutcome) -> ModelVersion:
    existing = crud.base_version(session=session, project_id=project.id, base_model=outcome.base_model)
    if existing is not None:
        if outcome.base_metrics and not existing.metrics.get("eval"):
            crud.update_metrics(session=session, version=existing, metrics={"eval": outcome.base_metrics})
        return existing
    name = f"{project.name}-base"
    if crud.find_version_by_name(session=session, project_id=project.id, name=name) is not None:
        name = f"{name}-{len(crud.list_model_versions(session=session, project_id=project.id)) + 1}"
    metrics = {"eval": outcome.base_metrics} if outcome.base_metrics else {}
    return crud.create_model_version(
        session=session, project_id=project.id, name=name, base_model=outcome.base_model, metrics=metrics
    )


def _current_metrics(
    serving: ModelVersion | None, base: ModelVersion, outcome: TrainingOutcome
) -> tuple[dict[str, Any] | None, str]:
    """The serving model's scores on this run's held-out items, and its name; None when they are not known (the
    serving version changed after the run evaluated it)."""
    if serving is None or serving.id == base.id:
        return outcome.base_metrics, base.name
    if serving.id == outcome.compared_version_id:
        return outcome.compared_metrics, serving.name
    return None, serving.name


def register_training_result(
    runtime: Runtime, *, job_id: int, worker_id: str, outcome: TrainingOutcome, log: str
) -> Registration:
    """In one transaction: finish the job as succeeded, register its version (and the base model's, once), and
    promote it if it is not worse than the serving model on the same held-out items; then queue a re-annotation
    when the job asks for one. Raises `LostLeaseError` (and writes nothing) when the worker no longer owns the job.
    """
    with runtime.sessions.begin() as session:
        job = job_crud.get_job(session=session, job_id=job_id)
        if job is None:
            raise LostLeaseError(f"job #{job_id} no longer exists")
        project = crud.lock_project(session=session, project_id=job.project_id)
        assert project is not None  # the job's foreign key cascades: no project, no job
        if not job_crud.finish_job(
            session=session, job_id=job_id, worker_id=worker_id, status=JobStatus.succeeded, progress=1.0, log=log
        ):
            raise LostLeaseError(f"worker {worker_id} no longer owns job #{job_id}")
        serving = crud.serving_version(session=session, project_id=project.id)
        base = _ensure_base_version(session, project, outcome)
        current, current_name = _current_metrics(serving, base, outcome)
        metric = job.config.get("promotion_metric") or primary_metric(project.task_type, project.distribution)
        decision = decide_promotion(
            outcome.eval_metrics,
            current,
            metric,
            float(job.config.get("promotion_tolerance", 0)),
            int(job.config.get("promotion_min_items", DEFAULT_PROMOTION_MIN_ITEMS)),
        )
        metrics = {
            "eval": outcome.eval_metrics,
            "eval_report": outcome.eval_report,
            "compared_with": {"name": current_name, "metrics": current},
            "promotion": asdict(decision),
            "training": outcome.training,
        }
        version = crud.create_model_version(
            session=session,
            project_id=project.id,
            name=_next_version_name(session, project),
            base_model=outcome.model_path,
            adapter_path=outcome.adapter_path,
            parent_id=(serving or base).id,
            job_id=job_id,
            data_snapshot=outcome.data_snapshot,
            metrics=metrics,
        )
        reannotation = None
        if decision.promote:
            version = crud.set_serving(session=session, version=version)
            if job.config.get("reannotate", True):
                reannotation = _queue_reannotation(
                    session, project, version, f"promoted {version.name}", outcome.annotation_settings
                )
        return Registration(_view(session, version, project), decision, reannotation)

"""The project dashboard: review progress, verdict mix, accept rate per label, reviewer throughput, and each model
version's evaluation metrics over time (for a line plot)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.runtime import Runtime
from db.crud import review_queue as queue_crud
from db.crud import review_stats as stats_crud
from db.models import Project, Verdict, utcnow
from rise.answers import answer_labels

__all__ = [
    "DashboardStats",
    "ModelMetricsPoint",
    "ReviewerThroughput",
    "dashboard_stats",
    "flatten_metrics",
    "held_out_metrics",
]

RECENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ReviewerThroughput:
    username: str
    reviews: int  # verdicts that are not undone
    reviews_last_24h: int
    seconds_per_review: float | None  # mean time on screen, over the verdicts that recorded it
    reviews_per_hour: float | None  # 3600 / seconds_per_review
    first_review_at: datetime
    last_review_at: datetime


@dataclass(frozen=True)
class ModelMetricsPoint:
    """One model version's evaluation metrics, flattened to `{"name": number}` (nested keys joined by ".")."""

    model_version_id: int
    name: str
    created_at: datetime
    metrics: dict[str, float]
    is_serving: bool = False


@dataclass(frozen=True)
class DashboardStats:
    total: int  # items in the project
    reviewed: int  # items with a current verdict
    verdict_counts: dict[str, int]  # {"accept": n, "correct": n, "reject": n}, current verdict per item
    per_label_accept_rate: dict[str, float]  # label -> accepted / reviewed, over items the model gave that label
    reviewer_throughput: list[ReviewerThroughput]
    model_metrics_history: list[ModelMetricsPoint]  # oldest version first
    per_label_reviewed: dict[str, int] = field(default_factory=dict)  # the denominators of the accept rates
    predicted: int = 0  # items with a prediction

    @property
    def progress(self) -> float:
        """Reviewed share of the project's items, 0.0 for an empty project."""
        return self.reviewed / self.total if self.total else 0.0

    def metrics_rows(self) -> list[dict[str, Any]]:
        """The metrics history in long form, one row per (version, metric): what a line plot takes."""
        return [
            {"model": point.name, "created_at": point.created_at, "metric": name, "value": value}
            for point in self.model_metrics_history
            for name, value in sorted(point.metrics.items())
        ]


def held_out_metrics(metrics: Any) -> Any:
    """The part of `ModelVersion.metrics` that scores the version on the held-out slice.

    Registered versions keep their held-out scores under "eval" beside training and promotion records (timings,
    step counts), which would swamp the plot; older or hand-made rows without "eval" are plotted whole.

    >>> held_out_metrics({"eval": {"accuracy": 0.9}, "training": {"sft.seconds": 12.0}})
    {'accuracy': 0.9}
    """
    if isinstance(metrics, dict) and isinstance(metrics.get("eval"), dict):
        return metrics["eval"]
    return metrics


def flatten_metrics(metrics: Any, prefix: str = "") -> dict[str, float]:
    """The finite numbers in a metrics dict, nested keys joined with "."; anything else is left out.

    >>> flatten_metrics({"accuracy": 0.8, "eval": {"iou": 0.5, "note": "ok"}, "promoted": True})
    {'accuracy': 0.8, 'eval.iou': 0.5}
    """
    flat: dict[str, float] = {}
    if not isinstance(metrics, dict):
        return flat
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def _label_rates(answers: list[tuple[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    reviewed: dict[str, int] = {}
    accepted: dict[str, int] = {}
    for verdict, answer in answers:
        for label in answer_labels(answer):
            reviewed[label] = reviewed.get(label, 0) + 1
            accepted[label] = accepted.get(label, 0) + (verdict == Verdict.accept.value)
    return {label: accepted[label] / n for label, n in sorted(reviewed.items())}, dict(sorted(reviewed.items()))


def _throughput(row) -> ReviewerThroughput:
    seconds = row.time_spent_ms / 1000 / row.timed if row.timed else None
    return ReviewerThroughput(
        username=row.username,
        reviews=row.reviews,
        reviews_last_24h=int(row.recent or 0),
        seconds_per_review=seconds,
        reviews_per_hour=3600 / seconds if seconds else None,
        first_review_at=row.first_at,
        last_review_at=row.last_at,
    )


def dashboard_stats(runtime: Runtime, project_id: int) -> DashboardStats:
    with runtime.sessions.begin() as session:
        if session.get(Project, project_id) is None:
            raise ValueError(f"Project #{project_id} does not exist. Pick a project again.")
        # Count predictions that arrived since the last queue request too, and repair the stored queue counts.
        queue_crud.sync_review_queue(session=session)
        queue_crud.reconcile_review_queue(session=session, project_id=project_id)
        queue_crud.recount_queue(session=session, project_id=project_id)
    with runtime.sessions() as session:
        counts = stats_crud.verdict_counts(session=session, project_id=project_id)
        rates, per_label = _label_rates(stats_crud.reviewed_answers(session=session, project_id=project_id))
        activity = stats_crud.reviewer_activity(session=session, project_id=project_id, since=utcnow() - RECENT_WINDOW)
        versions = stats_crud.list_model_versions(session=session, project_id=project_id)
        return DashboardStats(
            total=stats_crud.count_items(session=session, project_id=project_id),
            reviewed=sum(counts.values()),
            verdict_counts=counts,
            per_label_accept_rate=rates,
            per_label_reviewed=per_label,
            reviewer_throughput=[_throughput(row) for row in activity],
            model_metrics_history=[
                ModelMetricsPoint(
                    model_version_id=version.id,
                    name=version.name,
                    created_at=version.created_at,
                    metrics=flatten_metrics(held_out_metrics(version.metrics)),
                    is_serving=version.is_serving,
                )
                for version in versions
            ],
            predicted=stats_crud.count_predicted_items(session=session, project_id=project_id),
        )

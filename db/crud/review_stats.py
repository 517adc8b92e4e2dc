"""Read-only aggregates over reviews for the dashboard: progress, verdict mix, reviewer activity, model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, func, select
from sqlalchemy.orm import Session

from db.models import Item, ModelVersion, Prediction, Review, ReviewQueueEntry, User, Verdict

Q = ReviewQueueEntry


def count_items(*, session: Session, project_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project_id)) or 0


def count_predicted_items(*, session: Session, project_id: int) -> int:
    """Items with at least one prediction (the queue holds exactly those, plus items reviewed without one)."""
    stmt = select(func.count()).where(Q.project_id == project_id, Q.prediction_id.is_not(None))
    return session.scalar(stmt) or 0


def verdict_counts(*, session: Session, project_id: int) -> dict[str, int]:
    """Items per current verdict (the latest one that is not undone)."""
    rows = session.execute(
        select(Q.verdict, func.count()).where(Q.project_id == project_id, Q.verdict.is_not(None)).group_by(Q.verdict)
    )
    counts = {verdict.value: 0 for verdict in Verdict}
    counts.update({Verdict(verdict).value: n for verdict, n in rows})
    return counts


def reviewed_answers(*, session: Session, project_id: int) -> list[tuple[str, Any]]:
    """(current verdict, answer of the prediction it judged) for every reviewed item whose prediction still exists."""
    stmt = (
        select(Q.verdict, Prediction.answer)
        .join(Review, Review.id == Q.review_id)
        .join(Prediction, Prediction.id == Review.prediction_id)
        .where(Q.project_id == project_id, Q.verdict.is_not(None))
    )
    return [(Verdict(verdict).value, answer) for verdict, answer in session.execute(stmt)]


def reviewer_activity(*, session: Session, project_id: int, since: datetime) -> list[Row]:
    """Per reviewer: username, reviews, reviews since `since`, summed and counted review times, first and last review.

    Counts every verdict that is not undone, including second looks: each is a reviewer's work.
    """
    stmt = (
        select(
            User.username,
            func.count(Review.id).label("reviews"),
            func.sum(case((Review.created_at >= since, 1), else_=0)).label("recent"),
            func.sum(Review.time_spent_ms).label("time_spent_ms"),
            func.count(Review.time_spent_ms).label("timed"),
            func.min(Review.created_at).label("first_at"),
            func.max(Review.created_at).label("last_at"),
        )
        .join(Item, Item.id == Review.item_id)
        .join(User, User.id == Review.reviewer_id)
        .where(Item.project_id == project_id, Review.undone_at.is_(None))
        .group_by(User.id, User.username)
        .order_by(func.count(Review.id).desc(), User.username)
    )
    return list(session.execute(stmt))


def list_model_versions(*, session: Session, project_id: int) -> list[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.project_id == project_id)
    return list(session.scalars(stmt.order_by(ModelVersion.created_at, ModelVersion.id)))

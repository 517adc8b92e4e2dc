"""Reviews, the review queue and item leases.

The queue (`review_queue`, one row per item) is copied from `predictions` by `sync_review_queue` and updated here
whenever a verdict is recorded or undone, so every verdict and its queue row change in one transaction.

Leases live on `items` (`leased_by_id`, `lease_expires_at`) and are only ever taken by a conditional UPDATE whose
row count says whether it won, so two reviewers can never hold the same item, on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from db.models import (
    Annotation,
    AnnotationSource,
    Item,
    Prediction,
    Review,
    ReviewQueueEntry,
    ReviewSkip,
    Verdict,
)

Q = ReviewQueueEntry
# Separates labels in `review_queue.answer_labels`: a control character no label is expected to contain.
LABEL_SEPARATOR = "\x1f"
QUEUE_ORDERS = ("confidence", "oldest")
# Rows per INSERT: 9 columns x 500 rows stays far below SQLite's 32,766 bound parameters.
_INSERT_CHUNK = 500


# Labels named by an answer


def answer_labels(answer: Any) -> list[str]:
    """The labels an answer names: the label, the most probable label of a distribution, or the box labels.

    >>> answer_labels([{"label": "square", "box": [0, 0, 4, 4]}, {"label": "circle", "box": [1, 1, 5, 5]}])
    ['circle', 'square']
    >>> answer_labels({"joy": 0.2, "fear": 0.8}), answer_labels([1, 2, 3, 4])
    (['fear'], [])
    """
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, dict):
        numeric = {k: v for k, v in answer.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        return [max(numeric, key=numeric.__getitem__)] if numeric else []
    if isinstance(answer, list):
        labels = {entry.get("label") for entry in answer if isinstance(entry, dict)}
        return sorted(label for label in labels if isinstance(label, str))
    return []


def encode_labels(labels: Iterable[str]) -> str:
    labels = sorted(set(labels))
    return f"{LABEL_SEPARATOR}{LABEL_SEPARATOR.join(labels)}{LABEL_SEPARATOR}" if labels else ""


# Keeping the queue in step with predictions


def _upsert_statement(session: Session, rows: list[dict[str, Any]]):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"The review queue supports SQLite and PostgreSQL, not {dialect}.")
    stmt = insert(Q).values(rows)
    # An existing row keeps its verdict; it only moves to a newer prediction, never back to an older one.
    return stmt.on_conflict_do_update(
        index_elements=[Q.item_id],
        set_={
            "prediction_id": stmt.excluded.prediction_id,
            "model_name": stmt.excluded.model_name,
            "score": stmt.excluded.score,
            "answer_labels": stmt.excluded.answer_labels,
        },
        where=or_(Q.prediction_id.is_(None), Q.prediction_id < stmt.excluded.prediction_id),
    )


def _latest_active_reviews(session: Session, item_ids: Sequence[int]) -> dict[int, Review]:
    latest: dict[int, Review] = {}
    for start in range(0, len(item_ids), _INSERT_CHUNK):
        chunk = item_ids[start : start + _INSERT_CHUNK]
        stmt = select(Review).where(Review.item_id.in_(chunk), Review.undone_at.is_(None)).order_by(Review.id)
        latest.update({review.item_id: review for review in session.scalars(stmt)})
    return latest


def _copy_predictions(session: Session, predictions: Sequence[Any]) -> None:
    """Upsert queue rows for `(id, item_id, project_id, model_name, score, answer)` rows, newest prediction wins."""
    newest = {row.item_id: row for row in sorted(predictions, key=lambda row: row.id)}
    # Sorted by item: concurrent syncs then lock rows in the same order and cannot deadlock on PostgreSQL.
    item_ids = sorted(newest)
    reviews = _latest_active_reviews(session, item_ids)
    values = []
    for item_id in item_ids:
        row, review = newest[item_id], reviews.get(item_id)
        values.append(
            {
                "item_id": item_id,
                "project_id": row.project_id,
                "prediction_id": row.id,
                "model_name": row.model_name or "",
                "score": float(row.score) if row.score is not None else 0.0,
                "answer_labels": encode_labels(answer_labels(row.answer)),
                # Only used when the row is new (an item reviewed before it had a queue row).
                "verdict": review.verdict if review else None,
                "review_id": review.id if review else None,
                "verdict_at": review.created_at if review else None,
            }
        )
    for start in range(0, len(values), _INSERT_CHUNK):
        session.execute(_upsert_statement(session, values[start : start + _INSERT_CHUNK]))


def _prediction_rows() -> Select:
    return select(
        Prediction.id, Prediction.item_id, Item.project_id, Prediction.model_name, Prediction.score, Prediction.answer
    ).join(Item, Item.id == Prediction.item_id)


def sync_review_queue(*, session: Session, batch_size: int = 2000) -> int:
    """Copy predictions newer than the queue's high-water mark (its largest prediction id) into the queue.

    Cheap when there is nothing new (two index lookups), so it runs before every queue request.

    Returns:
        `int`: how many predictions were read.
    """
    watermark = session.scalar(select(func.max(Q.prediction_id))) or 0
    if session.scalar(select(Prediction.id).where(Prediction.id > watermark).limit(1)) is None:
        return 0
    copied = 0
    while True:
        stmt = _prediction_rows().where(Prediction.id > watermark).order_by(Prediction.id).limit(batch_size)
        rows = session.execute(stmt).all()
        if not rows:
            return copied
        _copy_predictions(session, rows)
        watermark = rows[-1].id
        copied += len(rows)


def reconcile_review_queue(*, session: Session, project_id: int) -> int:
    """Add the project's items that have predictions but no queue row; returns how many were added.

    The high-water mark can pass over a prediction whose transaction committed after a later one (possible with
    concurrent writers on PostgreSQL); this full comparison, run when a queue looks empty, picks such items up.
    """
    missing = (
        select(func.max(Prediction.id))
        .join(Item, Item.id == Prediction.item_id)
        .where(Item.project_id == project_id, ~exists().where(Q.item_id == Prediction.item_id))
        .group_by(Prediction.item_id)
    )
    prediction_ids = list(session.scalars(missing))
    for start in range(0, len(prediction_ids), _INSERT_CHUNK):
        chunk = prediction_ids[start : start + _INSERT_CHUNK]
        _copy_predictions(session, session.execute(_prediction_rows().where(Prediction.id.in_(chunk))).all())
    return len(prediction_ids)


def get_queue_entry(*, session: Session, item_id: int) -> ReviewQueueEntry | None:
    return session.get(Q, item_id)


def ensure_queue_entry(*, session: Session, item: Item) -> ReviewQueueEntry:
    """The item's queue row, created from its newest prediction (if any) when the sync has not reached it yet."""
    entry = session.get(Q, item.id)
    if entry is not None:
        return entry
    newest = session.execute(_prediction_rows().where(Prediction.item_id == item.id).order_by(Prediction.id.desc()))
    row = newest.first()
    if row is not None:
        _copy_predictions(session, [row])
    else:
        session.execute(_upsert_statement(session, [{"item_id": item.id, "project_id": item.project_id}]))
    return session.get(Q, item.id, populate_existing=True)


def set_queue_verdict(*, session: Session, item_id: int, review: Review | None) -> None:
    """Point the item's queue row at its latest verdict (`None`: back to unreviewed)."""
    session.execute(
        update(Q)
        .where(Q.item_id == item_id)
        .values(
            verdict=review.verdict if review else None,
            review_id=review.id if review else None,
            verdict_at=review.created_at if review else None,
        )
        .execution_options(synchronize_session=False)
    )


# Finding the next item


def _filtered(
    stmt: Select,
    *,
    project_id: int,
    verdict: Verdict | str | None,
    label: str | None,
    model_name: str | None,
    any_verdict: bool = False,
) -> Select:
    stmt = stmt.where(Q.project_id == project_id)
    if not any_verdict:
        stmt = stmt.where(Q.verdict.is_(None) if verdict is None else Q.verdict == verdict)
    if label is not None:
        stmt = stmt.where(Q.answer_labels.contains(f"{LABEL_SEPARATOR}{label}{LABEL_SEPARATOR}", autoescape=True))
    if model_name is not None:
        stmt = stmt.where(Q.model_name == model_name)
    return stmt


def next_queue_item(
    *,
    session: Session,
    project_id: int,
    user_id: int,
    now: datetime,
    verdict: Verdict | str | None = None,
    label: str | None = None,
    model_name: str | None = None,
    order: str = "confidence",
    skipped: bool = False,
) -> int | None:
    """The first item of the queue that nobody holds, or `None`.

    Without `verdict` the queue is the unreviewed items, by lowest confidence or oldest first; with it, the items
    whose latest verdict it is, oldest verdict first, so re-reviewing one moves it to the back. Items this user
    skipped come only with `skipped=True`, the earliest skipped first. On PostgreSQL the row is locked with
    SKIP LOCKED, so concurrent reviewers pass over each other's candidates instead of queueing behind them; the
    caller still takes the lease with `lease_item`, which decides.
    """
    stmt = select(Q.item_id).join(Item, Item.id == Q.item_id)
    stmt = _filtered(stmt, project_id=project_id, verdict=verdict, label=label, model_name=model_name)
    stmt = stmt.where(or_(Item.leased_by_id.is_(None), Item.lease_expires_at < now))
    if skipped:
        stmt = stmt.join(ReviewSkip, and_(ReviewSkip.item_id == Q.item_id, ReviewSkip.user_id == user_id))
        stmt = stmt.order_by(ReviewSkip.skipped_at, Q.item_id)
    else:
        stmt = stmt.where(~exists().where(ReviewSkip.user_id == user_id, ReviewSkip.item_id == Q.item_id))
        if verdict is not None:
            stmt = stmt.order_by(Q.verdict_at, Q.item_id)
        elif order == "oldest":
            stmt = stmt.order_by(Q.item_id)
        else:
            stmt = stmt.order_by(Q.score, Q.item_id)
    return session.scalar(stmt.limit(1).with_for_update(of=Item, skip_locked=True))


def queue_item_matches(
    *,
    session: Session,
    item_id: int,
    project_id: int,
    verdict: Verdict | str | None = None,
    label: str | None = None,
    model_name: str | None = None,
    any_verdict: bool = False,
) -> bool:
    """Whether the item is (still) in this queue; `any_verdict` ignores the verdict (a held item being re-reviewed)."""
    stmt = _filtered(
        select(Q.item_id).where(Q.item_id == item_id),
        project_id=project_id,
        verdict=verdict,
        label=label,
        model_name=model_name,
        any_verdict=any_verdict,
    )
    return session.scalar(stmt) is not None


def count_queue(
    *,
    session: Session,
    project_id: int,
    verdict: Verdict | str | None = None,
    label: str | None = None,
    model_name: str | None = None,
    exclude_item_id: int | None = None,
) -> int:
    stmt = _filtered(
        select(func.count()).select_from(Q), project_id=project_id, verdict=verdict, label=label, model_name=model_name
    )
    if exclude_item_id is not None:
        stmt = stmt.where(Q.item_id != exclude_item_id)
    return session.scalar(stmt) or 0


def count_reviewed(*, session: Session, project_id: int) -> int:
    """Items of the project whose latest verdict is not undone."""
    return session.scalar(select(func.count()).where(Q.project_id == project_id, Q.verdict.is_not(None))) or 0


def queue_model_names(*, session: Session, project_id: int) -> list[str]:
    stmt = select(Q.model_name).where(Q.project_id == project_id, Q.model_name != "").distinct()
    return sorted(session.scalars(stmt))


# Leases


def lease_item(*, session: Session, item_id: int, user_id: int, until: datetime, now: datetime) -> bool:
    """Lease the item to `user_id` until `until` if nobody else holds it (or their lease expired); True if won."""
    result = session.execute(
        update(Item)
        .where(
            Item.id == item_id,
            or_(Item.leased_by_id.is_(None), Item.leased_by_id == user_id, Item.lease_expires_at < now),
        )
        .values(leased_by_id=user_id, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_item(*, session: Session, item_id: int, user_id: int) -> bool:
    """Give the item back if `user_id` holds it; True if it did."""
    result = session.execute(
        update(Item)
        .where(Item.id == item_id, Item.leased_by_id == user_id)
        .values(leased_by_id=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_user_leases(*, session: Session, user_id: int, project_id: int, keep_item_id: int | None = None) -> None:
    """A reviewer holds one item per project: give back any other."""
    stmt = update(Item).where(Item.leased_by_id == user_id, Item.project_id == project_id)
    if keep_item_id is not None:
        stmt = stmt.where(Item.id != keep_item_id)
    session.execute(stmt.values(leased_by_id=None, lease_expires_at=None).execution_options(synchronize_session=False))


def held_item(*, session: Session, user_id: int, project_id: int) -> int | None:
    """The item of the project leased to `user_id` (even if the lease ran out but nobody took it over)."""
    stmt = (
        select(Item.id)
        .where(Item.leased_by_id == user_id, Item.project_id == project_id)
        .order_by(Item.lease_expires_at.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def claim_for_verdict(*, session: Session, item_id: int, user_id: int, now: datetime) -> str | None:
    """Release the item's lease for a verdict, atomically with checking who may give it.

    Returns:
        `"held"` when `user_id` held the lease, `"free"` when nobody held it (or the lease ran out), `None` when
        someone else holds it now (or the item does not exist). The UPDATE locks the row until the transaction
        ends, so verdicts on one item are recorded one after the other.
    """
    release = update(Item).values(leased_by_id=None, lease_expires_at=None)
    release = release.execution_options(synchronize_session=False)
    if session.execute(release.where(Item.id == item_id, Item.leased_by_id == user_id)).rowcount == 1:
        return "held"
    free = or_(Item.leased_by_id.is_(None), Item.lease_expires_at < now)
    if session.execute(release.where(Item.id == item_id, free)).rowcount == 1:
        return "free"
    return None


def record_skip(*, session: Session, user_id: int, item_id: int, now: datetime) -> None:
    skip = session.get(ReviewSkip, (user_id, item_id))
    if skip is None:
        session.add(ReviewSkip(user_id=user_id, item_id=item_id, skipped_at=now))
    else:
        skip.skipped_at = now
    session.flush()


# Reviews and the annotations they derive


def create_review(
    *,
    session: Session,
    item_id: int,
    prediction_id: int | None,
    reviewer_id: int,
    verdict: Verdict | str,
    corrected_answer: Any = None,
    reasoning_wrong: bool = False,
    comment: str = "",
    time_spent_ms: int | None = None,
    now: datetime,
) -> Review:
    review = Review(
        item_id=item_id,
        prediction_id=prediction_id,
        reviewer_id=reviewer_id,
        verdict=Verdict(verdict),
        corrected_answer=corrected_answer,
        reasoning_wrong=reasoning_wrong,
        comment=comment,
        time_spent_ms=time_spent_ms,
        created_at=now,
    )
    session.add(review)
    session.flush()
    return review


def latest_active_review(*, session: Session, item_id: int) -> Review | None:
    stmt = select(Review).where(Review.item_id == item_id, Review.undone_at.is_(None)).order_by(Review.id.desc())
    return session.scalars(stmt.limit(1)).first()


def last_review_by_user(*, session: Session, user_id: int, project_id: int) -> Review | None:
    """The user's most recent verdict in the project that is not undone."""
    stmt = (
        select(Review)
        .join(Item, Item.id == Review.item_id)
        .where(Review.reviewer_id == user_id, Review.undone_at.is_(None), Item.project_id == project_id)
        .order_by(Review.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def mark_review_undone(*, session: Session, review: Review, now: datetime) -> None:
    review.undone_at = now
    session.flush()


def delete_review_annotations(*, session: Session, item_id: int) -> int:
    """Remove the item's annotations derived from verdicts (imported ground truth stays)."""
    stmt = delete(Annotation).where(Annotation.item_id == item_id, Annotation.review_id.is_not(None))
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount


def create_review_annotation(*, session: Session, review: Review, answer: Any, cot: str | None) -> Annotation:
    source = {Verdict.accept: AnnotationSource.accept, Verdict.correct: AnnotationSource.correct}[review.verdict]
    annotation = Annotation(
        item_id=review.item_id,
        answer=answer,
        cot=cot,
        source=source,
        review_id=review.id,
        created_by_id=review.reviewer_id,
        created_at=review.created_at,
    )
    session.add(annotation)
    session.flush()
    return annotation

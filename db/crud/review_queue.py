"""The review queue (`review_queue`): one row per item with a prediction, copied from `predictions` and `reviews`,
with per-project counts (`review_queue_counts`) and per-reviewer skips.

`sync_review_queue` copies new predictions in before every queue request; verdicts update their row through
`set_queue_verdict` in the transaction that records them. The counts change in the same statements' transactions:
rows are counted when an INSERT ... ON CONFLICT DO NOTHING RETURNING reports them inserted, verdicts when a row
changes between unreviewed and reviewed under the item's lock, so they stay exact with concurrent reviewers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from db.errors import DbError
from db.models import Item, Prediction, Project, Review, ReviewQueueCount, ReviewQueueEntry, ReviewSkip, Verdict
from db.session import ANSWER_LABELS_INFO

Q = ReviewQueueEntry
COUNTS = ReviewQueueCount.__table__
QUEUE = ReviewQueueEntry.__table__
# Separates labels in `review_queue.answer_labels`: a control character no label is expected to contain.
LABEL_SEPARATOR = "\x1f"
QUEUE_ORDERS = ("confidence", "oldest")
# Rows per executemany call (SQLAlchemy batches them into multi-row statements within the driver's parameter
# limits); also the size of `IN (...)` lists.
_CHUNK = 500


# Labels named by an answer


class AnswerReaderMissingError(DbError, RuntimeError):
    """The session was made without a reader of answer labels, so predictions cannot be filed under their labels."""


def _answer_labels(session: Session) -> Callable[[Any], Iterable[str]]:
    # What labels an answer names is the ML core's knowledge (`rise.answers.answer_labels`); this layer stores
    # answers without reading them, and gets the reader with its session (`db.session.make_session_factory`).
    reader = session.info.get(ANSWER_LABELS_INFO)
    if reader is None:
        raise AnswerReaderMissingError(
            "This database session has no reader of answer labels; make its factory with "
            "make_session_factory(engine, answer_labels=...)."
        )
    return reader


def encode_labels(labels: Iterable[str]) -> str:
    labels = sorted(set(labels))
    return f"{LABEL_SEPARATOR}{LABEL_SEPARATOR.join(labels)}{LABEL_SEPARATOR}" if labels else ""


# Writing queue rows and counts


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"The review queue supports SQLite and PostgreSQL, not {dialect}.")
    return insert


def _bump_counts(session: Session, deltas: dict[int, tuple[int, int]]) -> None:
    """Add `(queued, reviewed)` to each project's counts, atomically (concurrent bumps add up)."""
    if not deltas:
        return
    stmt = _insert(session)(COUNTS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[COUNTS.c.project_id],
        set_={
            "queued": COUNTS.c.queued + stmt.excluded.queued,
            "reviewed": COUNTS.c.reviewed + stmt.excluded.reviewed,
        },
    )
    rows = [{"project_id": p, "queued": q, "reviewed": r} for p, (q, r) in sorted(deltas.items())]
    session.execute(stmt, rows)


def _write_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert new queue rows and count them; move existing rows to a newer prediction (keeping their verdict)."""
    insert = _insert(session)
    new = insert(QUEUE).on_conflict_do_nothing(index_elements=[QUEUE.c.item_id]).returning(QUEUE.c.item_id)
    newer = insert(QUEUE)
    newer = newer.on_conflict_do_update(
        index_elements=[QUEUE.c.item_id],
        set_={key: newer.excluded[key] for key in ("prediction_id", "model_name", "score", "answer_labels")},
        where=or_(QUEUE.c.prediction_id.is_(None), QUEUE.c.prediction_id < newer.excluded.prediction_id),
    )
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        inserted = set(session.scalars(new, chunk))
        existing = [row for row in chunk if row["item_id"] not in inserted]
        if existing:
            session.execute(newer, existing)
        deltas: dict[int, tuple[int, int]] = {}
        for row in chunk:
            if row["item_id"] in inserted:
                queued, reviewed = deltas.get(row["project_id"], (0, 0))
                deltas[row["project_id"]] = (queued + 1, reviewed + (row["verdict"] is not None))
        _bump_counts(session, deltas)


def _latest_active_reviews(session: Session, item_ids: Sequence[int]) -> dict[int, Review]:
    latest: dict[int, Review] = {}
    for start in range(0, len(item_ids), _CHUNK):
        chunk = item_ids[start : start + _CHUNK]
        stmt = select(Review).where(Review.item_id.in_(chunk), Review.undone_at.is_(None)).order_by(Review.id)
        latest.update({review.item_id: review for review in session.scalars(stmt)})
    return latest


def _copy_predictions(session: Session, predictions: Sequence[Any]) -> None:
    """Queue rows for `(id, item_id, project_id, model_name, score, answer)` rows; the newest prediction wins."""
    labels_of = _answer_labels(session)
    newest = {row.item_id: row for row in sorted(predictions, key=lambda row: row.id)}
    # Sorted by item: concurrent syncs then lock rows in the same order and cannot deadlock on PostgreSQL.
    item_ids = sorted(newest)
    reviews = _latest_active_reviews(session, item_ids)
    rows = []
    for item_id in item_ids:
        prediction, review = newest[item_id], reviews.get(item_id)
        rows.append(
            {
                "item_id": item_id,
                "project_id": prediction.project_id,
                "prediction_id": prediction.id,
                "model_name": prediction.model_name or "",
                "score": float(prediction.score) if prediction.score is not None else 0.0,
                "answer_labels": encode_labels(labels_of(prediction.answer)),
                # Only used when the row is new (an item reviewed before it had a queue row).
                "verdict": review.verdict if review else None,
                "review_id": review.id if review else None,
                "verdict_at": review.created_at if review else None,
            }
        )
    _write_rows(session, rows)


def _prediction_rows() -> Select:
    return select(
        Prediction.id, Prediction.item_id, Item.project_id, Prediction.model_name, Prediction.score, Prediction.answer
    ).join(Item, Item.id == Prediction.item_id)


def sync_review_queue(*, session: Session, batch_size: int = 2000) -> int:
    """Copy predictions newer than the queue's high-water mark (its largest prediction id) into the queue.

    Cheap when there is nothing new (one query, two index lookups), so it runs before every queue request.

    Returns:
        `int`: how many predictions were read.
    """
    # Two index lookups in one round trip. (A `WHERE id > (subquery) LIMIT 1` instead makes PostgreSQL scan the
    # whole table when nothing is new, since it cannot see the subquery's value when it plans.)
    newest, watermark = session.execute(
        select(select(func.max(Prediction.id)).scalar_subquery(), select(func.max(Q.prediction_id)).scalar_subquery())
    ).one()
    watermark = watermark or 0
    if newest is None or newest <= watermark:
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
    for start in range(0, len(prediction_ids), _CHUNK):
        chunk = prediction_ids[start : start + _CHUNK]
        _copy_predictions(session, session.execute(_prediction_rows().where(Prediction.id.in_(chunk))).all())
    return len(prediction_ids)


def ensure_queue_entry(*, session: Session, item: Item) -> ReviewQueueEntry:
    """The item's queue row, created from its newest prediction (if any) when the sync has not reached it yet."""
    entry = session.get(Q, item.id, populate_existing=True)
    if entry is not None:
        return entry
    newest = session.execute(_prediction_rows().where(Prediction.item_id == item.id).order_by(Prediction.id.desc()))
    row = newest.first()
    if row is not None:
        _copy_predictions(session, [row])
    else:
        empty = {"prediction_id": None, "model_name": "", "score": 0.0, "answer_labels": ""}
        unreviewed = {"verdict": None, "review_id": None, "verdict_at": None}
        _write_rows(session, [{"item_id": item.id, "project_id": item.project_id, **empty, **unreviewed}])
    return session.get(Q, item.id, populate_existing=True)


def set_queue_verdict(*, session: Session, entry: ReviewQueueEntry, review: Review | None) -> None:
    """Point the item's queue row at its latest verdict (`None`: back to unreviewed) and keep the counts.

    `entry` must have been read holding the item's lock (`reviews.claim_for_verdict` or `reviews.lease_item`), so
    its verdict, the one replaced here, cannot have changed since.
    """
    previous = entry.verdict
    session.execute(
        update(Q)
        .where(Q.item_id == entry.item_id)
        .values(
            verdict=review.verdict if review else None,
            review_id=review.id if review else None,
            verdict_at=review.created_at if review else None,
        )
        .execution_options(synchronize_session=False)
    )
    change = (review is not None) - (previous is not None)
    if change:
        _bump_counts(session, {entry.project_id: (0, change)})


def review_context(
    *, session: Session, item_id: int
) -> Row[tuple[Item, Project, ReviewQueueEntry | None, Any]] | None:
    """(item, project, queue row or None, queued prediction or None) in one query; None if the item does not exist.

    Read fresh from the database (not from the session's identity map), as it is read right after taking a lock.
    """
    stmt = (
        select(Item, Project, Q, Prediction)
        .join(Project, Project.id == Item.project_id)
        .outerjoin(Q, Q.item_id == Item.id)
        .outerjoin(Prediction, Prediction.id == Q.prediction_id)
        .where(Item.id == item_id)
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).first()


def queue_counts(*, session: Session, project_id: int) -> tuple[int, int]:
    """(queue rows, rows with a verdict) of the project."""
    row = session.execute(select(COUNTS.c.queued, COUNTS.c.reviewed).where(COUNTS.c.project_id == project_id)).first()
    return (row.queued, row.reviewed) if row is not None else recount_queue(session=session, project_id=project_id)


def recount_queue(*, session: Session, project_id: int) -> tuple[int, int]:
    """Count the project's queue rows from scratch and store the counts (repairs them after rows were deleted)."""
    # Lock the counts row first: a transaction that already changed the counts has then committed, and one that
    # changes them later adds its change to what is written here.
    _bump_counts(session, {project_id: (0, 0)})
    queued, reviewed = session.execute(
        select(func.count(), func.count(Q.verdict)).select_from(Q).where(Q.project_id == project_id)
    ).one()
    session.execute(update(COUNTS).where(COUNTS.c.project_id == project_id).values(queued=queued, reviewed=reviewed))
    return queued, reviewed


# Reading the queue


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
    caller still takes the lease with `reviews.lease_item`, which decides.
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
    """Rows matching a filter, counted (the unfiltered totals are in `queue_counts`)."""
    stmt = _filtered(
        select(func.count()).select_from(Q), project_id=project_id, verdict=verdict, label=label, model_name=model_name
    )
    if exclude_item_id is not None:
        stmt = stmt.where(Q.item_id != exclude_item_id)
    return session.scalar(stmt) or 0


def queue_model_names(*, session: Session, project_id: int) -> list[str]:
    stmt = select(Q.model_name).where(Q.project_id == project_id, Q.model_name != "").distinct()
    return sorted(session.scalars(stmt))


def record_skip(*, session: Session, user_id: int, item_id: int, now: datetime) -> None:
    skip = session.get(ReviewSkip, (user_id, item_id))
    if skip is None:
        session.add(ReviewSkip(user_id=user_id, item_id=item_id, skipped_at=now))
    else:
        skip.skipped_at = now
    session.flush()

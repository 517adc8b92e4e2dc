"""Item leases, reviews and the annotations verdicts derive.

Leases live on `items` (`leased_by_id`, `lease_expires_at`) and are only ever taken by a conditional UPDATE whose
row count says whether it won, so two reviewers can never hold the same item, on SQLite or PostgreSQL alike. The
queue these items are drawn from is `db.crud.review_queue`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationSource, Item, Review, Verdict

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
    """Give back the items of the project leased to `user_id`, except `keep_item_id`."""
    stmt = update(Item).where(Item.leased_by_id == user_id, Item.project_id == project_id)
    if keep_item_id is not None:
        stmt = stmt.where(Item.id != keep_item_id)
    session.execute(stmt.values(leased_by_id=None, lease_expires_at=None).execution_options(synchronize_session=False))


def held_item(
    *, session: Session, user_id: int, project_id: int, exclude_item_ids: Collection[int] = ()
) -> int | None:
    """The item of the project leased to `user_id` with the latest lease end (even if the lease ran out but nobody
    took it over), other than `exclude_item_ids`."""
    stmt = select(Item.id).where(Item.leased_by_id == user_id, Item.project_id == project_id)
    if exclude_item_ids:
        stmt = stmt.where(Item.id.not_in(list(exclude_item_ids)))
    return session.scalar(stmt.order_by(Item.lease_expires_at.desc(), Item.id).limit(1))


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
    corrected_cot: str | None = None,
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
        corrected_cot=corrected_cot,
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

"""Reading a whole project out for exports, and writing what an import from another tool brings in.

Exports stream: `iter_item_records` pages through the project's items by id (keyset pagination, so every page
costs the same however deep into 100,000 items it is) and fetches each page's predictions, annotations and reviews
with one query each. It returns plain records, never ORM objects, so nothing accumulates in the session's identity
map and memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, func, select, type_coerce
from sqlalchemy.orm import Session

from db.models import Annotation, AnnotationSource, Item, ModelVersion, Prediction, Review, User

try:  # orjson (a gradio dependency) decodes JSON several times faster than the standard library.
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads


def _json(text: str | None) -> Any:
    # JSON columns are read as their raw text and decoded here: SQLAlchemy's own decoding uses the slower `json`.
    return None if text is None else _loads(text)


def _raw(column) -> Any:
    return type_coerce(column, Text)


@dataclass(slots=True)
class PredictionRecord:
    id: int
    model_name: str
    cot: str | None
    answer: Any
    score: float | None
    created_at: datetime | None


@dataclass(slots=True)
class AnnotationRecord:
    id: int
    answer: Any
    cot: str | None
    source: str
    author: str
    created_at: datetime | None
    time_spent_ms: int | None
    # The reviewer flagged the accepted prediction's reasoning as wrong: the CoT is not SFT data. Never set on a
    # correction, whose CoT (if any) the reviewer wrote; the flag there is about the model's reasoning.
    reasoning_wrong: bool = False


@dataclass(slots=True)
class ReviewRecord:
    id: int
    prediction_id: int | None
    verdict: str
    reviewer: str
    reasoning_wrong: bool
    comment: str
    created_at: datetime | None


@dataclass(slots=True)
class ItemRecord:
    id: int
    sha256: str
    media_path: str
    original_name: str
    width: int
    height: int
    split: str
    query: str | None
    predictions: list[PredictionRecord] = field(default_factory=list)
    annotations: list[AnnotationRecord] = field(default_factory=list)
    reviews: list[ReviewRecord] = field(default_factory=list)


def count_items(*, session: Session, project_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project_id)) or 0


def _predictions(session: Session, project_id: int, ids: Sequence[int]) -> dict[int, list[PredictionRecord]]:
    stmt = (
        select(
            Prediction.item_id,
            Prediction.id,
            Prediction.model_name,
            ModelVersion.name,
            Prediction.cot,
            _raw(Prediction.answer),
            Prediction.score,
            Prediction.created_at,
        )
        .outerjoin(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .join(Item, Item.id == Prediction.item_id)
        .where(Item.project_id == project_id, Prediction.item_id.between(ids[0], ids[-1]))
        .order_by(Prediction.id)
    )
    found: dict[int, list[PredictionRecord]] = {}
    for item_id, pid, model_name, version_name, cot, answer, score, created_at in session.connection().execute(stmt):
        record = PredictionRecord(pid, model_name or version_name or "", cot, _json(answer), score, created_at)
        found.setdefault(item_id, []).append(record)
    return found


def _annotations(session: Session, project_id: int, ids: Sequence[int]) -> dict[int, list[AnnotationRecord]]:
    stmt = (
        select(
            Annotation.item_id,
            Annotation.id,
            _raw(Annotation.answer),
            Annotation.cot,
            Annotation.source,
            User.username,
            Annotation.created_by_name,
            Annotation.created_at,
            Review.time_spent_ms,
            Review.reasoning_wrong,
        )
        .outerjoin(User, User.id == Annotation.created_by_id)
        .outerjoin(Review, Review.id == Annotation.review_id)
        .join(Item, Item.id == Annotation.item_id)
        .where(Item.project_id == project_id, Annotation.item_id.between(ids[0], ids[-1]))
        .order_by(Annotation.id)
    )
    found: dict[int, list[AnnotationRecord]] = {}
    for item_id, aid, answer, cot, source, username, name, created_at, spent, wrong in session.connection().execute(
        stmt
    ):
        source_value = source.value if isinstance(source, AnnotationSource) else str(source)
        author = username or name or ""
        flagged = bool(wrong) and source_value == AnnotationSource.accept.value
        record = AnnotationRecord(aid, _json(answer), cot, source_value, author, created_at, spent, flagged)
        found.setdefault(item_id, []).append(record)
    return found


def _reviews(session: Session, project_id: int, ids: Sequence[int]) -> dict[int, list[ReviewRecord]]:
    stmt = (
        select(
            Review.item_id,
            Review.id,
            Review.prediction_id,
            Review.verdict,
            User.username,
            Review.reasoning_wrong,
            Review.comment,
            Review.created_at,
        )
        .outerjoin(User, User.id == Review.reviewer_id)
        .join(Item, Item.id == Review.item_id)
        .where(Item.project_id == project_id, Review.item_id.between(ids[0], ids[-1]), Review.undone_at.is_(None))
        .order_by(Review.id)
    )
    found: dict[int, list[ReviewRecord]] = {}
    for item_id, rid, prediction_id, verdict, username, wrong, comment, created_at in session.connection().execute(
        stmt
    ):
        verdict_value = getattr(verdict, "value", verdict)
        record = ReviewRecord(rid, prediction_id, verdict_value, username or "", bool(wrong), comment, created_at)
        found.setdefault(item_id, []).append(record)
    return found


def iter_item_records(
    *, session: Session, project_id: int, batch_size: int = 1000, with_reviews: bool = True
) -> Iterator[ItemRecord]:
    """Every item of the project in id order, with its predictions, annotations and (not undone) reviews.

    A page's items are exactly the project's items with ids from its first to its last, so its rows are fetched
    by that id range (an index range scan) rather than by a list of a thousand bound ids.
    """
    last_id = 0
    while True:
        rows = session.execute(
            select(
                Item.id,
                Item.sha256,
                Item.media_path,
                Item.original_name,
                Item.width,
                Item.height,
                Item.split,
                Item.query,
            )
            .where(Item.project_id == project_id, Item.id > last_id)
            .order_by(Item.id)
            .limit(batch_size)
        ).all()
        if not rows:
            return
        ids = [row[0] for row in rows]
        predictions = _predictions(session, project_id, ids)
        annotations = _annotations(session, project_id, ids)
        reviews = _reviews(session, project_id, ids) if with_reviews else {}
        for item_id, sha, media_path, original_name, width, height, split, query in rows:
            yield ItemRecord(
                id=item_id,
                sha256=sha,
                media_path=media_path,
                original_name=original_name,
                width=width,
                height=height,
                split=getattr(split, "value", split),
                query=query,
                predictions=predictions.get(item_id, []),
                annotations=annotations.get(item_id, []),
                reviews=reviews.get(item_id, []),
            )
        last_id = ids[-1]
        # Nothing read above is an ORM object, but the session may hold some from the caller; keep it lean.
        session.expunge_all()


# Imports


def existing_answers(*, session: Session, item_id: int) -> tuple[list[Any], list[tuple[str, Any]]]:
    """The item's stored annotation answers and (model name, answer) of its predictions: an import's duplicate
    check, so importing the same export twice adds nothing the second time."""
    annotations = list(session.scalars(select(Annotation.answer).where(Annotation.item_id == item_id)))
    predictions = [
        (name, answer)
        for name, answer in session.execute(
            select(Prediction.model_name, Prediction.answer).where(Prediction.item_id == item_id)
        )
    ]
    return annotations, predictions


def create_imported_prediction(
    *,
    session: Session,
    item_id: int,
    model_name: str,
    raw_text: str,
    cot: str | None,
    answer: Any,
    score: float | None,
) -> Prediction:
    """A prediction brought in from another tool: no model version row, the model's name kept as text."""
    prediction = Prediction(
        item_id=item_id, model_name=model_name, raw_text=raw_text, cot=cot, answer=answer, score=score
    )
    session.add(prediction)
    session.flush()
    return prediction


def create_imported_annotation(
    *, session: Session, item_id: int, answer: Any, cot: str | None, author: str, created_at: datetime | None = None
) -> Annotation:
    """Trusted ground truth from another tool (source `import`), with its author and, when known, its time."""
    annotation = Annotation(
        item_id=item_id, answer=answer, cot=cot, source=AnnotationSource.imported, created_by_name=author[:255]
    )
    if created_at is not None:
        annotation.created_at = created_at
    session.add(annotation)
    session.flush()
    return annotation

"""Model predictions: which items still need one from a given model, and storing them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from db.models import Annotation, Item, ModelVersion, Prediction

# SQLite allows 32,766 bound parameters per statement; stay far below it for `IN (...)` lists.
_IN_CHUNK = 500


@dataclass(frozen=True)
class ItemToAnnotate:
    """The plain facts about an item that annotation needs (no ORM object leaves the transaction)."""

    id: int
    media_path: str
    original_name: str
    width: int
    height: int
    query: str | None


@dataclass(frozen=True)
class NewPrediction:
    item_id: int
    model_name: str
    raw_text: str
    cot: str | None
    answer: Any | None
    parse_error: str | None
    score: float | None
    model_version_id: int | None = None


def _clean_text(text: str | None) -> str | None:
    # PostgreSQL text columns refuse NUL characters, which a byte-level tokenizer can decode from random output.
    return None if text is None else text.replace("\x00", "")


def _needs_prediction(project_id: int, model_name: str):
    """WHERE clause: items of the project with no prediction from `model_name` and no trusted annotation."""
    has_prediction = exists().where(Prediction.item_id == Item.id, Prediction.model_name == model_name)
    has_annotation = exists().where(Annotation.item_id == Item.id)
    return (Item.project_id == project_id) & ~has_prediction & ~has_annotation


def items_to_annotate(
    *, session: Session, project_id: int, model_name: str, limit: int | None = None
) -> list[ItemToAnnotate]:
    """Items still waiting for a prediction from `model_name`, oldest first; those with a trusted annotation never
    need one."""
    stmt = (
        select(Item.id, Item.media_path, Item.original_name, Item.width, Item.height, Item.query)
        .where(_needs_prediction(project_id, model_name))
        .order_by(Item.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [ItemToAnnotate(*row) for row in session.execute(stmt)]


def item_ids_with_prediction(*, session: Session, item_ids: Iterable[int], model_name: str) -> set[int]:
    """Which of `item_ids` already hold a prediction from `model_name`."""
    wanted = sorted(set(item_ids))
    found: set[int] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        stmt = select(Prediction.item_id).where(Prediction.model_name == model_name, Prediction.item_id.in_(chunk))
        found.update(session.scalars(stmt))
    return found


def create_predictions(*, session: Session, predictions: Sequence[NewPrediction]) -> list[Prediction]:
    """Store `predictions`, skipping items that meanwhile got one from the same model (a concurrent or resumed
    run), so an item never holds two predictions from one model."""
    by_model: dict[str, list[NewPrediction]] = {}
    for new in predictions:
        by_model.setdefault(new.model_name, []).append(new)
    rows: list[Prediction] = []
    for model_name, group in by_model.items():
        taken = item_ids_with_prediction(session=session, item_ids=[p.item_id for p in group], model_name=model_name)
        for new in group:
            if new.item_id in taken:
                continue
            taken.add(new.item_id)
            rows.append(
                Prediction(
                    item_id=new.item_id,
                    model_name=model_name,
                    model_version_id=new.model_version_id,
                    raw_text=_clean_text(new.raw_text) or "",
                    cot=_clean_text(new.cot),
                    answer=new.answer,
                    parse_error=_clean_text(new.parse_error),
                    score=new.score,
                )
            )
    session.add_all(rows)
    session.flush()
    return rows


def list_predictions(
    *, session: Session, project_id: int | None = None, item_id: int | None = None, model_name: str | None = None
) -> list[Prediction]:
    stmt = select(Prediction)
    if project_id is not None:
        stmt = stmt.join(Item, Item.id == Prediction.item_id).where(Item.project_id == project_id)
    if item_id is not None:
        stmt = stmt.where(Prediction.item_id == item_id)
    if model_name is not None:
        stmt = stmt.where(Prediction.model_name == model_name)
    return list(session.scalars(stmt.order_by(Prediction.id)))


def find_model_version(*, session: Session, project_id: int, name: str) -> ModelVersion | None:
    """The newest model version called `name` registered for the project (or for all projects)."""
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.name == name, (ModelVersion.project_id == project_id) | ModelVersion.project_id.is_(None))
        .order_by(ModelVersion.project_id.is_(None), ModelVersion.id.desc())
    )
    return session.scalars(stmt.limit(1)).first()

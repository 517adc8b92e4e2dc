"""Helpers that fill a database for review tests: reviewers, items with predictions. Plain functions, no fixtures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from db.crud import users as user_crud
from db.models import Item, Prediction, Project, Role, User
from tests.utils.factories import make_item, make_project

# A record `verify_password` never accepts: tests that do not sign in skip the deliberately slow scrypt hash.
NO_PASSWORD = "!no-password"


def make_reviewer(session: Session, username: str = "ada", role: Role | str = Role.reviewer) -> User:
    return user_crud.create_user(session=session, username=username, password_hash=NO_PASSWORD, role=role)


def add_prediction(
    session: Session,
    item: Item,
    answer: Any,
    *,
    score: float | None = 0.5,
    model_name: str = "tiny-v1",
    cot: str | None = "I see a round outline.",
    parse_error: str | None = None,
) -> Prediction:
    prediction = Prediction(
        item_id=item.id,
        model_name=model_name,
        raw_text=f"<think>{cot or ''}</think><answer>{answer}</answer>",
        cot=cot,
        answer=answer,
        parse_error=parse_error,
        score=score,
    )
    session.add(prediction)
    session.flush()
    return prediction


def make_predicted_items(
    session: Session,
    project: Project,
    answers: Sequence[Any],
    *,
    scores: Sequence[float | None] | None = None,
    model_name: str = "tiny-v1",
    first_seed: int = 0,
) -> list[Item]:
    """One item per answer, each with one prediction; `scores` default to 0.5."""
    scores = list(scores) if scores is not None else [0.5] * len(answers)
    items = []
    for offset, (answer, score) in enumerate(zip(answers, scores, strict=True)):
        item = make_item(session, project, seed=first_seed + offset)
        add_prediction(session, item, answer, score=score, model_name=model_name)
        items.append(item)
    return items


def make_classification_queue(session: Session, n_items: int, name: str = "shapes") -> tuple[Project, list[Item]]:
    """A classification project with `n_items` predicted items whose scores rise with the item order."""
    project = make_project(session, name=name, labels=("circle", "square"))
    answers = ["circle" if i % 2 == 0 else "square" for i in range(n_items)]
    scores = [round(i / max(n_items, 1), 6) for i in range(n_items)]
    return project, make_predicted_items(session, project, answers, scores=scores)

"""What a verdict makes trusted: the prediction's answer (accept) or the reviewer's correction, each checked
against the project's task type and labels, with boxes clipped to the image, and the reasoning that goes with it
(the prediction's, or the one the reviewer wrote with a correction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.services.projects import task_spec_for
from app.services.review_types import InvalidAnswerError, InvalidVerdictError, ReviewError
from db.models import Item, Prediction, Project, Review, Verdict
from rise.answers import normalize_answer
from rise.parsing import reasoning_problem
from rise.tasks import TaskSpec


def project_spec(project: Project) -> TaskSpec:
    """The project's task rules; a `ReviewError` (shown to the reviewer) if its stored settings are invalid."""
    try:
        return task_spec_for(project)
    except ValueError as error:
        raise ReviewError(f"Project {project.name!r} is misconfigured: {error}") from None


def accepted_answer(item: Item, prediction: Prediction | None, spec: TaskSpec) -> Any:
    """The prediction's answer in canonical form, or an `InvalidVerdictError` if there is none to accept."""
    if prediction is None:
        raise InvalidVerdictError("There is no model answer to accept for this item: correct it or reject it.")
    if prediction.answer is None:
        reason = f" ({prediction.parse_error})" if prediction.parse_error else ""
        raise InvalidVerdictError(f"The model's answer could not be read{reason}: correct it or reject it.")
    try:
        return normalize_answer(prediction.answer, spec, item.width, item.height)
    except ValueError as error:
        raise InvalidVerdictError(f"The model's answer does not fit this project ({error}): correct it.") from None


def validate_correction(answer: Any, spec: TaskSpec, width: int, height: int) -> Any:
    """The corrected answer in canonical form (labels canonical, distributions summing to 1, boxes clipped)."""
    if answer is None:
        raise InvalidAnswerError("A correction needs the corrected answer: pick a label or draw the boxes first.")
    try:
        return normalize_answer(answer, spec, width, height)
    except ValueError as error:
        raise InvalidAnswerError(f"The correction cannot be saved: {error}") from None


def written_reasoning(text: str, max_chars: int) -> str | None:
    """A reasoning the reviewer wrote, stripped (None if blank), or an `InvalidAnswerError` saying why it cannot
    teach the model as it is."""
    text = text.strip()
    if not text:
        return None
    if len(text) > max_chars:
        raise InvalidAnswerError(f"The reasoning is too long ({len(text)} characters); keep it under {max_chars}.")
    problem = reasoning_problem(text)
    if problem:
        raise InvalidAnswerError(f"The reasoning cannot be saved: {problem}.")
    return text


def annotation_for(
    review: Review, item: Item, spec: TaskSpec, session: Session, prediction: Prediction | None = None
) -> tuple[Any, str | None] | None:
    """The (answer, CoT) a recorded verdict makes trusted, or None for a reject."""
    if review.verdict is Verdict.correct:
        return review.corrected_answer, review.corrected_cot
    if review.verdict is Verdict.accept:
        if prediction is None or prediction.id != review.prediction_id:
            prediction = session.get(Prediction, review.prediction_id) if review.prediction_id else None
        answer = accepted_answer(item, prediction, spec)
        return answer, None if review.reasoning_wrong else prediction.cot
    return None

"""What the review buttons do, without Gradio: read the reviewer's edits, choose the verdict, call the review service.

Each function takes the task on screen and the editor values, and returns an `Outcome`: the next task to show and a
message for the status line. The Gradio layer (`app.ui.review`) only turns outcomes into component updates, so these
functions are what the handler tests exercise.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import AppError
from app.runtime import Runtime
from app.services import review as review_service
from app.services.review import QueueFilter, ReviewTask
from app.ui import render
from app.ui.stage import can_show_early

ORDER_CHOICES = [("Lowest confidence first", "confidence"), ("Oldest first", "oldest")]
VERDICT_CHOICES = [("Not reviewed yet", ""), ("Accepted", "accept"), ("Corrected", "correct"), ("Rejected", "reject")]
ANY = ""  # dropdown value meaning "no filter"
# Items leased ahead of the one on screen (`app.ui.stage`): enough to stay ahead of the server through a quick run of
# verdicts, few enough that a reviewer who leaves holds little of the queue until their leases run out.
LOOKAHEAD = 3
# Verdict keys typed ahead of the server that the page may send in one action (`apply_typed_keys`).
MAX_TYPED_AHEAD = 10


@dataclass(frozen=True)
class Pace:
    """How an action moves on to the next items: how many it leases ahead, which items ahead the page already holds
    (None: the task's own `upcoming`), and the time spent on the item when the page measured it (None: measured from
    when the server showed it)."""

    lookahead: int = LOOKAHEAD
    known: Sequence[ReviewTask] | None = None
    time_spent_ms: int | None = None

    def known_for(self, task: ReviewTask) -> Sequence[ReviewTask]:
        return task.upcoming if self.known is None else self.known


DEFAULT_PACE = Pace()


class ReviewInputError(AppError, ValueError):
    """The reviewer's input cannot be submitted as it is; the message says what to do."""


@dataclass
class Outcome:
    task: ReviewTask | None
    message: str


@dataclass
class Edits:
    """The editors' values when a button was pressed."""

    # gradio_image_annotation value {"image": ..., "boxes": [...]}; None when no box editor is on screen.
    annotator: dict[str, Any] | None = None
    label: str | None = None
    distribution_rows: list[list[Any]] | None = None
    reasoning_wrong: bool = False
    # The reviewer's own reasoning; saved with a correction (an accept that comes with one becomes a correction).
    reasoning: str = ""
    comment: str = ""
    scale: int = 1  # how many times the image on screen is enlarged (app.ui.display)


def queue_filter(order: str | None, label: str | None, verdict: str | None, model_name: str | None) -> QueueFilter:
    return QueueFilter(
        label=label or None,
        verdict=verdict or None,
        model_name=model_name or None,
        order=order or "confidence",
    )


def is_distribution(task: ReviewTask) -> bool:
    return task.task_type == "classification" and task.distribution


def edited_answer(task: ReviewTask, edits: Edits) -> Any:
    """The answer as the editors show it now (pixels), in the task's answer shape.

    Raises:
        ReviewInputError: the editor holds no usable answer (no label picked, no grounding box, bad probabilities).
    """
    if task.task_type == "classification":
        if is_distribution(task):
            try:
                return render.rows_to_distribution(edits.distribution_rows or [], task.labels)
            except ValueError as error:
                raise ReviewInputError(str(error)) from None
        if not edits.label:
            raise ReviewInputError("Pick the right label first (keys 1–9 or click it).")
        if edits.label not in task.labels:
            raise ReviewInputError(f"{edits.label!r} is not one of this project's labels.")
        return edits.label
    if edits.annotator is None:
        raise ReviewInputError("The image is not on screen, so its boxes cannot be edited: accept, reject or skip.")
    boxes = edits.annotator.get("boxes") or []
    answer = render.boxes_to_answer(task.task_type, boxes, width=task.width, height=task.height, scale=edits.scale)
    if task.task_type == "grounding" and answer is None:
        raise ReviewInputError("Draw the box the query refers to first (click the image, then C).")
    if task.task_type == "detection":
        unlabelled = [i + 1 for i, obj in enumerate(answer) if not obj["label"]]
        if unlabelled:
            raise ReviewInputError(f"Give box {unlabelled[0]} a label first (select it, then E).")
    return answer


def is_edited(task: ReviewTask, edits: Edits) -> bool:
    """Whether the editors differ from the model's answer (a box moved, a label changed, ...)."""
    if task.task_type == "classification":
        if is_distribution(task):
            try:
                shown = render.rows_to_distribution(edits.distribution_rows or [], task.labels)
            except ValueError:
                return True
            predicted = task.answer if isinstance(task.answer, dict) else {}
            return any(
                not math.isclose(shown.get(label, 0.0), float(predicted.get(label, 0.0)), abs_tol=1e-3)
                for label in task.labels
            )
        return (edits.label or None) != task.answer
    if edits.annotator is None:
        return False  # nothing on screen to edit
    shown_boxes = edits.annotator.get("boxes") or []
    predicted = render.answer_to_boxes(task.task_type, task.answer, task.labels, scale=edits.scale)
    return render.boxes_signature(shown_boxes) != render.boxes_signature(predicted)


def _elapsed_ms(shown_at: float | None) -> int | None:
    return None if shown_at is None else max(0, round((time.monotonic() - shown_at) * 1000))


def _require(task: ReviewTask | None) -> ReviewTask:
    if task is None:
        raise ReviewInputError("There is no item on screen. Pick a project or change the queue filters.")
    return task


def load(runtime: Runtime, *, user_id: int, project_id: int | None, queue: QueueFilter) -> Outcome:
    if project_id is None:
        return Outcome(None, "Pick a project to start reviewing.")
    task = review_service.next_task(runtime, project_id=project_id, user_id=user_id, queue=queue, lookahead=LOOKAHEAD)
    return Outcome(task, "" if task else "Nothing left to review with these filters.")


def _next_message(task: ReviewTask | None, done: str) -> str:
    return done if task is not None else f"{done} That was the last item in this queue."


_DONE = {"accept": "accepted", "correct": "corrected", "reject": "rejected"}


def _submit(
    runtime: Runtime,
    verdict: str,
    *,
    user_id: int,
    task: ReviewTask,
    edits: Edits,
    shown_at: float | None,
    queue: QueueFilter,
    answer: Any = None,
    pace: Pace = DEFAULT_PACE,
) -> Outcome:
    """Record `verdict` on the task on screen, with the reviewer's reasoning flag, their own reasoning (`correct`
    only), comment and time spent on it
    (measured from `shown_at` unless `pace` says it; `answer`: the corrected answer, for `correct` only); the
    outcome shows the reviewer's next task, with `pace.lookahead` items leased after it."""
    next_task = review_service.submit_verdict(
        runtime,
        user_id=user_id,
        item_id=task.item_id,
        verdict=verdict,
        corrected_answer=answer,
        reasoning_wrong=edits.reasoning_wrong,
        corrected_cot=edits.reasoning if verdict == "correct" else "",
        comment=edits.comment.strip(),
        time_spent_ms=_elapsed_ms(shown_at) if pace.time_spent_ms is None else pace.time_spent_ms,
        queue=queue,
        prediction_id=task.prediction_id,
        lookahead=pace.lookahead,
        known=pace.known_for(task),
    )
    return Outcome(next_task, _next_message(next_task, f"Item #{task.item_id} {_DONE[verdict]}."))


def accept(
    runtime: Runtime,
    *,
    user_id: int,
    task: ReviewTask | None,
    edits: Edits,
    shown_at: float | None,
    queue: QueueFilter,
    pace: Pace = DEFAULT_PACE,
) -> Outcome:
    """Accept what is on screen. If the reviewer changed the answer or wrote their own reasoning first, what is saved
    is their version, as a correction: the stored annotation always matches what they saw when they pressed Accept."""
    task = _require(task)
    if is_edited(task, edits) or edits.reasoning.strip():
        outcome = correct(
            runtime,
            user_id=user_id,
            task=task,
            edits=edits,
            shown_at=shown_at,
            queue=queue,
            pace=pace,
        )
        return Outcome(outcome.task, _next_message(outcome.task, f"Item #{task.item_id} saved as a correction."))
    if task.answer is None:
        raise ReviewInputError("The model gave no readable answer to accept: correct it (S) or reject it (R).")
    return _submit(
        runtime,
        "accept",
        user_id=user_id,
        task=task,
        edits=edits,
        shown_at=shown_at,
        queue=queue,
        pace=pace,
    )


def correct(
    runtime: Runtime,
    *,
    user_id: int,
    task: ReviewTask | None,
    edits: Edits,
    shown_at: float | None,
    queue: QueueFilter,
    pace: Pace = DEFAULT_PACE,
) -> Outcome:
    task = _require(task)
    answer = edited_answer(task, edits)
    if task.answer is not None and not is_edited(task, edits) and not edits.reasoning.strip():
        raise ReviewInputError(
            "Nothing was changed. Edit the answer or write your reasoning (Y) first, or accept it as it is (A)."
        )
    return _submit(
        runtime,
        "correct",
        user_id=user_id,
        task=task,
        edits=edits,
        shown_at=shown_at,
        queue=queue,
        answer=answer,
        pace=pace,
    )


def reject(
    runtime: Runtime,
    *,
    user_id: int,
    task: ReviewTask | None,
    edits: Edits,
    shown_at: float | None,
    queue: QueueFilter,
    pace: Pace = DEFAULT_PACE,
) -> Outcome:
    task = _require(task)
    if edits.reasoning.strip():
        # Dropping it would lose what the reviewer wrote; a reasoning teaches only beside the answer it explains.
        raise ReviewInputError(
            "Your reasoning is saved with a correction: pick the right answer and press S, or clear the reasoning "
            "to reject (the comment (M) takes a reject reason)."
        )
    return _submit(
        runtime,
        "reject",
        user_id=user_id,
        task=task,
        edits=edits,
        shown_at=shown_at,
        queue=queue,
        pace=pace,
    )


def skip(
    runtime: Runtime,
    *,
    user_id: int,
    task: ReviewTask | None,
    queue: QueueFilter,
    pace: Pace = DEFAULT_PACE,
) -> Outcome:
    task = _require(task)
    next_task = review_service.skip_task(
        runtime,
        user_id=user_id,
        item_id=task.item_id,
        queue=queue,
        lookahead=pace.lookahead,
        known=pace.known_for(task),
    )
    return Outcome(next_task, _next_message(next_task, f"Item #{task.item_id} skipped."))


def undo(runtime: Runtime, *, user_id: int, project_id: int | None, current: ReviewTask | None) -> Outcome:
    if project_id is None:
        raise ReviewInputError("Pick a project first.")
    task = review_service.undo_last(runtime, user_id=user_id, project_id=project_id, lookahead=LOOKAHEAD)
    if task is None:
        return Outcome(current, "Nothing to undo.")
    return Outcome(task, f"Undid your last verdict; item #{task.item_id} is back on screen.")


@dataclass(frozen=True)
class TypedKey:
    """A verdict key the reviewer typed while the server was still busy with the keys before it."""

    key: str  # "a" accept, "r" reject, "n" skip
    item_id: int  # the item on screen when it was pressed
    on_screen_ms: int | None  # how long that item was on screen before the key (None: the server measures it)


TYPED_ACTIONS = {"a": "accept", "r": "reject", "n": "skip"}


def parse_typed_keys(text: str) -> list[TypedKey]:
    """The page's list of typed keys, `[{"key": "a", "item": 12, "ms": 840}, ...]`.

    Raises:
        ReviewInputError: not such a list, or longer than `MAX_TYPED_AHEAD`.
    """
    try:
        entries = json.loads(text)
        if not isinstance(entries, list) or not 0 < len(entries) <= MAX_TYPED_AHEAD:
            raise ValueError
        keys = []
        for entry in entries:
            key, item_id, ms = entry["key"], entry["item"], entry.get("ms")
            if key not in TYPED_ACTIONS or type(item_id) is not int or not (ms is None or type(ms) is int and ms >= 0):
                raise ValueError
            keys.append(TypedKey(key, item_id, ms))
    except (ValueError, TypeError, KeyError):
        raise ReviewInputError("The keys typed ahead could not be read; press them again.") from None
    return keys


def apply_typed_keys(
    runtime: Runtime,
    *,
    user_id: int,
    task: ReviewTask | None,
    edits: Edits,
    shown_at: float | None,
    queue: QueueFilter,
    keys: list[TypedKey],
) -> Outcome:
    """Apply verdict keys typed ahead of the server, in order, each to the item that was on screen when it was
    pressed: the first with the editors' values (it is the item the server has on screen), the ones after it as the
    model proposed them. Those were shown before the server confirmed them, which only single-label classification
    items are (`app.ui.stage`), and nothing on them could be edited.

    It stops at a key whose item is not the reviewer's next one any more (a filter or another window moved the queue
    on), and at a key that fails after others succeeded: those keys were meant for items whose turn did not come.

    Raises:
        ReviewInputError, review_service.ReviewError: the first key failed; nothing was saved.
    """
    messages: list[str] = []
    known = task.upcoming if task is not None else ()
    for index, typed in enumerate(keys):
        if task is None or task.item_id != typed.item_id or (index and not can_show_early(task)):
            messages.append("The keys typed after it were for other items and were dropped.")
            break
        last = index == len(keys) - 1
        # The tasks ahead as the page showed them: each step's next item is one of them, and is not read again. Only
        # the last step's next items are leased ahead: the others' are the typed keys' own items.
        pace = Pace(
            lookahead=LOOKAHEAD if last else 0, known=known, time_spent_ms=typed.on_screen_ms if index else None
        )
        step: dict[str, Any] = {"runtime": runtime, "user_id": user_id, "task": task, "queue": queue, "pace": pace}
        action = TYPED_ACTIONS[typed.key]
        if action != "skip":
            step["edits"] = edits if index == 0 else Edits(label=task.answer, scale=edits.scale)
            step["shown_at"] = shown_at
        try:
            outcome = {"accept": accept, "reject": reject, "skip": skip}[action](**step)
        except (ReviewInputError, review_service.ReviewError) as error:
            if index == 0:
                raise
            messages.append(str(error))
            break
        messages.append(outcome.message)
        task = outcome.task
    return Outcome(task, " ".join(messages))

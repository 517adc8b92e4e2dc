"""Reviewing: lease the next item, record a verdict, skip, undo.

Each item is leased to one reviewer at a time (`LEASE_DURATION`); a lease is taken by a conditional UPDATE that
only one transaction can win, so two reviewers never see the same item at once and a verdict on an item someone
else holds is refused. Verdicts (docs/design.md §3):

| verdict | records | trusted annotation |
|---|---|---|
| accept | Review | the prediction's answer, with its CoT unless the reasoning was flagged wrong |
| correct | Review with the corrected answer (validated, boxes clipped to the image) | the corrected answer |
| reject | Review | none: a negative signal for training |

Reviews are append-only: a later verdict on the same item supersedes the earlier one (its annotation is replaced),
and undo marks a review `undone_at`, removes its annotation and brings back the previous verdict's, if any. Items
of the evaluation split are reviewed like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.runtime import Runtime
from app.services import review_answers
from app.services.review_types import (
    AlreadyReviewedError,
    DatabaseBusyError,
    InvalidAnswerError,
    InvalidVerdictError,
    ItemNotFoundError,
    LeaseConflictError,
    QueueFilter,
    QueueOptions,
    ReviewError,
    ReviewTask,
)
from db.crud import review_queue as queue_crud
from db.crud import reviews as crud
from db.crud import users as user_crud
from db.models import Item, Prediction, Project, User, Verdict, utcnow
from db.session import WriteLockTimeout, is_database_busy, write_transaction

__all__ = [
    "LEASE_DURATION",
    "AlreadyReviewedError",
    "DatabaseBusyError",
    "InvalidAnswerError",
    "InvalidVerdictError",
    "ItemNotFoundError",
    "LeaseConflictError",
    "QueueFilter",
    "QueueOptions",
    "ReviewError",
    "ReviewTask",
    "next_task",
    "queue_options",
    "release_task",
    "skip_task",
    "submit_verdict",
    "undo_last",
]

LEASE_DURATION = timedelta(minutes=20)
# How much sooner the lease of each item held ahead of the reviewer's screen ends (`_with_upcoming`).
LOOKAHEAD_LEASE_GAP = timedelta(seconds=1)
MAX_LOOKAHEAD = 10
# Candidates tried per request before giving up; each failed try means another reviewer just took that item.
MAX_LEASE_ATTEMPTS = 20
MAX_COMMENT_CHARS = 10_000


# Transactions


@contextmanager
def _write_transaction(runtime: Runtime) -> Iterator[Session]:
    """One review use case, one short write transaction, holding SQLite's write lock from its start. A database still
    locked by others after the lock timeout (`RISE_DB_LOCK_TIMEOUT_S`) is a `DatabaseBusyError`: nothing was saved,
    the reviewer's leases are as they were, and trying again works."""
    busy = DatabaseBusyError("The database is busy; nothing was saved. Try again.")
    try:
        with write_transaction(runtime.sessions, runtime.engine) as session:
            yield session
    except WriteLockTimeout:
        raise busy from None
    except DBAPIError as error:
        if is_database_busy(error):
            raise busy from None
        raise


# Input checks


def _checked_filter(queue: QueueFilter | None) -> QueueFilter:
    queue = queue or QueueFilter()
    if queue.order not in queue_crud.QUEUE_ORDERS:
        raise ReviewError(f"Unknown queue order {queue.order!r}; use one of: {', '.join(queue_crud.QUEUE_ORDERS)}.")
    verdict = queue.verdict or None
    if verdict is not None:
        verdict = _checked_verdict(verdict).value
    return QueueFilter(
        label=(queue.label or "").strip() or None,
        verdict=verdict,
        model_name=(queue.model_name or "").strip() or None,
        order=queue.order,
    )


def _checked_lookahead(lookahead: int) -> int:
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or not 0 <= lookahead <= MAX_LOOKAHEAD:
        raise ReviewError(f"lookahead must be a whole number of items from 0 to {MAX_LOOKAHEAD}, got {lookahead!r}.")
    return lookahead


def _checked_verdict(verdict: Verdict | str) -> Verdict:
    try:
        return Verdict(verdict)
    except ValueError:
        raise InvalidVerdictError(
            f"Unknown verdict {verdict!r}; use one of: {', '.join(v.value for v in Verdict)}."
        ) from None


def _require_reviewer(session: Session, user_id: int) -> User:
    user = user_crud.get_user(session=session, user_id=user_id)
    if user is None or not user.is_active:
        raise ReviewError("Your account does not exist or was deactivated; sign in again or ask an admin.")
    return user


def _require_item(session: Session, item_id: int) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise ItemNotFoundError(f"Item #{item_id} does not exist (was it deleted?). Load the queue again.")
    return item


# Leasing the next item


def _still_fits(session: Session, *, item_id: int, project_id: int, queue: QueueFilter) -> bool:
    """Whether an item the reviewer holds still belongs in their queue (it may be up for a second look)."""
    if queue == QueueFilter(order=queue.order):
        # The whole queue, any verdict: an item of the project (`held_item` only names those) always belongs.
        return True
    return queue_crud.queue_item_matches(
        session=session,
        item_id=item_id,
        project_id=project_id,
        any_verdict=queue.verdict is None,
        verdict=queue.verdict,
        label=queue.label,
        model_name=queue.model_name,
    )


def _lease_from_queue(
    session: Session, *, project_id: int, user_id: int, queue: QueueFilter, now: datetime, until: datetime
) -> int | None:
    """Lease the first item of the queue that nobody holds (the items this reviewer skipped last)."""
    filters = {"verdict": queue.verdict, "label": queue.label, "model_name": queue.model_name}
    for skipped in (False, True):
        for _ in range(MAX_LEASE_ATTEMPTS):
            candidate = queue_crud.next_queue_item(
                session=session,
                project_id=project_id,
                user_id=user_id,
                now=now,
                order=queue.order,
                skipped=skipped,
                **filters,
            )
            if candidate is None:
                break
            if not crud.lease_item(session=session, item_id=candidate, user_id=user_id, until=until, now=now):
                continue  # another reviewer took it between our look and our lease
            # The lease locks the row; checked again after it, a verdict that landed just before cannot slip by.
            if queue_crud.queue_item_matches(session=session, item_id=candidate, project_id=project_id, **filters):
                return candidate
            crud.release_item(session=session, item_id=candidate, user_id=user_id)
    return None


def _lease_held_or_next(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    queue: QueueFilter,
    now: datetime,
    until: datetime,
    exclude_item_ids: Collection[int] = (),
) -> int | None:
    """Renew the item the reviewer holds (the newest lease, other than `exclude_item_ids`) if it still fits the
    queue, else give it back and lease the next one."""
    held = crud.held_item(session=session, user_id=user_id, project_id=project_id, exclude_item_ids=exclude_item_ids)
    if held is not None:
        if _still_fits(session, item_id=held, project_id=project_id, queue=queue) and crud.lease_item(
            session=session, item_id=held, user_id=user_id, until=until, now=now
        ):
            return held
        crud.release_item(session=session, item_id=held, user_id=user_id)
    return _lease_from_queue(session, project_id=project_id, user_id=user_id, queue=queue, now=now, until=until)


def _lease_next(session: Session, *, project_id: int, user_id: int, queue: QueueFilter) -> int | None:
    """The item for the reviewer's screen: the one they hold (after a verdict, the one leased ahead), else the
    queue's next."""
    now = utcnow()
    return _lease_held_or_next(
        session, project_id=project_id, user_id=user_id, queue=queue, now=now, until=now + LEASE_DURATION
    )


def _with_upcoming(
    session: Session,
    runtime: Runtime,
    task: ReviewTask,
    *,
    user_id: int,
    queue: QueueFilter,
    depth: int,
    known: Sequence[ReviewTask] = (),
) -> None:
    """Lease up to `depth` items ahead of `task`, in queue order, and attach them as `task.upcoming`. An item among
    `known` (the tasks ahead that the caller has already shown) is not read again: its lease is renewed and its
    task kept as the page has it, so what a verdict records is what was on screen.

    The i-th item's lease ends i times `LOOKAHEAD_LEASE_GAP` before the one on screen, so `held_item` (newest lease
    first) names the item on screen while all are held, and the first item ahead once a verdict released it.
    """
    now = utcnow()
    chosen = [task.item_id]
    upcoming = []
    for rank in range(1, depth + 1):
        until = now + LEASE_DURATION - rank * LOOKAHEAD_LEASE_GAP
        ahead = _lease_held_or_next(
            session,
            project_id=task.project_id,
            user_id=user_id,
            queue=queue,
            now=now,
            until=until,
            exclude_item_ids=chosen,
        )
        if ahead is None:
            break
        chosen.append(ahead)
        # Once the items before it have their verdicts, this one is that much further on, with that many fewer left.
        progress = (task.position + rank, max(task.remaining - rank, 0))
        shown = next((known_task for known_task in known if known_task.item_id == ahead), None)
        if shown is not None:
            position, remaining = progress
            shown = dataclasses.replace(
                shown, position=position, remaining=remaining, upcoming=(), lease_expires_at=until
            )
        upcoming.append(shown or _task(session, runtime, item_id=ahead, queue=queue, progress=progress))
    task.upcoming = tuple(upcoming)


def _task(
    session: Session,
    runtime: Runtime,
    *,
    item_id: int,
    queue: QueueFilter,
    progress: tuple[int, int] | None = None,
) -> ReviewTask:
    """The leased item as a `ReviewTask`: one query for the item, its project, queue row and prediction (and the
    queue's counts, unless `progress` gives its position and the items left after it)."""
    context = queue_crud.review_context(session=session, item_id=item_id)
    if context is None:
        raise ItemNotFoundError(f"Item #{item_id} does not exist (was it deleted?). Load the queue again.")
    item, project, entry, prediction = context
    if progress is not None:
        position, remaining = progress
    else:
        position, remaining = _progress(session, project_id=project.id, item_id=item_id, entry=entry, queue=queue)
    return ReviewTask(
        item_id=item.id,
        project_id=project.id,
        task_type=project.task_type,
        labels=list(project.labels),
        image_path=str(runtime.settings.media_dir / item.media_path),
        width=item.width,
        height=item.height,
        query=item.query,
        prediction_id=prediction.id if prediction else None,
        model_name=prediction.model_name if prediction else "",
        raw_text=prediction.raw_text if prediction else "",
        cot=prediction.cot if prediction else None,
        answer=prediction.answer if prediction else None,
        parse_error=prediction.parse_error if prediction else None,
        score=prediction.score if prediction else None,
        lease_expires_at=item.lease_expires_at,
        position=position,
        remaining=max(remaining, 0),
        distribution=project.distribution,
        verdict=entry.verdict.value if entry is not None and entry.verdict is not None else None,
        split=item.split.value,
    )


def _progress(session: Session, *, project_id: int, item_id: int, entry: Any, queue: QueueFilter) -> tuple[int, int]:
    """The item's number in the project's progress (items with a verdict, plus one) and the other items left in
    this queue."""
    queued, reviewed = queue_crud.queue_counts(session=session, project_id=project_id)
    if queue == QueueFilter(order=queue.order):
        # The whole queue: from the stored counts, not a count over every row of the project.
        return reviewed + 1, queued - reviewed - (1 if entry is not None and entry.verdict is None else 0)
    remaining = queue_crud.count_queue(
        session=session,
        project_id=project_id,
        verdict=queue.verdict,
        label=queue.label,
        model_name=queue.model_name,
        exclude_item_id=item_id,
    )
    return reviewed + 1, remaining


def _sync_first(session: Session) -> None:
    """Copy new predictions into the queue. Called first in a transaction, before it locks any item or queue row:
    syncs upsert queue rows in item order, so two of them cannot deadlock, and nothing else is held meanwhile."""
    queue_crud.sync_review_queue(session=session)


def _next_in(
    session: Session,
    runtime: Runtime,
    *,
    project_id: int,
    user_id: int,
    queue: QueueFilter,
    lookahead: int = 0,
    known: Sequence[ReviewTask] = (),
) -> ReviewTask | None:
    """Lease and load the reviewer's next task inside the caller's transaction (which synced the queue first), with
    the `lookahead` items after it leased ahead as its `upcoming` (those among `known` are not read again).

    A verdict and the lease of the next item commit together: one transaction per round trip, and a reviewer can
    never be left with a recorded verdict but no next item because of a failure in between.
    """
    item_id = _lease_next(session, project_id=project_id, user_id=user_id, queue=queue)
    if item_id is None and queue.verdict is None:
        # Nothing found: make sure no prediction slipped past the sync (see reconcile_review_queue), and that the
        # counts agree with the rows (items deleted since would have left them too high).
        if queue_crud.reconcile_review_queue(session=session, project_id=project_id):
            item_id = _lease_next(session, project_id=project_id, user_id=user_id, queue=queue)
        if item_id is None:
            queue_crud.recount_queue(session=session, project_id=project_id)
    if item_id is None:
        return None
    task = _task(session, runtime, item_id=item_id, queue=queue)
    if lookahead:
        _with_upcoming(session, runtime, task, user_id=user_id, queue=queue, depth=lookahead, known=known)
    return task


def next_task(
    runtime: Runtime,
    *,
    project_id: int,
    user_id: int,
    queue: QueueFilter | None = None,
    lookahead: int = 0,
) -> ReviewTask | None:
    """Lease the next item of the queue to `user_id` and return it, or `None` when the queue is empty.

    The reviewer's current item comes back first (its lease renewed) unless it no longer fits the filter; an item
    someone else holds is never returned. Items the reviewer skipped come after all the others. With `lookahead`,
    that many items after it are leased too and come as the task's `upcoming`, in queue order (so do the other
    actions' next tasks), up to `MAX_LOOKAHEAD`.
    """
    queue = _checked_filter(queue)
    lookahead = _checked_lookahead(lookahead)
    with _write_transaction(runtime) as session:
        _sync_first(session)
        _require_reviewer(session, user_id)
        if session.get(Project, project_id) is None:
            raise ReviewError(f"Project #{project_id} does not exist. Pick a project again.")
        return _next_in(session, runtime, project_id=project_id, user_id=user_id, queue=queue, lookahead=lookahead)


# Verdicts


def _holder_message(session: Session, item: Item, consequence: str) -> str:
    holder = user_crud.get_user(session=session, user_id=item.leased_by_id) if item.leased_by_id else None
    name = holder.username if holder else "another reviewer"
    return f"Item #{item.id} is being reviewed by {name}; {consequence}"


def submit_verdict(
    runtime: Runtime,
    *,
    user_id: int,
    item_id: int,
    verdict: Verdict | str,
    corrected_answer: Any = None,
    reasoning_wrong: bool = False,
    corrected_cot: str = "",
    comment: str = "",
    time_spent_ms: int | None = None,
    queue: QueueFilter | None = None,
    prediction_id: int | None = None,
    lookahead: int = 0,
    known: Sequence[ReviewTask] = (),
) -> ReviewTask | None:
    """Record a verdict on an item, release its lease and return the reviewer's next task (same `queue`).

    `corrected_answer` and `corrected_cot` (the reviewer's own reasoning for it, which becomes the annotation's CoT
    and so SFT data) are used by `correct` only. `prediction_id` names the prediction that was on screen (default:
    the item's newest). `known`: the tasks ahead the reviewer's page already holds (the `upcoming` of the task on
    screen); those among the next ones are not read again. Refused with a `ReviewError` if someone else holds the
    item, if the item already has a verdict and was not leased to this reviewer for a second look, or if the answer
    does not fit the project.
    """
    verdict = _checked_verdict(verdict)
    queue = _checked_filter(queue)
    lookahead = _checked_lookahead(lookahead)
    if len(comment) > MAX_COMMENT_CHARS:
        raise ReviewError(f"The comment is too long ({len(comment)} characters); keep it under {MAX_COMMENT_CHARS}.")
    if time_spent_ms is not None and (not isinstance(time_spent_ms, int) or time_spent_ms < 0):
        raise ReviewError(f"time_spent_ms must be a non-negative integer of milliseconds, got {time_spent_ms!r}.")
    reasoning = None
    if verdict is Verdict.correct:
        reasoning = review_answers.written_reasoning(corrected_cot, MAX_COMMENT_CHARS)
    with _write_transaction(runtime) as session:
        _sync_first(session)
        _require_reviewer(session, user_id)
        now = utcnow()
        # Takes the item's row lock (SQLite: the write lock) before the item's state is read, so verdicts on one item
        # are decided one after the other.
        claim = crud.claim_for_verdict(session=session, item_id=item_id, user_id=user_id, now=now)
        context = queue_crud.review_context(session=session, item_id=item_id)
        if context is None:
            raise ItemNotFoundError(f"Item #{item_id} does not exist (was it deleted?). Load the queue again.")
        item, project, entry, prediction = context
        if claim is None:
            raise LeaseConflictError(_holder_message(session, item, "your verdict was not saved. Take the next item."))
        if entry is None:  # the item has no prediction, or the sync has not reached it yet
            entry = queue_crud.ensure_queue_entry(session=session, item=item)
            prediction = session.get(Prediction, entry.prediction_id) if entry.prediction_id is not None else None
        if claim == "free" and entry.verdict is not None:
            raise AlreadyReviewedError(
                f"Item #{item.id} was already {entry.verdict.value}ed by another review; your verdict was not saved. "
                f"Open the queue of {entry.verdict.value}ed items to look at it again."
            )
        if prediction_id is not None and prediction_id != (prediction.id if prediction else None):
            prediction = session.get(Prediction, prediction_id)
            if prediction is None or prediction.item_id != item.id:
                raise ReviewError(f"Prediction #{prediction_id} does not belong to item #{item.id}. Load it again.")
        spec = review_answers.project_spec(project)
        correction = None
        if verdict is Verdict.correct:
            correction = review_answers.validate_correction(corrected_answer, spec, item.width, item.height)
        elif verdict is Verdict.accept:
            review_answers.accepted_answer(item, prediction, spec)  # refuse before anything is written
        review = crud.create_review(
            session=session,
            item_id=item.id,
            prediction_id=prediction.id if prediction else None,
            reviewer_id=user_id,
            verdict=verdict,
            corrected_answer=correction,
            reasoning_wrong=bool(reasoning_wrong),
            corrected_cot=reasoning,
            comment=comment,
            time_spent_ms=time_spent_ms,
            now=now,
        )
        if entry.verdict is not None:
            # The newest verdict is the item's trusted answer; the annotation of the one it replaces goes.
            crud.delete_review_annotations(session=session, item_id=item.id)
        derived = review_answers.annotation_for(review, item, spec, session, prediction)
        if derived is not None:
            crud.create_review_annotation(session=session, review=review, answer=derived[0], cot=derived[1])
        queue_crud.set_queue_verdict(session=session, entry=entry, review=review)
        return _next_in(
            session,
            runtime,
            project_id=item.project_id,
            user_id=user_id,
            queue=queue,
            lookahead=lookahead,
            known=known,
        )


def skip_task(
    runtime: Runtime,
    *,
    user_id: int,
    item_id: int,
    queue: QueueFilter | None = None,
    lookahead: int = 0,
    known: Sequence[ReviewTask] = (),
) -> ReviewTask | None:
    """Put the item at the back of this reviewer's queue, release it, and return their next task (`known` as for
    `submit_verdict`)."""
    queue = _checked_filter(queue)
    lookahead = _checked_lookahead(lookahead)
    with _write_transaction(runtime) as session:
        _sync_first(session)
        _require_reviewer(session, user_id)
        item = _require_item(session, item_id)
        queue_crud.record_skip(session=session, user_id=user_id, item_id=item.id, now=utcnow())
        crud.release_item(session=session, item_id=item.id, user_id=user_id)
        return _next_in(
            session,
            runtime,
            project_id=item.project_id,
            user_id=user_id,
            queue=queue,
            lookahead=lookahead,
            known=known,
        )


def undo_last(runtime: Runtime, *, user_id: int, project_id: int, lookahead: int = 0) -> ReviewTask | None:
    """Undo the reviewer's last verdict in the project and lease that item back to them; `None` if there is none.

    The review stays, marked `undone_at`; its annotation goes, and the item's previous verdict (if another review
    gave one) becomes current again with its annotation.
    """
    with _write_transaction(runtime) as session:
        _require_reviewer(session, user_id)
        review = crud.last_review_by_user(session=session, user_id=user_id, project_id=project_id)
        if review is None:
            return None
        now = utcnow()
        if not crud.lease_item(
            session=session, item_id=review.item_id, user_id=user_id, until=now + LEASE_DURATION, now=now
        ):
            item = _require_item(session, review.item_id)
            raise LeaseConflictError(_holder_message(session, item, "undo it when they are done."))
        session.refresh(review)  # under the lock: a second undo racing this one must not undo it twice
        if review.undone_at is not None:
            raise ReviewError("That verdict was just undone in another window.")
        item, project, entry, _ = queue_crud.review_context(session=session, item_id=review.item_id)
        entry = entry or queue_crud.ensure_queue_entry(session=session, item=item)
        crud.mark_review_undone(session=session, review=review, now=now)
        crud.delete_review_annotations(session=session, item_id=item.id)
        previous = crud.latest_active_review(session=session, item_id=item.id)
        if previous is not None:
            try:
                derived = review_answers.annotation_for(previous, item, review_answers.project_spec(project), session)
            except ReviewError:
                derived = None  # the earlier answer no longer fits the project: its verdict stays, unannotated
            if derived is not None:
                crud.create_review_annotation(session=session, review=previous, answer=derived[0], cot=derived[1])
        queue_crud.set_queue_verdict(session=session, entry=entry, review=previous)
        crud.release_user_leases(session=session, user_id=user_id, project_id=project_id, keep_item_id=item.id)
        task = _task(session, runtime, item_id=item.id, queue=QueueFilter())
        if lookahead:
            _with_upcoming(session, runtime, task, user_id=user_id, queue=QueueFilter(), depth=lookahead)
        return task


def release_task(runtime: Runtime, *, user_id: int, item_id: int) -> bool:
    """Give an item back without a verdict (the reviewer left), with the item leased ahead of it; True if they held
    it."""
    with _write_transaction(runtime) as session:
        item = session.get(Item, item_id)
        held = crud.release_item(session=session, item_id=item_id, user_id=user_id)
        if item is not None:
            crud.release_user_leases(session=session, user_id=user_id, project_id=item.project_id)
        return held


def queue_options(runtime: Runtime, *, project_id: int) -> QueueOptions:
    """The project's labels and the names of the models whose predictions are queued, for the filter menus."""
    with _write_transaction(runtime) as session:
        queue_crud.sync_review_queue(session=session)
        project = session.get(Project, project_id)
        if project is None:
            raise ReviewError(f"Project #{project_id} does not exist. Pick a project again.")
        return QueueOptions(
            labels=list(project.labels),
            model_names=queue_crud.queue_model_names(session=session, project_id=project_id),
        )

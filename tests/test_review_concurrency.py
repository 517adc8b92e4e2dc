"""Concurrent reviewers on a real database (SQLite file in WAL mode, and PostgreSQL): real threads, each with its
own connections, working through one queue at the same time. No item may be reviewed twice, no verdict may be lost.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from app.runtime import Runtime
from app.services import review
from db.crud import review_queue as queue_crud
from db.models import Annotation, Item, Review
from tests.utils.review_factories import make_classification_queue, make_reviewer

VERDICTS = ("accept", "reject", "correct")


@dataclass
class ReviewerLog:
    user_id: int
    verdicts: list[tuple[int, str]] = field(default_factory=list)  # (item_id, verdict) as the service accepted them
    errors: list[BaseException] = field(default_factory=list)


def review_until_empty(runtime: Runtime, project_id: int, log: ReviewerLog, start: threading.Barrier) -> None:
    try:
        start.wait(timeout=30)
        task = review.next_task(runtime, project_id=project_id, user_id=log.user_id)
        while task is not None:
            verdict = VERDICTS[task.item_id % 3]
            correction = "square" if verdict == "correct" else None
            next_one = review.submit_verdict(
                runtime, user_id=log.user_id, item_id=task.item_id, verdict=verdict, corrected_answer=correction
            )
            log.verdicts.append((task.item_id, verdict))
            task = next_one
            # A moment to look at the next item, as a person would. Without it one thread can hold on to SQLite's
            # write lock round after round while the other sleeps in its busy handler, and drain the queue alone.
            time.sleep(random.uniform(0.001, 0.004))
    except BaseException as error:
        log.errors.append(error)


def run_reviewers(runtime: Runtime, project_id: int, user_ids: list[int]) -> list[ReviewerLog]:
    logs = [ReviewerLog(user_id) for user_id in user_ids]
    start = threading.Barrier(len(logs))
    threads = [threading.Thread(target=review_until_empty, args=(runtime, project_id, log, start)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"
    return logs


@pytest.mark.parametrize("n_reviewers", [2, 4])
def test_concurrent_reviewers_never_review_an_item_twice_and_lose_no_verdict(db_runtime, n_reviewers):
    n_items = 40
    with db_runtime.sessions.begin() as session:
        project, items = make_classification_queue(session, n_items)
        user_ids = [make_reviewer(session, f"reviewer{i}").id for i in range(n_reviewers)]
    item_ids = {item.id for item in items}

    logs = run_reviewers(db_runtime, project.id, user_ids)

    assert [log.errors for log in logs] == [[] for _ in logs]
    handed_out = Counter(item_id for log in logs for item_id, _ in log.verdicts)
    assert set(handed_out) == item_ids, "every item was reviewed"
    assert max(handed_out.values()) == 1, "no item was reviewed twice"
    # The queue was really shared, not drained by one thread before the others started (on a loaded machine a
    # thread can start late, so not every one of four is guaranteed an item).
    assert sum(1 for log in logs if log.verdicts) >= 2

    with db_runtime.sessions() as session:
        stored = {(r.item_id, r.reviewer_id, r.verdict.value) for r in session.scalars(select(Review))}
        annotations = session.scalar(select(func.count()).select_from(Annotation))
        leases = session.scalar(select(func.count()).where(Item.leased_by_id.is_not(None)))
    reported = {(item_id, log.user_id, verdict) for log in logs for item_id, verdict in log.verdicts}
    assert stored == reported, "every verdict the service confirmed is stored, and nothing else"
    assert annotations == sum(1 for _, _, verdict in reported if verdict != "reject")
    assert leases == 0
    # The stored queue counts, changed by every concurrent verdict, agree with a count from scratch.
    with db_runtime.sessions.begin() as session:
        stored_counts = queue_crud.queue_counts(session=session, project_id=project.id)
        assert stored_counts == queue_crud.recount_queue(session=session, project_id=project.id) == (n_items, n_items)


def ask_at_once(runtime: Runtime, project_id: int, user_ids: list[int]) -> dict[int, object]:
    """Every reviewer asks for a task at the same moment; their answers (a task, None or an exception)."""
    start = threading.Barrier(len(user_ids))
    results: dict[int, object] = {}

    def ask(user_id: int) -> None:
        start.wait(timeout=30)
        try:
            results[user_id] = review.next_task(runtime, project_id=project_id, user_id=user_id)
        except BaseException as error:
            results[user_id] = error

    threads = [threading.Thread(target=ask, args=(user_id,)) for user_id in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_simultaneous_requests_for_the_last_items_give_each_to_exactly_one_reviewer(db_runtime):
    with db_runtime.sessions.begin() as session:
        user_ids = [make_reviewer(session, f"reviewer{i}").id for i in range(5)]
    for round_number in range(6):
        with db_runtime.sessions.begin() as session:
            project, items = make_classification_queue(session, 2, name=f"race{round_number}")
            # Synced up front: otherwise every request starts by writing the queue, and SQLite's single writer
            # would serialise the requests before they ever look for a candidate.
            queue_crud.sync_review_queue(session=session)

        results = ask_at_once(db_runtime, project.id, user_ids)

        assert len(results) == len(user_ids)
        assert not [r for r in results.values() if isinstance(r, BaseException)]
        won = sorted(task.item_id for task in results.values() if task is not None)
        assert won == sorted(item.id for item in items), f"round {round_number}: {won}"

"""The item leased ahead of the reviewer's screen, and a database locked by another writer, on real databases."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading

import pytest
from sqlalchemy import select

from app.runtime import Runtime, open_runtime
from app.services import review
from app.services.review import QueueFilter
from app.ui import review_actions
from app.ui.review_actions import Edits, ReviewInputError, TypedKey
from db.models import Item, Review
from db.session import write_transaction
from tests.utils.review_factories import make_classification_queue, make_reviewer


@pytest.fixture
def queue(runtime: Runtime):
    """Five classification items (item order = confidence order) and two reviewers."""
    with runtime.sessions.begin() as session:
        project, items = make_classification_queue(session, 5)
        ada, bob = make_reviewer(session, "ada"), make_reviewer(session, "bob")
        return project.id, [item.id for item in items], ada.id, bob.id


def leased_to(runtime: Runtime, user_id: int) -> set[int]:
    with runtime.sessions() as session:
        return set(session.scalars(select(Item.id).where(Item.leased_by_id == user_id)))


class TestLookahead:
    def test_the_next_item_is_leased_ahead_and_comes_next(self, runtime, queue):
        project_id, items, ada, _ = queue

        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        assert (task.item_id, [t.item_id for t in task.upcoming]) == (items[0], [items[1]])
        assert (task.position, task.remaining) == (1, 4)
        # Once the first has its verdict, the upcoming one is the next item: one further, one fewer left.
        assert (task.upcoming[0].position, task.upcoming[0].remaining) == (2, 3)
        assert task.upcoming[0].upcoming == ()
        assert leased_to(runtime, ada) == {items[0], items[1]}

        after = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="accept", lookahead=1)

        assert (after.item_id, [t.item_id for t in after.upcoming]) == (items[1], [items[2]])
        assert (after.position, after.remaining) == (task.upcoming[0].position, task.upcoming[0].remaining)
        assert leased_to(runtime, ada) == {items[1], items[2]}

    def test_several_items_ahead_keep_their_queue_order_from_verdict_to_verdict(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=3)
        assert [t.item_id for t in task.upcoming] == items[1:4]
        assert [(t.position, t.remaining) for t in task.upcoming] == [(2, 3), (3, 2), (4, 1)]

        after = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject", lookahead=3)

        assert (after.item_id, [t.item_id for t in after.upcoming]) == (items[1], items[2:5])
        assert leased_to(runtime, ada) == set(items[1:5])
        with pytest.raises(review.ReviewError, match="lookahead must be a whole number"):
            review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=True)

    def test_without_lookahead_the_reviewer_holds_one_item(self, runtime, queue):
        project_id, items, ada, _ = queue

        task = review.next_task(runtime, project_id=project_id, user_id=ada)

        assert task.upcoming == () and leased_to(runtime, ada) == {items[0]}

    def test_reloading_keeps_the_item_on_screen_and_the_one_ahead(self, runtime, queue):
        project_id, items, ada, _ = queue
        first = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        again = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        assert (again.item_id, again.upcoming[0].item_id) == (first.item_id, first.upcoming[0].item_id)

    def test_another_reviewer_never_gets_the_item_held_ahead(self, runtime, queue):
        project_id, items, ada, bob = queue
        mine = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        theirs = review.next_task(runtime, project_id=project_id, user_id=bob, lookahead=1)

        assert {theirs.item_id, theirs.upcoming[0].item_id}.isdisjoint({mine.item_id, mine.upcoming[0].item_id})

    def test_skip_shows_the_item_ahead_next(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        after = review.skip_task(runtime, user_id=ada, item_id=task.item_id, lookahead=1)

        assert after.item_id == task.upcoming[0].item_id and after.upcoming[0].item_id == items[2]

    def test_the_last_item_has_nothing_ahead(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)
        while task.upcoming:
            task = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject", lookahead=1)

        assert task.item_id == items[-1] and task.remaining == 0
        assert review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject") is None

    def test_undo_brings_the_item_back_with_one_ahead(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)
        review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="accept", lookahead=1)

        back = review.undo_last(runtime, user_id=ada, project_id=project_id, lookahead=1)

        assert back.item_id == items[0] and back.upcoming[0].item_id == items[1]
        assert leased_to(runtime, ada) == {items[0], items[1]}

    def test_leaving_gives_back_the_item_ahead_too(self, runtime, queue):
        project_id, items, ada, bob = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=1)

        assert review.release_task(runtime, user_id=ada, item_id=task.item_id)

        assert leased_to(runtime, ada) == set()
        assert review.next_task(runtime, project_id=project_id, user_id=bob).item_id == items[0]

    def test_items_ahead_the_page_already_holds_are_not_read_again(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada, lookahead=3)
        # The page shows the items ahead as it got them; a verdict's answer keeps them so, with new positions.
        shown = [dataclasses.replace(ahead, cot=f"as shown {ahead.item_id}") for ahead in task.upcoming]

        after = review.submit_verdict(
            runtime, user_id=ada, item_id=task.item_id, verdict="accept", lookahead=3, known=shown
        )

        assert after.item_id == items[1] and after.cot != f"as shown {items[1]}"  # the new screen item is read
        assert [(t.item_id, t.cot) for t in after.upcoming[:2]] == [(i, f"as shown {i}") for i in items[2:4]]
        assert [(t.position, t.remaining) for t in after.upcoming[:2]] == [(3, 2), (4, 1)]
        assert after.upcoming[2].item_id == items[4] and after.upcoming[2].cot != f"as shown {items[4]}"
        assert leased_to(runtime, ada) == set(items[1:5])


class TestBusyDatabase:
    @pytest.fixture
    def impatient(self, runtime):
        """The same database, with writes that wait only a moment for another writer's lock."""
        reopened = open_runtime(dataclasses.replace(runtime.settings, db_lock_timeout_s=0.2))
        yield reopened
        reopened.close()

    def test_a_locked_database_refuses_the_verdict_keeps_the_lease_and_a_retry_works(self, runtime, queue, impatient):
        project_id, items, ada, _ = queue
        task = review.next_task(impatient, project_id=project_id, user_id=ada, lookahead=1)
        database = runtime.engine.url.database
        # Another process's writer holds SQLite's write lock: a real lock, not a simulated error.
        blocker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(review.DatabaseBusyError, match="The database is busy; nothing was saved") as caught:
                review.submit_verdict(impatient, user_id=ada, item_id=task.item_id, verdict="accept")
            assert "INSERT" not in str(caught.value) and "SELECT" not in str(caught.value)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        with runtime.sessions() as session:
            assert session.scalars(select(Review).where(Review.item_id == task.item_id)).all() == []
        assert leased_to(runtime, ada) == {task.item_id, task.upcoming[0].item_id}
        after = review.submit_verdict(impatient, user_id=ada, item_id=task.item_id, verdict="accept", lookahead=1)
        assert after.item_id == task.upcoming[0].item_id

    def test_a_writer_of_the_same_process_past_the_timeout_makes_the_verdict_wait_then_fail(self, queue, impatient):
        project_id, items, ada, _ = queue
        task = review.next_task(impatient, project_id=project_id, user_id=ada)
        holding, done = threading.Event(), threading.Event()

        def long_writer() -> None:
            with write_transaction(impatient.sessions, impatient.engine):
                holding.set()
                done.wait(10)

        writer = threading.Thread(target=long_writer)
        writer.start()
        try:
            assert holding.wait(10)
            with pytest.raises(review.DatabaseBusyError, match="The database is busy"):
                review.submit_verdict(impatient, user_id=ada, item_id=task.item_id, verdict="accept")
        finally:
            done.set()
            writer.join()
        # Its turn comes as soon as the other writer is done.
        review.submit_verdict(impatient, user_id=ada, item_id=task.item_id, verdict="accept")

    def test_a_writer_waits_for_a_short_lock_instead_of_failing(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada)
        blocker = sqlite3.connect(runtime.engine.url.database, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
        release.start()
        try:
            review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="accept")
        finally:
            release.join()
            blocker.close()
        with runtime.sessions() as session:
            assert len(session.scalars(select(Review).where(Review.item_id == task.item_id)).all()) == 1


class TestKeysTypedAhead:
    """Verdict keys the page sends together (`app.ui.review_actions.apply_typed_keys`)."""

    def test_each_key_lands_on_its_item_in_order(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review_actions.load(runtime, user_id=ada, project_id=project_id, queue=QueueFilter()).task
        keys = [TypedKey("a", items[0], None), TypedKey("r", items[1], 700), TypedKey("n", items[2], 300)]
        keys.append(TypedKey("a", items[3], 450))

        outcome = review_actions.apply_typed_keys(
            runtime, user_id=ada, task=task, edits=Edits(label="circle"), shown_at=None, queue=QueueFilter(), keys=keys
        )

        with runtime.sessions() as session:
            rows = [(r.item_id, r.verdict.value, r.time_spent_ms) for r in session.scalars(select(Review))]
        assert sorted(rows) == [(items[0], "accept", None), (items[1], "reject", 700), (items[3], "accept", 450)]
        # The skipped item goes to the back of the queue: it comes again after the last one.
        assert (outcome.task.item_id, [t.item_id for t in outcome.task.upcoming]) == (items[4], [items[2]])
        assert outcome.message.split(". ")[:2] == [f"Item #{items[0]} accepted", f"Item #{items[1]} rejected"]

    def test_keys_for_items_that_are_not_next_are_dropped(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review_actions.load(runtime, user_id=ada, project_id=project_id, queue=QueueFilter()).task
        keys = [TypedKey("a", items[0], None), TypedKey("a", items[3], 100), TypedKey("a", items[4], 100)]

        outcome = review_actions.apply_typed_keys(
            runtime, user_id=ada, task=task, edits=Edits(label="circle"), shown_at=None, queue=QueueFilter(), keys=keys
        )

        with runtime.sessions() as session:
            assert [r.item_id for r in session.scalars(select(Review))] == [items[0]]
        assert outcome.task.item_id == items[1]
        assert "dropped" in outcome.message

    def test_a_first_key_that_fails_saves_nothing(self, runtime, queue):
        project_id, items, ada, bob = queue
        task = review_actions.load(runtime, user_id=ada, project_id=project_id, queue=QueueFilter()).task
        keys = [TypedKey("a", items[0], None), TypedKey("a", items[1], 100)]

        with pytest.raises(review.ReviewError):  # bob does not hold ada's item
            review_actions.apply_typed_keys(
                runtime,
                user_id=bob,
                task=task,
                edits=Edits(label="circle"),
                shown_at=None,
                queue=QueueFilter(),
                keys=keys,
            )
        with runtime.sessions() as session:
            assert list(session.scalars(select(Review))) == []

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "not json",
            "{}",
            "[]",
            '[{"key": "s", "item": 1}]',  # a correction needs the editors: it is never typed ahead
            '[{"key": "a", "item": "1"}]',
            '[{"key": "a", "item": 1, "ms": -5}]',
            '[{"key": "a", "item": true}]',
            json.dumps([{"key": "a", "item": 1}] * (review_actions.MAX_TYPED_AHEAD + 1)),
        ],
    )
    def test_the_page_list_is_checked(self, text):
        with pytest.raises(ReviewInputError, match="could not be read"):
            review_actions.parse_typed_keys(text)

    def test_a_valid_page_list_is_read(self):
        keys = review_actions.parse_typed_keys(
            '[{"key": "a", "item": 3, "ms": null}, {"key": "n", "item": 4, "ms": 9}]'
        )
        assert keys == [TypedKey("a", 3, None), TypedKey("n", 4, 9)]

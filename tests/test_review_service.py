"""The review services on a real database: queue order and filters, leases, verdicts and the annotations they
derive, skip and undo."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import delete, select, update

from app.runtime import Runtime
from app.services import review
from app.services.review import QueueFilter
from db.crud import reviews as review_crud
from db.models import Annotation, AnnotationSource, Item, Review, ReviewQueueEntry, Split, utcnow
from tests.utils.factories import make_item, make_project
from tests.utils.review_factories import add_prediction, make_classification_queue, make_predicted_items, make_reviewer


@pytest.fixture
def queue(runtime: Runtime):
    """Five classification items, scores 0.0, 0.2, ... (item order = confidence order), and two reviewers."""
    with runtime.sessions.begin() as session:
        project, items = make_classification_queue(session, 5)
        ada, bob = make_reviewer(session, "ada"), make_reviewer(session, "bob")
        return project.id, [item.id for item in items], ada.id, bob.id


def reviews_of(runtime: Runtime, item_id: int) -> list[Review]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Review).where(Review.item_id == item_id).order_by(Review.id)))


def annotations_of(runtime: Runtime, item_id: int) -> list[Annotation]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Annotation).where(Annotation.item_id == item_id).order_by(Annotation.id)))


def correct_with_reasoning(runtime: Runtime, user_id: int, item_id: int, reasoning: str, **extra) -> None:
    """A correction to "square" with the reviewer's written `reasoning`."""
    review.submit_verdict(
        runtime,
        user_id=user_id,
        item_id=item_id,
        verdict="correct",
        corrected_answer="square",
        corrected_cot=reasoning,
        **extra,
    )


def leased_detection_item(runtime: Runtime) -> tuple[Item, int]:
    """A 64x64 detection item predicted with one circle, leased to a new reviewer; (item, reviewer id)."""
    with runtime.sessions.begin() as session:
        project = make_project(session, name="boxes", task_type="detection", labels=("circle", "square"))
        [item] = make_predicted_items(session, project, [[{"label": "circle", "box": [1, 1, 10, 10]}]])
        ada = make_reviewer(session).id
    review.next_task(runtime, project_id=project.id, user_id=ada)
    return item, ada


class TestQueue:
    def test_first_task_is_the_least_confident_item_with_its_prediction(self, runtime, queue):
        project_id, items, ada, _ = queue

        task = review.next_task(runtime, project_id=project_id, user_id=ada)

        assert task.item_id == items[0]
        assert (task.task_type, task.labels, task.answer, task.score) == (
            "classification",
            ["circle", "square"],
            "circle",
            0.0,
        )
        assert task.cot == "I see a round outline." and task.model_name == "tiny-v1"
        assert task.image_path.startswith(str(runtime.settings.media_dir)) and task.image_path.endswith(".png")
        assert (task.position, task.remaining) == (1, 4)
        assert task.lease_expires_at > utcnow()

    def test_oldest_first_ignores_the_scores(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session)
            items = make_predicted_items(session, project, ["circle", "square", "circle"], scores=[0.9, 0.1, 0.5])
            ada = make_reviewer(session).id
        oldest = review.next_task(runtime, project_id=project.id, user_id=ada, queue=QueueFilter(order="oldest"))
        assert oldest.item_id == items[0].id

    def test_a_prediction_without_a_score_comes_first(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session)
            items = make_predicted_items(session, project, ["circle", "square"], scores=[0.1, None])
            ada = make_reviewer(session).id
        assert review.next_task(runtime, project_id=project.id, user_id=ada).item_id == items[1].id

    def test_the_same_reviewer_gets_their_current_item_back(self, runtime, queue):
        project_id, _, ada, _ = queue
        first = review.next_task(runtime, project_id=project_id, user_id=ada)
        again = review.next_task(runtime, project_id=project_id, user_id=ada)
        assert again.item_id == first.item_id

    def test_another_reviewer_never_gets_a_leased_item(self, runtime, queue):
        project_id, items, ada, bob = queue
        ada_task = review.next_task(runtime, project_id=project_id, user_id=ada)
        bob_task = review.next_task(runtime, project_id=project_id, user_id=bob)
        assert (ada_task.item_id, bob_task.item_id) == (items[0], items[1])

    def test_an_expired_lease_can_be_taken_over(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with runtime.sessions.begin() as session:
            session.execute(update(Item).where(Item.id == items[0]).values(lease_expires_at=utcnow() - timedelta(1)))

        assert review.next_task(runtime, project_id=project_id, user_id=bob).item_id == items[0]
        # Ada's verdict on the item Bob now holds is refused, and so is her late verdict after Bob's.
        with pytest.raises(review.LeaseConflictError, match="being reviewed by bob"):
            review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept")
        review.submit_verdict(runtime, user_id=bob, item_id=items[0], verdict="reject")
        with pytest.raises(review.AlreadyReviewedError, match="already rejected"):
            review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept")
        assert [(r.reviewer_id, r.verdict) for r in reviews_of(runtime, items[0])] == [(bob, "reject")]

    def test_eval_split_items_are_reviewed_like_the_others(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session)
            item = make_item(session, project, seed=1, split=Split.eval)
            add_prediction(session, item, "square")
            ada = make_reviewer(session).id
        task = review.next_task(runtime, project_id=project.id, user_id=ada)
        assert (task.item_id, task.split) == (item.id, "eval")

    def test_an_empty_queue_gives_none(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session)
            make_item(session, project)  # no prediction: nothing to review yet
            ada = make_reviewer(session).id
        assert review.next_task(runtime, project_id=project.id, user_id=ada) is None

    def test_a_new_prediction_reaches_the_queue_and_replaces_the_one_shown(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with runtime.sessions.begin() as session:
            newer = add_prediction(session, session.get(Item, items[0]), "square", score=0.3, model_name="tiny-v2")
            late_item = make_item(session, session.get(Item, items[0]).project, seed=99)
            add_prediction(session, late_item, "circle", score=0.01)

        task = review.next_task(runtime, project_id=project_id, user_id=ada)

        assert (task.item_id, task.prediction_id, task.answer, task.model_name) == (
            items[0],
            newer.id,
            "square",
            "tiny-v2",
        )
        assert task.remaining == 5

    def test_a_prediction_the_sync_missed_is_found_when_the_queue_looks_empty(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with runtime.sessions.begin() as session:
            # Only the newest row stays: the high-water mark is unchanged and the others look already synced.
            session.execute(delete(ReviewQueueEntry).where(ReviewQueueEntry.item_id != items[-1]))

        seen = []
        task = review.next_task(runtime, project_id=project_id, user_id=ada)
        while task is not None:
            seen.append(task.item_id)
            task = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject")
        assert sorted(seen) == items

    def test_unknown_filters_are_refused_with_the_choices(self, runtime, queue):
        project_id, _, ada, _ = queue
        with pytest.raises(review.ReviewError, match="confidence, oldest"):
            review.next_task(runtime, project_id=project_id, user_id=ada, queue=QueueFilter(order="newest"))
        with pytest.raises(review.InvalidVerdictError, match="accept, correct, reject"):
            review.next_task(runtime, project_id=project_id, user_id=ada, queue=QueueFilter(verdict="maybe"))

    def test_queue_options_list_labels_and_models(self, runtime, queue):
        project_id, _, _, _ = queue
        options = review.queue_options(runtime, project_id=project_id)
        assert (options.labels, options.model_names) == (["circle", "square"], ["tiny-v1"])


class TestFilters:
    def test_label_filter_offers_only_items_predicted_with_that_label(self, runtime, queue):
        project_id, items, ada, _ = queue
        seen = []
        task = review.next_task(runtime, project_id=project_id, user_id=ada, queue=QueueFilter(label="square"))
        while task is not None:
            seen.append(task.item_id)
            task = review.submit_verdict(
                runtime, user_id=ada, item_id=task.item_id, verdict="accept", queue=QueueFilter(label="square")
            )
        assert seen == [items[1], items[3]]

    def test_label_filter_matches_box_labels_and_escapes_like_wildcards(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session, task_type="detection", labels=("red_%", "blue"))
            box = [1, 1, 9, 9]
            items = make_predicted_items(
                session, project, [[{"label": "blue", "box": box}], [{"label": "red_%", "box": box}]]
            )
            ada = make_reviewer(session).id
        task = review.next_task(runtime, project_id=project.id, user_id=ada, queue=QueueFilter(label="red_%"))
        assert task.item_id == items[1].id
        assert task.remaining == 0

    def test_model_filter(self, runtime, queue):
        project_id, items, ada, _ = queue
        with runtime.sessions.begin() as session:
            add_prediction(session, session.get(Item, items[4]), "circle", model_name="tiny-v2", score=0.99)
        task = review.next_task(runtime, project_id=project_id, user_id=ada, queue=QueueFilter(model_name="tiny-v2"))
        assert (task.item_id, task.model_name, task.remaining) == (items[4], "tiny-v2", 0)

    def test_verdict_filter_revisits_reviewed_items_oldest_verdict_first(self, runtime, queue):
        project_id, items, ada, bob = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada)
        for _ in range(3):
            task = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject")
        rejected = QueueFilter(verdict="reject")

        second_look = review.next_task(runtime, project_id=project_id, user_id=bob, queue=rejected)
        assert (second_look.item_id, second_look.verdict, second_look.remaining) == (items[0], "reject", 2)

        # Bob corrects it: it leaves the rejected queue and the correction becomes the trusted answer.
        after = review.submit_verdict(
            runtime, user_id=bob, item_id=items[0], verdict="correct", corrected_answer="square", queue=rejected
        )
        assert after.item_id == items[1]
        assert [a.answer for a in annotations_of(runtime, items[0])] == ["square"]
        # Confirming a reject moves the item to the back instead of offering it again at once.
        after = review.submit_verdict(runtime, user_id=bob, item_id=items[1], verdict="reject", queue=rejected)
        assert after.item_id == items[2]


class TestVerdicts:
    def test_accept_records_the_review_and_a_trusted_annotation_with_the_cot(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada)

        following = review.submit_verdict(
            runtime, user_id=ada, item_id=task.item_id, verdict="accept", comment="clear", time_spent_ms=1200
        )

        [recorded] = reviews_of(runtime, items[0])
        assert (recorded.verdict, recorded.prediction_id, recorded.reviewer_id) == ("accept", task.prediction_id, ada)
        assert (recorded.comment, recorded.time_spent_ms, recorded.undone_at) == ("clear", 1200, None)
        [annotation] = annotations_of(runtime, items[0])
        assert (annotation.source, annotation.answer, annotation.cot) == (
            AnnotationSource.accept,
            "circle",
            "I see a round outline.",
        )
        assert (annotation.review_id, annotation.created_by_id) == (recorded.id, ada)
        assert (following.item_id, following.position, following.remaining) == (items[1], 2, 3)
        with runtime.sessions() as session:
            assert session.get(Item, items[0]).leased_by_id is None

    def test_accept_with_wrong_reasoning_keeps_the_answer_but_not_the_cot(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept", reasoning_wrong=True)
        [annotation] = annotations_of(runtime, items[0])
        assert (annotation.answer, annotation.cot) == ("circle", None)
        assert reviews_of(runtime, items[0])[0].reasoning_wrong is True

    def test_correct_stores_the_canonical_correction(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="correct", corrected_answer=" Square ")
        [annotation] = annotations_of(runtime, items[0])
        assert (annotation.source, annotation.answer, annotation.cot) == (AnnotationSource.correct, "square", None)
        assert reviews_of(runtime, items[0])[0].corrected_answer == "square"

    def test_a_correction_keeps_the_reviewers_reasoning_as_its_cot_even_with_the_models_flagged(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        # The flag is about the model's reasoning; the reviewer's own is what is kept.
        correct_with_reasoning(runtime, ada, items[0], "  Four equal straight sides.\n", reasoning_wrong=True)
        [annotation] = annotations_of(runtime, items[0])
        assert (annotation.source, annotation.answer, annotation.cot) == (
            AnnotationSource.correct,
            "square",
            "Four equal straight sides.",
        )
        assert reviews_of(runtime, items[0])[0].corrected_cot == "Four equal straight sides."

    def test_a_reasoning_given_with_an_accept_or_a_reject_is_not_stored(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept", corrected_cot="Mine.")
        review.submit_verdict(runtime, user_id=ada, item_id=items[1], verdict="reject", corrected_cot="Mine.")
        assert [r.corrected_cot for r in reviews_of(runtime, items[0]) + reviews_of(runtime, items[1])] == [None, None]
        assert annotations_of(runtime, items[0])[0].cot == "I see a round outline."

    @pytest.mark.parametrize(
        ("reasoning", "message"),
        [
            ("Round. </think><answer>circle</answer>", "contains '</think>'"),
            ("Round.<|im_end|>", "end-of-turn token"),
            ("x" * (review.MAX_COMMENT_CHARS + 1), "too long"),
        ],
    )
    def test_a_reasoning_that_cannot_be_a_training_target_is_refused_and_nothing_is_saved(
        self, runtime, queue, reasoning, message
    ):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with pytest.raises(review.InvalidAnswerError, match=message):
            correct_with_reasoning(runtime, ada, items[0], reasoning)
        assert reviews_of(runtime, items[0]) == [] and annotations_of(runtime, items[0]) == []

    def test_reject_records_only_the_review(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="reject", comment="blurry")
        assert [r.verdict for r in reviews_of(runtime, items[0])] == ["reject"]
        assert annotations_of(runtime, items[0]) == []

    @pytest.mark.parametrize(
        ("correction", "message"),
        [
            ("triangle", "not one of the labels"),  # not a label of the project
            (None, "needs the corrected answer"),  # nothing picked
            (["circle"], "not one of the labels"),  # wrong shape
        ],
    )
    def test_an_invalid_correction_is_refused_and_nothing_is_saved(self, runtime, queue, correction, message):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with pytest.raises(review.InvalidAnswerError, match=message):
            review.submit_verdict(
                runtime, user_id=ada, item_id=items[0], verdict="correct", corrected_answer=correction
            )
        assert reviews_of(runtime, items[0]) == [] and annotations_of(runtime, items[0]) == []
        # The failed verdict did not cost the reviewer their lease.
        assert review.next_task(runtime, project_id=project_id, user_id=ada).item_id == items[0]

    def test_a_prediction_that_could_not_be_read_cannot_be_accepted(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session)
            item = make_item(session, project)
            add_prediction(session, item, None, parse_error="unknown label 'blob'")
            ada = make_reviewer(session).id
        task = review.next_task(runtime, project_id=project.id, user_id=ada)
        assert (task.answer, task.parse_error) == (None, "unknown label 'blob'")
        with pytest.raises(review.InvalidVerdictError, match="could not be read .unknown label 'blob'."):
            review.submit_verdict(runtime, user_id=ada, item_id=item.id, verdict="accept")
        review.submit_verdict(runtime, user_id=ada, item_id=item.id, verdict="correct", corrected_answer="circle")
        assert [a.answer for a in annotations_of(runtime, item.id)] == ["circle"]

    def test_detection_corrections_are_clipped_to_the_image(self, runtime):
        item, ada = leased_detection_item(runtime)
        with pytest.raises(review.InvalidAnswerError, match="outside the image"):
            review.submit_verdict(
                runtime,
                user_id=ada,
                item_id=item.id,
                verdict="correct",
                corrected_answer=[{"label": "square", "box": [70, 70, 90, 90]}],  # the image is 64x64
            )
        review.submit_verdict(
            runtime,
            user_id=ada,
            item_id=item.id,
            verdict="correct",
            corrected_answer=[{"label": "square", "box": [50, -5, 80, 20]}],
        )
        [annotation] = annotations_of(runtime, item.id)
        assert annotation.answer == [{"label": "square", "box": [50.0, 0.0, 64.0, 20.0]}]

    def test_a_correction_with_too_many_boxes_is_refused_and_nothing_is_saved(self, runtime):
        item, ada = leased_detection_item(runtime)
        boxes = [{"label": "square", "box": [1, 1, 2 + i % 60, 2 + i % 60]} for i in range(50_000)]
        with pytest.raises(review.InvalidAnswerError, match="50,000 boxes are more than the 1,000"):
            review.submit_verdict(runtime, user_id=ada, item_id=item.id, verdict="correct", corrected_answer=boxes)
        assert reviews_of(runtime, item.id) == [] and annotations_of(runtime, item.id) == []

    def test_distribution_corrections_are_normalised(self, runtime):
        with runtime.sessions.begin() as session:
            project = make_project(session, name="mood", labels=("joy", "fear"), distribution=True)
            [item] = make_predicted_items(session, project, [{"joy": 0.5, "fear": 0.5}])
            ada = make_reviewer(session).id
        task = review.next_task(runtime, project_id=project.id, user_id=ada)
        assert task.distribution is True
        review.submit_verdict(
            runtime, user_id=ada, item_id=item.id, verdict="correct", corrected_answer={"joy": 3, "fear": 1}
        )
        assert annotations_of(runtime, item.id)[0].answer == {"joy": 0.75, "fear": 0.25}

    def test_a_verdict_on_an_item_someone_else_holds_is_refused(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        with pytest.raises(review.LeaseConflictError, match="being reviewed by ada"):
            review.submit_verdict(runtime, user_id=bob, item_id=items[0], verdict="reject")
        assert reviews_of(runtime, items[0]) == []

    def test_a_second_verdict_without_a_lease_is_refused(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept")
        with pytest.raises(review.AlreadyReviewedError, match="already accepted"):
            review.submit_verdict(runtime, user_id=bob, item_id=items[0], verdict="reject")
        assert [r.verdict for r in reviews_of(runtime, items[0])] == ["accept"]

    def test_unknown_item_and_unknown_verdict_are_clear_errors(self, runtime, queue):
        _, items, ada, _ = queue
        with pytest.raises(review.ItemNotFoundError, match="#999999 does not exist"):
            review.submit_verdict(runtime, user_id=ada, item_id=999999, verdict="accept")
        with pytest.raises(review.InvalidVerdictError, match="Unknown verdict 'ok'"):
            review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="ok")


class TestSkipAndUndo:
    def test_skipped_items_come_back_after_all_the_others(self, runtime, queue):
        project_id, items, ada, _ = queue
        first = review.next_task(runtime, project_id=project_id, user_id=ada)
        order = [first.item_id]
        task = review.skip_task(runtime, user_id=ada, item_id=first.item_id)
        while task is not None:
            order.append(task.item_id)
            task = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject")
        assert order == [items[0], items[1], items[2], items[3], items[4], items[0]]

    def test_a_skipped_item_stays_available_to_other_reviewers(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.skip_task(runtime, user_id=ada, item_id=items[0])
        assert review.next_task(runtime, project_id=project_id, user_id=bob).item_id == items[0]

    def test_undo_marks_the_review_removes_the_annotation_and_gives_the_item_back(self, runtime, queue):
        project_id, items, ada, _ = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="accept")

        task = review.undo_last(runtime, user_id=ada, project_id=project_id)

        assert (task.item_id, task.verdict, task.position) == (items[0], None, 1)
        [undone] = reviews_of(runtime, items[0])
        assert undone.undone_at is not None
        assert annotations_of(runtime, items[0]) == []
        with runtime.sessions() as session:
            # One lease per reviewer: the item shown after the verdict was given back.
            assert session.scalars(select(Item.id).where(Item.leased_by_id == ada)).all() == [items[0]]
        # The item is the reviewer's current task and can be judged again.
        assert review.next_task(runtime, project_id=project_id, user_id=ada).item_id == items[0]
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="reject")
        assert [r.verdict for r in reviews_of(runtime, items[0])] == ["accept", "reject"]

    def test_undo_walks_back_one_verdict_at_a_time(self, runtime, queue):
        project_id, items, ada, _ = queue
        task = review.next_task(runtime, project_id=project_id, user_id=ada)
        task = review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="accept")
        review.submit_verdict(runtime, user_id=ada, item_id=task.item_id, verdict="reject")
        assert review.undo_last(runtime, user_id=ada, project_id=project_id).item_id == items[1]
        assert review.undo_last(runtime, user_id=ada, project_id=project_id).item_id == items[0]
        assert review.undo_last(runtime, user_id=ada, project_id=project_id) is None

    def test_undoing_a_second_look_restores_the_first_verdict_and_its_annotation(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        correct_with_reasoning(runtime, ada, items[0], "Four corners.")
        accepted = QueueFilter(verdict="correct")
        review.next_task(runtime, project_id=project_id, user_id=bob, queue=accepted)
        review.submit_verdict(runtime, user_id=bob, item_id=items[0], verdict="reject", queue=accepted)
        assert annotations_of(runtime, items[0]) == []

        task = review.undo_last(runtime, user_id=bob, project_id=project_id)

        assert (task.item_id, task.verdict) == (items[0], "correct")
        assert [(a.source, a.answer, a.cot) for a in annotations_of(runtime, items[0])] == [
            (AnnotationSource.correct, "square", "Four corners.")
        ]

    def test_undo_is_refused_while_someone_else_holds_the_item(self, runtime, queue):
        project_id, items, ada, bob = queue
        review.next_task(runtime, project_id=project_id, user_id=ada)
        review.submit_verdict(runtime, user_id=ada, item_id=items[0], verdict="reject")
        review.next_task(runtime, project_id=project_id, user_id=bob, queue=QueueFilter(verdict="reject"))
        with pytest.raises(review.LeaseConflictError, match="bob"):
            review.undo_last(runtime, user_id=ada, project_id=project_id)
        assert reviews_of(runtime, items[0])[0].undone_at is None


def test_the_core_flow_works_on_each_backend(db_runtime):
    """Lease, verdict, undo and the queue sync on SQLite and PostgreSQL (upserts differ by dialect)."""
    with db_runtime.sessions.begin() as session:
        project, items = make_classification_queue(session, 3)
        ada, bob = make_reviewer(session, "ada").id, make_reviewer(session, "bob").id
    first = review.next_task(db_runtime, project_id=project.id, user_id=ada)
    other = review.next_task(db_runtime, project_id=project.id, user_id=bob)
    assert (first.item_id, other.item_id) == (items[0].id, items[1].id)
    with pytest.raises(review.LeaseConflictError):
        review.submit_verdict(db_runtime, user_id=ada, item_id=items[1].id, verdict="accept")
    following = review.submit_verdict(
        db_runtime, user_id=ada, item_id=items[0].id, verdict="correct", corrected_answer="square"
    )
    assert following.item_id == items[2].id
    assert review.undo_last(db_runtime, user_id=ada, project_id=project.id).item_id == items[0].id
    assert annotations_of(db_runtime, items[0].id) == []


def test_leases_and_verdict_claims_are_decided_by_the_conditional_update(runtime, queue):
    _, items, ada, bob = queue
    now = utcnow()
    with runtime.sessions.begin() as session:
        lease = partial(review_crud.lease_item, session=session, item_id=items[0], now=now)
        claim = partial(review_crud.claim_for_verdict, session=session, item_id=items[0], now=now)
        assert lease(user_id=ada, until=now + timedelta(minutes=5)) is True
        assert lease(user_id=bob, until=now + timedelta(minutes=5)) is False  # Ada holds it
        assert lease(user_id=ada, until=now + timedelta(minutes=9)) is True  # renewing one's own lease
        assert claim(user_id=bob) is None
        assert claim(user_id=ada) == "held"  # and the lease is released
        assert claim(user_id=bob) == "free"
        assert lease(user_id=ada, until=now - timedelta(seconds=1)) is True  # a lease that has run out
        assert lease(user_id=bob, until=now + timedelta(minutes=5)) is True
        assert review_crud.claim_for_verdict(session=session, item_id=999999, user_id=ada, now=now) is None

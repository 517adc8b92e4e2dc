"""Dashboard numbers from real reviews: progress, verdict mix, accept rate per label, throughput, metrics history."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.services import review
from app.services.dashboard import dashboard_stats, flatten_metrics
from db.models import ModelVersion
from tests.utils.factories import make_item, make_project
from tests.utils.review_factories import make_predicted_items, make_reviewer


def judge(runtime, user_id: int, project_id: int, verdicts: list[tuple[str, int | None]]) -> None:
    """Review the queue in order with the given (verdict, time_spent_ms) pairs."""
    task = review.next_task(runtime, project_id=project_id, user_id=user_id)
    for verdict, spent in verdicts:
        correction = "circle" if verdict == "correct" else None
        task = review.submit_verdict(
            runtime,
            user_id=user_id,
            item_id=task.item_id,
            verdict=verdict,
            corrected_answer=correction,
            time_spent_ms=spent,
        )


def test_empty_project(runtime):
    with runtime.sessions.begin() as session:
        project = make_project(session)
    stats = dashboard_stats(runtime, project.id)
    assert (stats.total, stats.reviewed, stats.progress) == (0, 0, 0.0)
    assert stats.verdict_counts == {"accept": 0, "correct": 0, "reject": 0}
    assert (stats.per_label_accept_rate, stats.reviewer_throughput, stats.model_metrics_history) == ({}, [], [])


def test_progress_verdicts_label_rates_and_throughput(db_runtime):
    runtime = db_runtime
    with runtime.sessions.begin() as session:
        project = make_project(session)
        answers = ["circle", "circle", "square", "square", "circle"]
        make_predicted_items(session, project, answers, scores=[0.1, 0.2, 0.3, 0.4, 0.5])
        make_item(session, project, seed=50)  # not predicted yet: counts in the total only
        ada, bob = make_reviewer(session, "ada").id, make_reviewer(session, "bob").id
    # Ada: circle accepted, circle rejected, square corrected (to circle); she now holds item 4, so Bob gets item 5
    # (circle) and accepts it.
    judge(runtime, ada, project.id, [("accept", 4000), ("reject", 2000), ("correct", None)])
    judge(runtime, bob, project.id, [("accept", 3000)])
    # A verdict undone does not count anywhere.
    held = review.next_task(runtime, project_id=project.id, user_id=ada).item_id
    review.release_task(runtime, user_id=ada, item_id=held)
    judge(runtime, bob, project.id, [("reject", 1000)])
    review.undo_last(runtime, user_id=bob, project_id=project.id)

    stats = dashboard_stats(runtime, project.id)

    assert (stats.total, stats.predicted, stats.reviewed) == (6, 5, 4)
    assert stats.progress == pytest.approx(4 / 6)
    assert stats.verdict_counts == {"accept": 2, "correct": 1, "reject": 1}
    assert stats.per_label_reviewed == {"circle": 3, "square": 1}
    assert stats.per_label_accept_rate == {"circle": pytest.approx(2 / 3), "square": 0.0}
    by_name = {t.username: t for t in stats.reviewer_throughput}
    assert [t.username for t in stats.reviewer_throughput] == ["ada", "bob"]  # most reviews first
    assert (by_name["ada"].reviews, by_name["ada"].reviews_last_24h) == (3, 3)
    assert by_name["ada"].seconds_per_review == pytest.approx(3.0)  # (4 s + 2 s) / the two timed verdicts
    assert by_name["ada"].reviews_per_hour == pytest.approx(1200.0)
    assert (by_name["bob"].reviews, by_name["bob"].seconds_per_review) == (1, pytest.approx(3.0))


def test_accept_rate_of_box_labels_counts_each_label_once_per_item(runtime):
    with runtime.sessions.begin() as session:
        project = make_project(session, name="boxes", task_type="detection", labels=("circle", "square"))
        box = [1, 1, 9, 9]
        make_predicted_items(
            session,
            project,
            [
                [{"label": "circle", "box": box}, {"label": "circle", "box": [2, 2, 8, 8]}],
                [{"label": "circle", "box": box}, {"label": "square", "box": box}],
            ],
        )
        ada = make_reviewer(session).id
    judge(runtime, ada, project.id, [("accept", None), ("reject", None)])

    stats = dashboard_stats(runtime, project.id)

    assert stats.per_label_reviewed == {"circle": 2, "square": 1}
    assert stats.per_label_accept_rate == {"circle": 0.5, "square": 0.0}


def test_model_metrics_history_is_ordered_by_time_and_plots_held_out_scores(runtime):
    with runtime.sessions.begin() as session:
        project, other = make_project(session), make_project(session, name="other")
        session.add_all(
            [
                ModelVersion(
                    project_id=project.id,
                    name="v2",
                    base_model="tiny",
                    # A registered version: held-out scores under "eval", training records beside them.
                    metrics={"eval": {"iou": 0.6, "map50": 0.4}, "training": {"sft": {"seconds": 12.0}}},
                    created_at=datetime(2026, 2, 1),
                    is_serving=True,
                ),
                ModelVersion(
                    project_id=project.id,
                    name="v1",
                    base_model="tiny",
                    metrics={"accuracy": 0.5, "notes": "baseline"},
                    created_at=datetime(2026, 1, 1),
                ),
                ModelVersion(project_id=other.id, name="elsewhere", base_model="tiny", metrics={"accuracy": 1.0}),
            ]
        )

    stats = dashboard_stats(runtime, project.id)

    assert [(p.name, p.metrics, p.is_serving) for p in stats.model_metrics_history] == [
        ("v1", {"accuracy": 0.5}, False),
        ("v2", {"iou": 0.6, "map50": 0.4}, True),
    ]
    assert stats.metrics_rows() == [
        {"model": "v1", "created_at": datetime(2026, 1, 1), "metric": "accuracy", "value": 0.5},
        {"model": "v2", "created_at": datetime(2026, 2, 1), "metric": "iou", "value": 0.6},
        {"model": "v2", "created_at": datetime(2026, 2, 1), "metric": "map50", "value": 0.4},
    ]


def test_flatten_metrics_keeps_only_finite_numbers():
    assert flatten_metrics({"a": 1, "b": float("nan"), "c": True, "d": {"e": {"f": 2.5}}, "g": [1]}) == {
        "a": 1.0,
        "d.e.f": 2.5,
    }
    assert flatten_metrics(None) == {}


def test_unknown_project_is_a_clear_error(runtime):
    with pytest.raises(ValueError, match="#4242 does not exist"):
        dashboard_stats(runtime, 4242)

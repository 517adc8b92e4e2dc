"""Snapshotting a project's verdicts into training data: what counts as trusted, what as reasoning, what as a
rejection, and that held-out items never reach the training split."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.services.review import submit_verdict, undo_last
from app.services.training_data import snapshot_training_data
from db.crud.projects import ProjectError, create_imported_annotation, create_project
from db.models import Project, Split
from rise.synthetic import get_rule
from rise.training.records import load_snapshot
from tests.utils.review_factories import add_prediction, make_reviewer
from tests.utils.training import RULE, add_scene_item

LABELS = get_rule(RULE).labels


def other(label: str) -> str:
    return next(candidate for candidate in LABELS if candidate != label)


@pytest.fixture
def verdicts(runtime):
    """A project whose items cover every kind of verdict; returns {name: (item_id, true label)}."""
    media = runtime.settings.media_dir
    items: dict[str, tuple[int, str]] = {}
    with runtime.sessions.begin() as session:
        project = create_project(session=session, name="shapes", task_type="classification", labels=LABELS)
        ada = make_reviewer(session, "ada")
        bob = make_reviewer(session, "bob")

        def item(name: str, seed: int, split: Split = Split.train):
            row, label = add_scene_item(session, project, media, seed, split=split)
            items[name] = (row.id, label)
            return row, label

        row, label = item("imported", 0)
        create_imported_annotation(session=session, item_id=row.id, answer=label)
        for name, seed in (("accepted", 1), ("flagged", 2), ("corrected", 3), ("undone", 6), ("reasoned", 11)):
            row, label = item(name, seed)
            add_prediction(session, row, label, cot=f"Evidence for item {seed}.")
        row, label = item("rejected", 4)
        add_prediction(session, row, other(label))
        row, label = item("imported_and_rejected", 5)
        create_imported_annotation(session=session, item_id=row.id, answer=label)
        add_prediction(session, row, other(label))
        item("unreviewed", 7)
        row, label = item("held_out", 8, Split.eval)
        create_imported_annotation(session=session, item_id=row.id, answer=label)
        row, label = item("held_out_rejected", 9, Split.eval)
        add_prediction(session, row, other(label))
        row, label = item("image_missing", 10)
        create_imported_annotation(session=session, item_id=row.id, answer=label)
        (media / row.media_path).unlink()
        ada_id, bob_id, project_id = ada.id, bob.id, project.id

    def verdict(name: str, kind: str, user_id: int = ada_id, **kwargs) -> None:
        submit_verdict(runtime, user_id=user_id, item_id=items[name][0], verdict=kind, **kwargs)

    # Bob first: each verdict leases the reviewer's next item, and the undone item stays leased to Bob.
    verdict("undone", "accept", user_id=bob_id)
    undo_last(runtime, user_id=bob_id, project_id=project_id)
    verdict("accepted", "accept")
    verdict("flagged", "accept", reasoning_wrong=True)
    verdict("corrected", "correct", corrected_answer=other(items["corrected"][1]))
    # The reviewer flags the model's reasoning and writes their own with the correction.
    verdict("reasoned", "correct", corrected_answer=items["reasoned"][1], reasoning_wrong=True, corrected_cot="Mine.")
    verdict("rejected", "reject")
    verdict("imported_and_rejected", "reject")
    verdict("held_out_rejected", "reject")
    return items


@pytest.fixture
def shapes(runtime, verdicts) -> int:
    """The id of the `verdicts` project."""
    with runtime.sessions() as session:
        return session.scalars(select(Project.id)).one()


def rows_by_item(dataset) -> dict[int, dict]:
    return {row["item_id"]: row for row in dataset.remove_columns("image")}


def test_snapshot_holds_trusted_answers_accepted_reasoning_and_rejections(runtime, shapes, verdicts, tmp_path):
    summary = snapshot_training_data(runtime, shapes, tmp_path / "data")
    snapshot = load_snapshot(tmp_path / "data")
    train = rows_by_item(snapshot.train)
    ids = {name: item_id for name, (item_id, _) in verdicts.items()}
    label = {name: lab for name, (_, lab) in verdicts.items()}

    expected_train = {"imported", "accepted", "flagged", "corrected", "reasoned", "rejected", "imported_and_rejected"}
    assert set(train) == {ids[name] for name in expected_train}
    assert json.loads(train[ids["imported"]]["answer"]) == label["imported"]
    assert train[ids["imported"]]["answer_source"] == "import"
    accepted = train[ids["accepted"]]
    assert (accepted["answer_source"], accepted["cot"]) == ("accept", "Evidence for item 1.")
    assert train[ids["flagged"]]["cot"] is None  # the reviewer said the reasoning was wrong: not SFT data
    assert json.loads(train[ids["corrected"]]["answer"]) == other(label["corrected"])
    assert train[ids["corrected"]]["cot"] is None  # the model's reasoning argued for the wrong answer
    reasoned = train[ids["reasoned"]]
    assert (reasoned["answer_source"], reasoned["cot"]) == ("correct", "Mine.")  # the reviewer's own: SFT data
    rejected = train[ids["rejected"]]
    assert rejected["answer"] is None and json.loads(rejected["rejected_answers"]) == [other(label["rejected"])]
    both = train[ids["imported_and_rejected"]]
    assert json.loads(both["answer"]) == label["imported_and_rejected"]
    assert json.loads(both["rejected_answers"]) == [other(label["imported_and_rejected"])]

    assert rows_by_item(snapshot.eval).keys() == {ids["held_out"]}
    assert summary.train_items == 7 and summary.eval_items == 1
    assert summary.with_cot == 2 and summary.with_rejections == 2
    assert [item_id for item_id, _ in summary.skipped] == [ids["image_missing"]]
    assert "missing" in summary.skipped[0][1]


def test_held_out_items_never_reach_the_training_split(runtime, shapes, verdicts, tmp_path):
    snapshot_training_data(runtime, shapes, tmp_path / "data")
    snapshot = load_snapshot(tmp_path / "data")
    held_out = {verdicts["held_out"][0], verdicts["held_out_rejected"][0]}
    assert held_out.isdisjoint(snapshot.train["item_id"])
    assert all(row["cot"] is None and row["rejected_answers"] == "[]" for row in rows_by_item(snapshot.eval).values())


def test_a_second_snapshot_replaces_the_first(runtime, shapes, verdicts, tmp_path):
    snapshot_training_data(runtime, shapes, tmp_path / "data")
    with runtime.sessions.begin() as session:
        create_imported_annotation(
            session=session, item_id=verdicts["unreviewed"][0], answer=verdicts["unreviewed"][1]
        )
    summary = snapshot_training_data(runtime, shapes, tmp_path / "data")
    assert summary.train_items == 8
    assert verdicts["unreviewed"][0] in load_snapshot(tmp_path / "data").train["item_id"]


def test_unknown_project_is_a_project_error(runtime, tmp_path):
    with pytest.raises(ProjectError, match="Project #404 does not exist"):
        snapshot_training_data(runtime, 404, tmp_path / "data")

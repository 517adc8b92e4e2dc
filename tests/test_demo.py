"""Demo set-up from a manifest: projects, images, ground truth for the eval items and half the train items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.services.demo import DEFAULT_MANIFEST, DemoError, answer_problem, load_manifest, setup_demo
from app.services.projects import create_project
from db.crud import projects as crud
from db.models import Annotation, AnnotationSource, Split
from rise.synthetic import write_demo_assets
from rise.synthetic.demo import MOOD_RETRAIN_SETTINGS


def _state(runtime, name: str) -> tuple[dict[int, Split], dict[int, list[Annotation]]]:
    with runtime.sessions.begin() as session:
        project = crud.require_project(session=session, name=name)
        items = crud.list_items(session=session, project_id=project.id)
        return {item.id: item.split for item in items}, {item.id: list(item.annotations) for item in items}


def test_demo_labels_every_eval_item_and_about_half_the_train_items(runtime, tmp_path):
    manifest = write_demo_assets(tmp_path / "assets", n_images=40, n_mood=40)

    summary = setup_demo(runtime, manifest)

    assert [view.name for view in summary.projects] == ["demo-mood", "demo-detection", "demo-grounding"]
    for view in summary.projects:
        assert view.created and view.imported.added == 40 and not view.imported.skipped and not view.bad_answers
        splits, annotations = _state(runtime, view.name)
        labelled = {item_id for item_id, rows in annotations.items() if rows}
        train = {item_id for item_id, split in splits.items() if split is Split.train}
        assert labelled >= set(splits) - train  # every eval item can score a model version
        assert 0.25 < len(labelled & train) / len(train) < 0.75  # something to learn from, something left to review
        assert view.annotations_added == len(labelled)
        rows = [row for item_rows in annotations.values() for row in item_rows]
        assert all(row.source is AnnotationSource.imported and row.created_by_name for row in rows)
    manifest_items = json.loads(manifest.read_text())["projects"][2]["items"]
    with runtime.sessions.begin() as session:
        grounding = crud.require_project(session=session, name="demo-grounding")
        queries = {
            item.original_name: item.query for item in crud.list_items(session=session, project_id=grounding.id)
        }
    assert queries == {Path(item["file"]).name: item["query"] for item in manifest_items}


def test_demo_twice_adds_nothing_the_second_time(db_runtime, tmp_path):
    runtime = db_runtime  # SQLite and PostgreSQL
    manifest = write_demo_assets(tmp_path / "assets", n_images=16, n_mood=16)
    setup_demo(runtime, manifest)
    before = {name: _state(runtime, name) for name in ("demo-mood", "demo-detection", "demo-grounding")}

    again = setup_demo(runtime, manifest)

    for view in again.projects:
        assert not view.created and view.imported.added == 0 and view.imported.duplicates == 16
        assert view.annotations_added == 0
        splits, annotations = _state(runtime, view.name)
        assert splits == before[view.name][0]
        assert {k: [a.id for a in v] for k, v in annotations.items()} == {
            k: [a.id for a in v] for k, v in before[view.name][1].items()
        }


def test_invalid_ground_truth_is_reported_and_not_stored(runtime, tmp_path):
    manifest = write_demo_assets(tmp_path / "assets", n_images=8, n_mood=8)
    data = json.loads(manifest.read_text())
    for item in data["projects"][0]["items"]:
        item["answer"] = "green"  # not in the label set
    manifest.write_text(json.dumps(data))

    summary = setup_demo(runtime, manifest, train_labelled_fraction=1.0)

    shapes = summary.projects[0]
    assert shapes.annotations_added == 0 and len(shapes.bad_answers) == 8
    assert "'green' is not one of ['sunny', 'stormy', 'balanced']" in shapes.bad_answers[0].reason


def test_existing_project_with_another_task_is_an_error(runtime, tmp_path):
    manifest = write_demo_assets(tmp_path / "assets", n_images=4, n_mood=4)
    create_project(runtime, "demo-mood", "grounding")
    with pytest.raises(DemoError, match="already exists with task grounding"):
        setup_demo(runtime, manifest)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "Cannot read"), ("{}", 'no "projects" list'), ('{"projects": [{"name": "x"}]}', 'needs "name"')],
)
def test_malformed_manifest_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(DemoError, match=message):
        load_manifest(tmp_path / "manifest.json")


@pytest.mark.skipif(not DEFAULT_MANIFEST.is_file(), reason="assets/demo/manifest.json is generated separately")
def test_bundled_manifest_sets_up_without_skips(runtime):
    summary = setup_demo(runtime)
    for view in summary.projects:
        assert view.imported.added > 0
        assert not view.imported.skipped and not view.bad_answers, (view.imported.skipped, view.bad_answers)


@pytest.mark.skipif(not DEFAULT_MANIFEST.is_file(), reason="assets/demo/manifest.json is generated separately")
def test_bundled_mood_project_holds_out_enough_ground_truth_to_judge_a_retraining(runtime):
    setup_demo(runtime)
    splits, annotations = _state(runtime, "demo-mood")
    held_out = [item_id for item_id, split in splits.items() if split is Split.eval]
    assert len(held_out) >= 30 and all(annotations[item_id] for item_id in held_out)
    to_review = [item_id for item_id, split in splits.items() if split is Split.train and not annotations[item_id]]
    assert len(to_review) >= 30  # enough for a reviewer's round of verdicts before the first Retrain
    with runtime.sessions() as session:
        project = crud.require_project(session=session, name="demo-mood")
        assert project.retrain_settings == list(MOOD_RETRAIN_SETTINGS)  # sized for a Retrain click on a CPU


def test_answer_shapes_are_checked_per_task(runtime):
    with runtime.sessions.begin() as session:
        detect = crud.create_project(session=session, name="d", task_type="detection", labels=["square"])
        refer = crud.create_project(session=session, name="g", task_type="grounding")
        assert answer_problem(detect, [{"label": "square", "box": [1, 2, 10, 12]}], 32, 32) is None
        assert "outside" in answer_problem(detect, [{"label": "square", "box": [1, 2, 40, 12]}], 32, 32)
        assert "needs a label" in answer_problem(detect, [{"label": "circle", "box": [1, 2, 4, 5]}], 32, 32)
        assert answer_problem(refer, [0, 0, 32, 32], 32, 32) is None
        assert "numbers" in answer_problem(refer, [0, 0, "32", 32], 32, 32)

"""Round trip through a real Label Studio server: push a reviewed project, export it back through the server's
snapshot export, import that into a fresh project of a fresh database, and compare."""

from __future__ import annotations

import uuid

import pytest

from app.export.label_studio_push import Credentials, LabelStudioError, LabelStudioServer
from app.runtime import open_runtime
from app.services.exports import push_to_label_studio
from app.services.label_studio_import import pull_from_label_studio
from app.settings import load_settings
from db.models import Annotation, AnnotationSource, Item, Prediction
from tests.utils.exchange import HOSTILE_LABEL, boxes_close, seed_reviewed_project

pytestmark = pytest.mark.label_studio

CASES = {
    "classification": ["circle", HOSTILE_LABEL],
    "detection": ["circle", HOSTILE_LABEL, "square"],
    "grounding": [],
}


@pytest.fixture
def fresh_runtime(tmp_path):
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(tmp_path / "fresh")}), upgrade=True)
    yield runtime
    runtime.close()


def _stored(runtime, project_name):
    """sha256 -> (item, predictions, annotations) of a project, as plain tuples."""
    with runtime.sessions.begin() as session:
        items = session.query(Item).join(Item.project).filter_by(name=project_name).all()
        return {
            item.sha256: (
                (item.width, item.height, item.query),
                [
                    (p.model_name, p.answer, p.cot, p.score)
                    for p in session.query(Prediction).filter_by(item_id=item.id)
                ],
                [
                    (a.answer, a.cot, a.source, a.created_by_name, a.created_at)
                    for a in session.query(Annotation).filter_by(item_id=item.id)
                ],
            )
            for item in items
        }


@pytest.mark.parametrize("task_type", list(CASES))
def test_push_snapshot_export_and_import_keep_labels_boxes_cots_and_verdicts(
    task_type, label_studio_server, runtime, fresh_runtime, tmp_path
):
    name = f"roundtrip {task_type} {uuid.uuid4().hex[:8]}"  # unique on a reused server
    seeded = seed_reviewed_project(runtime, name, task_type, CASES[task_type], tmp_path / "images")
    server = label_studio_server

    pushed = push_to_label_studio(runtime, seeded.id, url=server.url, api_key=server.api_key)

    assert pushed.created_project
    assert (pushed.tasks, pushed.predictions, pushed.annotations) == (4, 4, 2)
    assert pushed.images_uploaded == 4

    report = pull_from_label_studio(fresh_runtime, "copy", pushed.project_id, url=server.url, api_key=server.api_key)

    assert report.skipped == [] and report.notes == []
    assert (report.tasks, report.items_added, report.predictions_added, report.annotations_added) == (4, 4, 4, 2)
    stored = _stored(fresh_runtime, "copy")
    assert set(stored) == {item.sha256 for item in seeded.items}
    for item in seeded.items:
        (width, height, query), predictions, annotations = stored[item.sha256]
        assert (width, height) == (item.width, item.height)
        assert query == item.query  # grounding queries survive; None elsewhere
        [(model_name, answer, cot, score)] = predictions
        assert model_name == "tiny-v1"
        assert boxes_close(answer, item.prediction), (answer, item.prediction)
        assert cot == item.prediction_cot
        assert score == pytest.approx(0.25 * seeded.items.index(item))
        if item.annotation is None:
            assert annotations == []  # rejected or unreviewed: no trusted annotation
            continue
        [(answer, cot, source, author, created_at)] = annotations
        assert boxes_close(answer, item.annotation), (answer, item.annotation)
        assert cot == item.annotation_cot  # the accepted CoT survives; a correction has none
        assert source is AnnotationSource.imported
        assert author == item.reviewer  # who made the verdict, carried in the task's meta
        assert created_at.year == 2025  # and when


def test_a_second_push_adds_nothing_and_pulling_twice_adds_nothing(label_studio_server, runtime, tmp_path):
    name = f"repeat push {uuid.uuid4().hex[:8]}"
    seeded = seed_reviewed_project(
        runtime, name, "detection", ["circle", "square"], tmp_path / "images", first_seed=300
    )
    server = label_studio_server

    first = push_to_label_studio(runtime, seeded.id, url=server.url, api_key=server.api_key)
    again = push_to_label_studio(runtime, seeded.id, url=server.url, api_key=server.api_key)

    assert not again.created_project and again.project_id == first.project_id
    assert (again.tasks, again.already_there, again.images_uploaded) == (0, 4, 0)
    # Pulling into the project the tasks came from finds every item and every answer already stored.
    report = pull_from_label_studio(runtime, name, first.project_id, url=server.url, api_key=server.api_key)
    assert (report.items_added, report.items_existing, report.annotations_added, report.predictions_added) == (
        0,
        4,
        0,
        0,
    )
    assert report.duplicates == 6


def test_a_wrong_api_key_is_refused_without_showing_it(label_studio_server):
    secret = "0123456789abcdef0123456789abcdef01234567"
    with LabelStudioServer(Credentials(label_studio_server.url, secret)) as server:
        with pytest.raises(LabelStudioError) as raised:
            server.check()
    assert "refused" in str(raised.value)
    assert secret not in str(raised.value) and secret not in repr(Credentials(label_studio_server.url, secret))


def test_the_server_accepts_our_config_with_hostile_labels_and_shows_them_as_given(label_studio_server):
    from app.export.label_studio_config import labeling_config

    config = labeling_config("detection", [HOSTILE_LABEL, "x & y", "<script>"])
    credentials = Credentials(label_studio_server.url, label_studio_server.api_key)
    with LabelStudioServer(credentials) as server:
        project_id, created = server.ensure_project(f"hostile labels {uuid.uuid4().hex[:8]}", config)
        project = server.client.projects.get(project_id)
    assert created
    labels = project.get_label_interface().get_control("label").labels
    assert labels == [HOSTILE_LABEL, "x & y", "<script>"]


def test_a_pull_reads_no_file_of_this_machine_that_a_servers_task_names(label_studio_server, runtime, tmp_path):
    from app.export.label_studio import rectangle_result
    from app.export.label_studio_config import labeling_config
    from tests.utils.factories import write_png

    secret = write_png(tmp_path / "secret" / "private.png", seed=700, size=(40, 20))  # a real image, on this machine
    cat = [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]
    credentials = Credentials(label_studio_server.url, label_studio_server.api_key)
    with LabelStudioServer(credentials) as server:
        project_id, _ = server.ensure_project(
            f"local paths {uuid.uuid4().hex[:8]}", labeling_config("detection", ["cat"])
        )
        server.import_tasks(project_id, [
            {"data": {"image": str(secret)}, "annotations": [{"result": cat}]},
            {"data": {"image": f"/data/local-files/?d={secret}"}, "annotations": [{"result": cat}]},
        ])  # fmt: skip

    report = pull_from_label_studio(
        runtime, "pulled", project_id, url=label_studio_server.url, api_key=label_studio_server.api_key
    )

    assert report.tasks == 2 and report.items_added == 0
    assert all("is not read: no image root was given" in " ".join(skipped.reasons) for skipped in report.skipped)

"""Importing Label Studio JSON: bad tasks are reported and skipped whole, stored data is never changed, and images
are found wherever a Label Studio export may point."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from app.export.label_studio import choices_result, rectangle_result, textarea_result
from app.export.label_studio_config import labeling_config
from app.services.label_studio_import import LabelStudioImportError, import_label_studio_file
from app.services.projects import create_project, project_id_called
from db.models import Annotation, AnnotationSource, Item, Prediction
from tests.utils.factories import write_png


def _task(image: str, results: list[dict], *, predictions: list | None = None, **extra) -> dict:
    return {"id": extra.pop("id", 1), "data": {"image": image}, "annotations": [{"result": results}], **extra} | (
        {"predictions": predictions} if predictions is not None else {}
    )


def _write(tmp_path: Path, tasks) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return [write_png(tmp_path / "imgs" / f"{i}.png", seed=500 + i, size=(40, 20)) for i in range(6)]


@pytest.fixture
def detection(runtime):
    create_project(runtime, "det", "detection", ["cat", "dog"])
    return runtime


def _counts(runtime) -> tuple[int, int, int]:
    with runtime.sessions.begin() as session:
        return session.query(Item).count(), session.query(Annotation).count(), session.query(Prediction).count()


def test_bad_tasks_are_skipped_whole_with_their_reasons_and_good_ones_imported(detection, images, tmp_path):
    cat = rectangle_result("cat", [0, 0, 20, 10], 40, 20, "r0")
    rotated = rectangle_result("cat", [0, 0, 20, 10], 40, 20, "r1")
    rotated["value"]["rotation"] = 15
    tasks = [
        _task("imgs/0.png", [cat, textarea_result("ears")], id=10),  # good, path relative to the export file
        _task("imgs/1.png", [rectangle_result("zebra", [0, 0, 5, 5], 40, 20, "z")], id=11),  # unknown label
        _task("imgs/2.png", [rotated], id=12),  # rotated box
        _task("imgs/missing.png", [cat], id=13),  # missing image
        {"id": 14, "data": "not an object"},  # malformed task
        _task("imgs/3.png", [cat], id=15, predictions=[{"result": "broken", "model_version": "m"}]),  # bad prediction
        "not even an object",
        _task("imgs/4.png", [{"type": "rectanglelabels", "value": {"x": 1}}], id=17),  # malformed region
    ]

    report = import_label_studio_file(detection, "det", _write(tmp_path, tasks))

    assert (report.tasks, report.items_added, report.annotations_added) == (8, 1, 1)
    reasons = {skipped.task_id: " ".join(skipped.reasons) for skipped in report.skipped}
    assert "unknown label 'zebra'" in reasons[11]
    assert "rotated box (15 degrees)" in reasons[12]
    assert "missing image" in reasons[13] and "missing.png" in reasons[13]
    assert "`data` object" in reasons[14]
    assert "prediction 1: `result` is not a list" in reasons[15]
    assert "not a task object" in reasons[None]
    assert "without numeric x, y, width, height" in reasons[17]
    assert _counts(detection) == (1, 1, 0)  # the skipped tasks left nothing behind, not even their images' items


def test_nothing_already_stored_changes_and_a_repeat_adds_nothing(detection, images, tmp_path):
    tasks = [
        _task(
            "imgs/0.png",
            [rectangle_result("cat", [0, 0, 20, 10], 40, 20, "r0"), textarea_result("whiskers")],
            predictions=[{"model_version": "m1", "score": 0.5, "result": [choices_result("x")]}],  # wrong control
        )
    ]
    first = import_label_studio_file(detection, "det", _write(tmp_path, [tasks[0] | {"predictions": []}]))
    assert (first.items_added, first.annotations_added) == (1, 1)
    with detection.sessions.begin() as session:
        before = [(a.id, a.answer, a.cot, a.created_at) for a in session.query(Annotation)]

    dog = rectangle_result("dog", [10, 5, 40, 20], 40, 20, "r1")
    again = import_label_studio_file(
        detection,
        "det",
        _write(
            tmp_path,
            [
                tasks[0] | {"predictions": []},  # the same task again: nothing new
                _task("imgs/0.png", [dog], id=2),  # same image, a new annotation: added beside the old one
            ],
        ),
    )

    assert (again.items_added, again.items_existing, again.annotations_added, again.duplicates) == (0, 2, 1, 1)
    with detection.sessions.begin() as session:
        after = [(a.id, a.answer, a.cot, a.created_at) for a in session.query(Annotation).order_by(Annotation.id)]
    assert after[0] == before[0] and len(after) == 2
    assert after[1][1] == [{"label": "dog", "box": [10.0, 5.0, 40.0, 20.0]}]


def test_cancelled_annotations_are_ignored_and_quick_export_prediction_ids_noted(detection, images, tmp_path):
    task = _task("imgs/0.png", [], predictions=[7, 8])
    task["annotations"].append({"result": [], "was_cancelled": True})
    report = import_label_studio_file(detection, "det", _write(tmp_path, [task]))
    assert (report.annotations_added, report.cancelled_annotations, report.predictions_added) == (1, 1, 0)
    assert any("ids only" in note for note in report.notes)
    with detection.sessions.begin() as session:
        [annotation] = session.query(Annotation).all()
        # An empty box list is a real answer for detection ("nothing there"), imported as ground truth.
        assert (annotation.answer, annotation.source) == ([], AnnotationSource.imported)


def test_annotation_author_and_time_come_from_label_studio_fields(detection, images, tmp_path):
    annotation = {
        "result": [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")],
        "completed_by": {"id": 3, "email": "eve@example.com"},
        "created_at": "2024-01-02T03:04:05.678Z",
    }
    task = {"data": {"image": "imgs/0.png"}, "annotations": [annotation]}
    import_label_studio_file(detection, "det", _write(tmp_path, [task]))
    with detection.sessions.begin() as session:
        [stored] = session.query(Annotation).all()
        assert stored.created_by_name == "eve@example.com"
        assert stored.created_at.isoformat() == "2024-01-02T03:04:05.678000"


def test_images_are_found_in_every_form_an_export_uses(detection, images, tmp_path):
    ls_media = tmp_path / "ls-data" / "media"
    upload = ls_media / "upload" / "3" / "1a2b3c4d-up.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(images[2].read_bytes())
    inline = "data:image/png;base64," + base64.b64encode(images[3].read_bytes()).decode()
    cat = [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]
    tasks = [
        _task(str(images[0].resolve()), cat, id=1),  # absolute path
        _task("/data/local-files/?d=imgs/1.png", cat, id=2),  # Label Studio local files, below --image-root
        _task("/data/upload/3/1a2b3c4d-up.png", cat, id=3),  # an upload, found in Label Studio's media folder
        _task(inline, cat, id=4),  # a data URI
        _task("https://elsewhere.example/x.png", cat, id=5),  # a remote URL: not fetched
        _task("data:image/png;base64,!!!", cat, id=6),  # broken base64
    ]
    report = import_label_studio_file(
        detection, "det", _write(tmp_path, tasks), image_root=tmp_path, label_studio_media=ls_media
    )
    assert report.items_added == 4
    reasons = {skipped.task_id: " ".join(skipped.reasons) for skipped in report.skipped}
    assert set(reasons) == {5, 6}
    assert "is on a server" in reasons[5] and "invalid base64" in reasons[6]


def test_a_file_that_is_not_an_image_is_reported(detection, tmp_path):
    (tmp_path / "notes.png").write_text("not a png")
    report = import_label_studio_file(detection, "det", _write(tmp_path, [_task("notes.png", [])]))
    assert "unusable image" in report.skipped[0].reasons[0]


def test_the_project_is_created_from_a_labeling_config(runtime, images, tmp_path):
    task = _task("imgs/0.png", [choices_result("b"), textarea_result("why")])
    config = labeling_config("classification", ["a", "b"])
    report = import_label_studio_file(runtime, "new", _write(tmp_path, [task]), config_xml=config)
    assert report.annotations_added == 1
    with runtime.sessions.begin() as session:
        [annotation] = session.query(Annotation).all()
        assert (annotation.answer, annotation.cot) == ("b", "why")


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), ('{"data": {}}', "not a Label Studio JSON export")],
)
def test_unusable_files_are_errors(detection, tmp_path, content, message):
    path = tmp_path / "export.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LabelStudioImportError, match=message):
        import_label_studio_file(detection, "det", path)


def test_a_missing_project_without_a_config_says_how_to_create_it(runtime, tmp_path):
    from app.commands._common import with_cli_hint

    with pytest.raises(LabelStudioImportError, match="No project named 'nope'.*labeling config") as raised:
        import_label_studio_file(runtime, "nope", _write(tmp_path, []))
    assert "`rise" not in str(raised.value)  # the service says what is missing; the command line adds its syntax
    assert "rise project create nope" in with_cli_hint(raised.value)


def test_a_truncated_file_keeps_what_was_read_and_says_where_it_stopped(detection, images, tmp_path):
    good = json.dumps(_task("imgs/0.png", [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]))
    path = tmp_path / "export.json"
    path.write_text("[" + good + ', {"data": ')
    report = import_label_studio_file(detection, "det", path)
    assert report.items_added == 1
    assert any("stopped reading" in note for note in report.notes)


def test_image_references_are_read_only_inside_the_given_folders(detection, tmp_path):
    root, ls_media = tmp_path / "root", tmp_path / "ls-media"
    write_png(root / "ok.png", seed=600, size=(40, 20))
    (ls_media / "upload").mkdir(parents=True)
    secret = write_png(tmp_path / "secret" / "x.png", seed=601, size=(40, 20))  # a real image, outside both
    (tmp_path / "secret" / "notes.png").write_text("not an image either")
    (root / "link.png").symlink_to(secret)
    cat = [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]
    outside = {
        1: "../secret/x.png",
        2: str(secret),  # absolute
        3: "/data/local-files/?d=../secret/x.png",
        4: "/data/local-files/?d=" + str(secret),
        5: "link.png",  # a symbolic link inside the root that leads out of it
        6: "../secret/notes.png",  # exists outside, not an image
        7: "../secret/absent.png",  # does not exist
        8: "%2e%2e/secret/x.png",  # URL-encoded
    }
    tasks = [_task("ok.png", cat, id=0)] + [_task(ref, cat, id=task_id) for task_id, ref in outside.items()]
    tasks.append(_task("/data/upload/../../secret/x.png", cat, id=9))
    report = import_label_studio_file(
        detection, "det", _write(tmp_path, tasks), image_root=root, label_studio_media=ls_media
    )
    assert report.items_added == 1
    reasons = {skipped.task_id: " ".join(skipped.reasons) for skipped in report.skipped}
    assert set(reasons) == set(range(1, 10))
    # One message for every refusal: whether a file exists outside, and what it holds, is not told.
    shapes = {reason.split("'")[0] + reason.split("'")[-1] for task_id, reason in reasons.items() if task_id != 9}
    assert shapes == {f"missing image: image file  not found under the image root {root}"}
    assert "is on a server" in reasons[9]
    with detection.sessions.begin() as session:
        assert [item.original_name for item in session.query(Item)] == ["ok.png"]


def test_tasks_without_a_folder_to_read_from_read_no_local_file(detection, tmp_path):
    from app.services.label_studio_images import ImageResolver
    from app.services.label_studio_import import import_label_studio_tasks

    # As in a pull from a server without --image-root: the server's tasks name files of this machine.
    secret = write_png(tmp_path / "secret.png", seed=602, size=(40, 20))
    resolver = ImageResolver(media_dir=detection.settings.media_dir, download=None, server_url="http://ls.invalid")
    cat = [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]
    project_id = project_id_called(detection, "det")
    report = import_label_studio_tasks(detection, project_id, [_task(str(secret), cat)], resolver)
    assert report.items_added == 0 and "is not read: no image root was given" in report.skipped[0].reasons[0]


def test_a_bad_task_is_skipped_and_the_good_ones_beside_it_are_stored(db_runtime, tmp_path):
    # On SQLite and PostgreSQL alike: a lone surrogate fails the first's driver, an over-long name the second's.
    detection = db_runtime
    create_project(detection, "det", "detection", ["cat", "dog"])
    paths = [write_png(tmp_path / f"{i}.png", seed=610 + i, size=(40, 20)) for i in range(8)]
    cat = [rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")]
    listed_label = rectangle_result("cat", [0, 0, 4, 4], 40, 20, "r")
    listed_label["value"]["rectanglelabels"] = [["cat"]]
    deep: list = []
    for _ in range(40):
        deep = [deep]
    tasks = [_task(p.name, cat, id=i) for i, p in enumerate(paths[:5])]
    tasks[0]["predictions"] = [{"result": cat, "model_version": "m" * 2_000}]
    tasks.insert(2, _task(paths[5].name, [listed_label], id="label in a list"))
    surrogate = _task(paths[6].name, [*cat, textarea_result("half of a pair: \ud800")], id="surrogate")
    tasks.insert(3, surrogate | {"meta": {"rise": {"original_name": "\udc00.png"}}})
    tasks.insert(4, _task(paths[7].name, cat, id="deep", meta={"nested": deep}))
    # json writes the lone surrogate as the escape "\ud800"; the last element is too deep for any decoder.
    text = json.dumps(tasks)[:-1] + ", " + "[" * 100_000 + "]" * 100_000 + "]"
    path = tmp_path / "export.json"
    path.write_text(text)

    report = import_label_studio_file(detection, "det", path)

    reasons = {skipped.task_id: " ".join(skipped.reasons) for skipped in report.skipped}
    assert set(reasons) == {"label in a list", "deep", None}
    assert "annotation 1: a box whose labels are not a list of text" in reasons["label in a list"]
    assert reasons["deep"] == "nested more than 32 levels deep" and reasons[None] == "nested too deeply to read"
    assert report.items_added == 6 and report.annotations_added == 6  # the five good ones and the surrogate one
    with detection.sessions.begin() as session:
        cots = [annotation.cot for annotation in session.query(Annotation) if annotation.cot]
        names = {item.original_name for item in session.query(Item)}
        [model_name] = [prediction.model_name for prediction in session.query(Prediction)]
    assert cots == ["half of a pair: \ufffd"] and "\ufffd.png" in names and model_name == "m" * 1_024

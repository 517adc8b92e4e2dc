"""The Label Studio export file: golden files with float tolerance, streaming, and a file round trip."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from app.services.exports import ExportError, export_label_studio, label_studio_config
from app.services.label_studio_import import import_label_studio_file
from db.models import Annotation, Item, Prediction
from tests.utils.exchange import HOSTILE_LABEL, boxes_close, seed_reviewed_project

GOLDEN = Path(__file__).parent / "golden"
LABELS = {"classification": ["circle", HOSTILE_LABEL], "detection": ["circle", HOSTILE_LABEL], "grounding": []}


def normalised(value: Any) -> Any:
    """The export with what differs between runs replaced: content hashes, image paths and the creation times of
    rows made now (the seeded verdicts carry a fixed 2025 time, which must survive as it is)."""
    if isinstance(value, dict):
        replaced = {}
        for key, item in value.items():
            if key in ("sha256", "image"):
                replaced[key] = f"<{key}>"
            elif key == "created_at" and isinstance(item, str) and not item.startswith("2025-"):
                replaced[key] = "<now>"
            else:
                replaced[key] = normalised(item)
        return replaced
    if isinstance(value, list):
        return [normalised(item) for item in value]
    return value


def assert_nested_close(actual: Any, expected: Any, path: str = "$", tolerance: float = 1e-6) -> None:
    """Like Label Studio's `compare_nested_structures`: same structure, numbers within `tolerance`."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{path}: {actual!r} != {expected!r}"
        for key in expected:
            assert_nested_close(actual[key], expected[key], f"{path}.{key}", tolerance)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_nested_close(a, e, f"{path}[{index}]", tolerance)
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float) and math.isclose(actual, expected, abs_tol=tolerance), path
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("task_type", list(LABELS))
def test_export_matches_the_golden_file(task_type, runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "golden", task_type, LABELS[task_type], tmp_path / "images").id
    out = tmp_path / "tasks.json"

    summary = export_label_studio(runtime, project_id, out)

    assert (summary.tasks, summary.predictions, summary.annotations) == (4, 4, 2)
    golden = GOLDEN / f"ls_export_{task_type}.json"
    actual = normalised(json.loads(out.read_text()))
    if os.environ.get("RISE_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    assert_nested_close(actual, json.loads(golden.read_text()))
    config = out.with_name("tasks.label_config.xml").read_text()
    assert config == label_studio_config(runtime, project_id)


def test_images_are_local_files_below_the_data_folder_or_under_a_given_url(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "refs", "detection", ["a"], tmp_path / "images").id
    export_label_studio(runtime, project_id, tmp_path / "local.json")
    export_label_studio(runtime, project_id, tmp_path / "url.json", image_root_url="https://files.example/media/")
    export_label_studio(runtime, project_id, tmp_path / "inline.json", inline_images=True)
    for local, url, inline in zip(
        *(json.loads((tmp_path / f"{name}.json").read_text()) for name in ("local", "url", "inline")), strict=True
    ):
        sha = local["meta"]["rise"]["sha256"]
        relative = local["data"]["image"].removeprefix("/data/local-files/?d=")
        assert (runtime.settings.data_dir / relative).is_file() and sha in relative
        assert url["data"]["image"].startswith("https://files.example/media/") and url["data"]["image"].endswith(
            relative.removeprefix("media/")
        )
        assert inline["data"]["image"].startswith("data:image/png;base64,")


def test_unknown_project_is_an_export_error(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "there", "detection", ["a"], tmp_path / "images").id
    with pytest.raises(ExportError, match=f"Project #{project_id + 1} does not exist"):
        export_label_studio(runtime, project_id + 1, tmp_path / "x.json")


@pytest.mark.parametrize("task_type", list(LABELS))
def test_exported_file_imports_into_a_fresh_project_of_another_database(task_type, runtime, tmp_path):
    from app.runtime import open_runtime
    from app.settings import load_settings

    seeded = seed_reviewed_project(runtime, "source", task_type, LABELS[task_type], tmp_path / "images")
    out = tmp_path / "export" / "tasks.json"
    export_label_studio(runtime, seeded.id, out, inline_images=True)
    other = open_runtime(load_settings({"RISE_DATA_DIR": str(tmp_path / "other")}), upgrade=True)
    try:
        # The project is created from the labeling config written beside the tasks.
        report = import_label_studio_file(other, "copy", out)
        assert report.skipped == []
        assert (report.items_added, report.predictions_added, report.annotations_added) == (4, 4, 2)
        with other.sessions.begin() as session:
            for item in seeded.items:
                stored = session.query(Item).filter_by(sha256=item.sha256).one()
                assert (stored.width, stored.height, stored.query) == (item.width, item.height, item.query)
                [prediction] = session.query(Prediction).filter_by(item_id=stored.id).all()
                assert boxes_close(prediction.answer, item.prediction) and prediction.cot == item.prediction_cot
                assert prediction.raw_text.startswith("<think>") and prediction.raw_text.endswith("</answer>")
                annotations = session.query(Annotation).filter_by(item_id=stored.id).all()
                assert [(a.created_by_name, a.cot) for a in annotations] == (
                    [(item.reviewer, item.annotation_cot)] if item.annotation is not None else []
                )
    finally:
        other.close()

"""COCO detection export: hand-computed boxes, categories from the label order, both sources."""

from __future__ import annotations

import json

import pytest

from app.export.coco import coco_bbox
from app.services.exports import ExportError, export_coco
from tests.utils.exchange import HOSTILE_LABEL, seed_reviewed_project


def test_corner_box_becomes_top_left_width_height():
    assert coco_bbox([32, 8.5, 64, 17]) == [32.0, 8.5, 32.0, 8.5]


def test_trusted_annotations_become_coco_boxes(runtime, tmp_path):
    seeded = seed_reviewed_project(runtime, "det", "detection", ["circle", HOSTILE_LABEL], tmp_path / "images")
    out = tmp_path / "coco.json"

    summary = export_coco(runtime, seeded.id, out)

    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["circle", HOSTILE_LABEL]
    assert [(c["id"]) for c in coco["categories"]] == [1, 2]
    assert len(coco["images"]) == summary.images == 4
    assert summary.images_without_answer == 2  # rejected and unreviewed items have no trusted annotation
    # Item 0 was accepted (two boxes), item 1 corrected (one box, the hostile label, touching two borders).
    by_image = {}
    for annotation in coco["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    accepted, corrected = (coco["images"][0], coco["images"][1])
    assert (accepted["width"], accepted["height"]) == (40, 20)
    assert [(a["category_id"], a["bbox"], a["area"]) for a in by_image[accepted["id"]]] == [
        (1, [0.0, 0.0, 40.0, 20.0], 800.0),
        (2, [1.5, 2.25, 18.5, 7.75], pytest.approx(143.375)),
    ]
    w, h = seeded.items[1].width, seeded.items[1].height
    [only] = by_image[corrected["id"]]
    assert only["category_id"] == 2 and only["bbox"] == pytest.approx([w / 3, h / 4, w - w / 3, h - h / 4], abs=0.01)
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3]
    assert all(a["iscrowd"] == 0 and "score" not in a for a in coco["annotations"])


def test_predictions_source_exports_every_item_with_its_score(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "ground", "grounding", [], tmp_path / "images").id
    out = tmp_path / "coco.json"
    summary = export_coco(runtime, project_id, out, source="predictions")
    coco = json.loads(out.read_text())
    assert summary.boxes == 4 and summary.images_without_answer == 0
    assert [a["score"] for a in coco["annotations"]] == [0.0, 0.25, 0.5, 0.75]
    assert coco["categories"] == [{"id": 1, "name": "target", "supercategory": ""}]
    assert all(image["query"].startswith("the <shape>") for image in coco["images"])


def test_classification_projects_and_unknown_sources_are_refused(runtime, tmp_path):
    classes = seed_reviewed_project(runtime, "cls", "classification", ["a", "b"], tmp_path / "images").id
    boxes = seed_reviewed_project(runtime, "det", "detection", ["a"], tmp_path / "images2", first_seed=200).id
    with pytest.raises(ExportError, match="classification project"):
        export_coco(runtime, classes, tmp_path / "x.json")
    with pytest.raises(ExportError, match="Unknown source"):
        export_coco(runtime, boxes, tmp_path / "x.json", source="guesses")

"""COCO detection JSON (`images`, `annotations`, `categories`), written as the items stream in.

COCO boxes are `[x, y, width, height]` in pixels from the top-left corner; ours are `[x1, y1, x2, y2]`. Category ids
start at 1 in label order. A grounding item's one box takes the project's first label (or `target`) and its query
is kept on the image entry. The file is assembled from two streams (images, then annotations, spooled to a
temporary file) so neither is held in memory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.export.jsonstream import atomic_output
from db.crud.exchange import ItemRecord
from rise.tasks import TaskType

SOURCES = ("annotations", "predictions")


@dataclass
class CocoSummary:
    path: Path
    images: int = 0
    boxes: int = 0
    # Items without a usable answer from the chosen source: listed as images with no boxes.
    images_without_answer: int = 0
    unknown_labels: int = 0


def coco_bbox(box: Sequence[float]) -> list[float]:
    """Corner box to COCO `[x, y, width, height]`.

    >>> coco_bbox([10, 20, 60, 70])
    [10.0, 20.0, 50.0, 50.0]
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_categories(labels: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": index, "name": label, "supercategory": ""} for index, label in enumerate(labels, start=1)]


def answer_boxes(answer: Any, task_type: TaskType, labels: Sequence[str]) -> list[tuple[str, list[float]]]:
    """(label, corner box) pairs of a stored detection or grounding answer; empty when it has none."""
    if task_type is TaskType.grounding:
        return [(labels[0], list(answer))] if isinstance(answer, list) and len(answer) == 4 else []
    if not isinstance(answer, list):
        return []
    return [(entry["label"], list(entry["box"])) for entry in answer if isinstance(entry, dict) and "box" in entry]


def image_entry(record: ItemRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": record.id,
        "file_name": record.media_path,
        "width": record.width,
        "height": record.height,
    }
    if record.original_name:
        entry["original_name"] = record.original_name
    if record.query is not None:
        entry["query"] = record.query
    return entry


def _chosen(record: ItemRecord, source: str) -> tuple[Any, float | None] | None:
    """The answer to export for an item: the latest trusted annotation, or the latest prediction with an answer."""
    if source == "annotations":
        return (record.annotations[-1].answer, None) if record.annotations else None
    for prediction in reversed(record.predictions):
        if prediction.answer is not None:
            return prediction.answer, prediction.score
    return None


def write_coco(
    path: Path, records: Iterable[ItemRecord], labels: Sequence[str], task_type: TaskType, *, source: str
) -> CocoSummary:
    summary = CocoSummary(path=path)
    category_ids = {label: index for index, label in enumerate(labels, start=1)}
    annotation_id = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool, atomic_output(path) as out:
        out.write('{"info":{"description":"RISE Annotate export","source":' + json.dumps(source) + '},\n"images":[')
        for record in records:
            out.write(",\n" if summary.images else "\n")
            out.write(json.dumps(image_entry(record), ensure_ascii=False))
            summary.images += 1
            chosen = _chosen(record, source)
            if chosen is None:
                summary.images_without_answer += 1
                continue
            answer, score = chosen
            for label, box in answer_boxes(answer, task_type, labels):
                if label not in category_ids:
                    summary.unknown_labels += 1
                    continue
                x, y, w, h = coco_bbox(box)
                annotation: dict[str, Any] = {
                    "id": annotation_id + 1,
                    "image_id": record.id,
                    "category_id": category_ids[label],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
                if score is not None:
                    annotation["score"] = score
                spool.write(("," if annotation_id else "") + "\n" + json.dumps(annotation))
                annotation_id += 1
        summary.boxes = annotation_id
        out.write('\n],\n"annotations":[')
        spool.seek(0)
        while chunk := spool.read(1 << 16):
            out.write(chunk)
        out.write("\n],\n" + '"categories":' + json.dumps(coco_categories(labels), ensure_ascii=False) + "}\n")
    return summary

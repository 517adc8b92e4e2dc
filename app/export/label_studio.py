"""Label Studio task JSON, both ways: pure functions, one per control type, no database and no network.

Writing (`*_result`, `answer_to_results`, `prediction_json`, `annotation_json`, `task_json`) turns our pixel answers
into Label Studio "results": boxes in percent of the image with a top-left origin, `original_width`/`original_height`
and rotation 0; a classification as a `choices` result; the chain of thought as a `textarea` result on the
`reasoning` control so it survives a trip through Label Studio. Reading (`results_to_answer`) is the inverse and
never raises: unknown labels, rotated boxes and malformed regions come back as problems to report.

The control names below are the ones `label_studio_config.labeling_config` declares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rise.boxes import from_label_studio
from rise.tasks import Answer, TaskType

IMAGE = "image"  # <Image name="image" value="$image"/>
LABEL = "label"  # <Choices name="label"> or <RectangleLabels name="label">
REASONING = "reasoning"  # <TextArea name="reasoning">: the chain of thought
DISTRIBUTION = "distribution"  # <TextArea name="distribution">: a probability distribution as JSON text
QUERY = "query"  # <Text name="query" value="$query"/>: the grounding query
# Label given to the one box of a grounding project that has no label set.
GROUNDING_LABEL = "target"
# Text area names read back as the chain of thought; "cot" for configs written by hand.
REASONING_NAMES = (REASONING, "cot")
# Box coordinates kept in percent to this many decimals: 1e-6 % of a 100,000 px side is 0.001 px.
PERCENT_DECIMALS = 6


def box_labels(task_type: TaskType | str, labels: Sequence[str]) -> list[str]:
    """The `RectangleLabels` values for a box project: its labels, or the one grounding label when it has none."""
    if TaskType(task_type) is TaskType.grounding and not labels:
        return [GROUNDING_LABEL]
    return list(labels)


# Writing: one function per control type


def choices_result(label: str) -> dict[str, Any]:
    """A `Choices` result selecting `label`."""
    return {"from_name": LABEL, "to_name": IMAGE, "type": "choices", "value": {"choices": [label]}}


def rectangle_result(label: str, box: Sequence[float], width: int, height: int, region_id: str) -> dict[str, Any]:
    """A `RectangleLabels` result: the pixel box `[x1, y1, x2, y2]` in percent, top-left origin, unrotated.

    >>> rectangle_result("cat", [10, 20, 60, 70], 200, 100, "r0")["value"]
    {'x': 5.0, 'y': 20.0, 'width': 25.0, 'height': 50.0, 'rotation': 0, 'rectanglelabels': ['cat']}
    """
    # rise.boxes.to_label_studio, inlined: this runs for every box of every task of an export.
    x1, y1, x2, y2 = box
    sx, sy = 100.0 / width, 100.0 / height
    return {
        "id": region_id,
        "from_name": LABEL,
        "to_name": IMAGE,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": round(x1 * sx, PERCENT_DECIMALS),
            "y": round(y1 * sy, PERCENT_DECIMALS),
            "width": round((x2 - x1) * sx, PERCENT_DECIMALS),
            "height": round((y2 - y1) * sy, PERCENT_DECIMALS),
            "rotation": 0,
            "rectanglelabels": [label],
        },
    }


def textarea_result(text: str, from_name: str = REASONING) -> dict[str, Any]:
    """A `TextArea` result holding `text` (the chain of thought by default)."""
    return {"from_name": from_name, "to_name": IMAGE, "type": "textarea", "value": {"text": [text]}}


def answer_to_results(
    answer: Answer,
    task_type: TaskType | str,
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    distribution: bool = False,
    region_prefix: str = "r",
) -> list[dict[str, Any]]:
    """The results that show `answer` (pixels, `rise.tasks` shape) in the generated labeling config.

    A distribution is shown as its most likely label and kept whole, as JSON, in the `distribution` text area.

    Raises:
        ValueError: the answer does not have the shape of `task_type`.
    """
    task_type = TaskType(task_type)
    if task_type is TaskType.classification:
        if distribution or isinstance(answer, dict):
            if not isinstance(answer, dict) or not answer:
                raise ValueError(f"expected a distribution like {{'a': 0.7, 'b': 0.3}}, got {answer!r:.60}")
            top = max(answer, key=lambda label: answer[label])
            return [choices_result(top), textarea_result(json.dumps(answer, sort_keys=True), DISTRIBUTION)]
        if not isinstance(answer, str):
            raise ValueError(f"expected one label, got {answer!r:.60}")
        return [choices_result(answer)]
    if task_type is TaskType.grounding:
        if not _is_box(answer):
            raise ValueError(f"expected one box [x1, y1, x2, y2], got {answer!r:.60}")
        return [rectangle_result(box_labels(task_type, labels)[0], answer, width, height, f"{region_prefix}0")]
    if not isinstance(answer, list):
        raise ValueError(f"expected a list of {{'label', 'box'}} objects, got {answer!r:.60}")
    results = []
    for index, entry in enumerate(answer):
        if not isinstance(entry, dict) or not _is_box(entry.get("box")) or not isinstance(entry.get("label"), str):
            raise ValueError(f"expected {{'label': str, 'box': [x1, y1, x2, y2]}}, got {entry!r:.60}")
        results.append(rectangle_result(entry["label"], entry["box"], width, height, f"{region_prefix}{index}"))
    return results


def _is_box(value: Any) -> bool:
    if type(value) is not list and type(value) is not tuple or len(value) != 4:
        return False
    for v in value:
        if type(v) is not float and type(v) is not int or v != v or v in (math.inf, -math.inf):
            return False
    return True


def timestamp(moment: datetime | None) -> str | None:
    # Stored timestamps are naive UTC (db.models.utcnow); Label Studio writes ISO 8601 with a trailing Z.
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def prediction_json(
    *,
    results: list[dict[str, Any]],
    cot: str | None,
    model_version: str,
    score: float | None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """One entry of a task's `predictions`: the model's answer and its chain of thought."""
    prediction: dict[str, Any] = {
        "model_version": model_version or "unknown",
        "score": score,
        "result": results + ([textarea_result(cot)] if cot else []),
    }
    if created_at is not None:
        prediction["created_at"] = timestamp(created_at)
    return prediction


def annotation_json(
    *,
    results: list[dict[str, Any]],
    cot: str | None,
    author: str,
    created_at: datetime | None,
    ground_truth: bool,
    lead_time_s: float | None = None,
) -> dict[str, Any]:
    """One entry of a task's `annotations`. Label Studio keeps `result`, `ground_truth` and `lead_time` on import
    and sets its own author and time, so `created_username`/`created_at` here are for readers of the file; the
    author and time also travel in the task's `meta` (see `task_json`), which Label Studio keeps."""
    annotation: dict[str, Any] = {
        "result": results + ([textarea_result(cot)] if cot else []),
        "ground_truth": ground_truth,
        "was_cancelled": False,
        "created_username": author,
        "created_at": timestamp(created_at),
    }
    if lead_time_s is not None:
        annotation["lead_time"] = lead_time_s
    return annotation


@dataclass
class AnnotationProvenance:
    """Who made an annotation and how, kept in the task's `meta` because Label Studio re-stamps annotations."""

    author: str
    source: str  # "import", "accept" or "correct"
    created_at: datetime | None


def task_json(
    *,
    image: str,
    sha256: str,
    query: str | None,
    predictions: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    provenance: list[AnnotationProvenance],
    reviews: list[dict[str, Any]] | None = None,
    item_id: int | None = None,
    original_name: str = "",
) -> dict[str, Any]:
    """A Label Studio task. `data` carries the image reference (and the grounding query); `meta.rise` carries what
    Label Studio has no field for: the content hash that identifies the image, who made each annotation, and the
    review verdicts."""
    data: dict[str, Any] = {IMAGE: image}
    if query is not None:
        data[QUERY] = query
    rise_meta: dict[str, Any] = {
        "sha256": sha256,
        "annotations": [
            {"author": p.author, "source": p.source, "created_at": timestamp(p.created_at)} for p in provenance
        ],
    }
    if item_id is not None:
        rise_meta["item_id"] = item_id
    if original_name:
        rise_meta["original_name"] = original_name
    if reviews:
        rise_meta["reviews"] = reviews
    return {"data": data, "meta": {"rise": rise_meta}, "predictions": predictions, "annotations": annotations}


# Reading: results back to answers


@dataclass
class ReadResult:
    """What a list of Label Studio results says: an answer (pixels) and a chain of thought, or the problems."""

    answer: Answer | None = None
    cot: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.answer is not None


def _text_of(result: dict[str, Any]) -> str | None:
    value = result.get("value")
    texts = value.get("text") if isinstance(value, dict) else None
    if isinstance(texts, str):
        return texts
    if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
        return "\n".join(texts)
    return None


def _region_labels(value: dict[str, Any]) -> list[str] | None:
    """A region's labels; None when they are not a list of text."""
    for key in ("rectanglelabels", "labels"):
        if key in value:
            labels = value[key]
            return labels if isinstance(labels, list) and all(isinstance(label, str) for label in labels) else None
    return []


def _read_box(result: dict[str, Any], width: int, height: int) -> tuple[list[float] | None, str | None]:
    value = result.get("value")
    if not isinstance(value, dict):
        return None, "a region without a value"
    numbers = [value.get(key) for key in ("x", "y", "width", "height")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        return None, f"a region without numeric x, y, width, height: {value!r:.80}"
    rotation = value.get("rotation", 0) or 0
    if not isinstance(rotation, int | float) or (rotation % 360) > 1e-6:
        return None, f"a rotated box ({rotation} degrees); only upright boxes are supported"
    box = from_label_studio(*numbers, width=width, height=height)
    if box is None:
        return None, f"a box outside the image or without area: {value!r:.80}"
    return box, None


def results_to_answer(
    results: Any,
    task_type: TaskType | str,
    labels: Sequence[str],
    width: int,
    height: int,
    *,
    distribution: bool = False,
) -> ReadResult:
    """Read the answer and the chain of thought from a Label Studio `result` list; never raises.

    Box percentages are converted with the image's real size (`width`, `height`), which is what percent means.
    """
    task_type = TaskType(task_type)
    read = ReadResult()
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        read.problems.append("`result` is not a list of objects")
        return read
    known = set(box_labels(task_type, labels)) if task_type is not TaskType.classification else set(labels)
    choices: list[str] = []
    boxes: list[dict[str, Any]] = []
    distribution_text: str | None = None
    for result in results:
        kind = result.get("type")
        if kind == "textarea":
            text = _text_of(result)
            if result.get("from_name") in REASONING_NAMES and text is not None:
                read.cot = text
            elif result.get("from_name") == DISTRIBUTION and text is not None:
                distribution_text = text
        elif kind == "choices":
            selected = result.get("value", {}).get("choices") if isinstance(result.get("value"), dict) else None
            if not isinstance(selected, list) or not all(isinstance(c, str) for c in selected):
                read.problems.append(f"a malformed choices result: {result.get('value')!r:.80}")
            else:
                choices.extend(selected)
        elif kind in ("rectanglelabels", "rectangle"):
            box, problem = _read_box(result, width, height)
            region_labels = _region_labels(result.get("value") or {})
            if problem:
                read.problems.append(problem)
            elif region_labels is None:
                read.problems.append(f"a box whose labels are not a list of text: {result.get('value')!r:.80}")
            elif len(region_labels) > 1:
                read.problems.append(f"a box with {region_labels!r:.60} as labels; expected one label")
            else:
                label = region_labels[0] if region_labels else None
                if label is None and len(known) == 1:
                    label = next(iter(known))  # a bare Rectangle in a one-label project
                if task_type is TaskType.detection and label not in known:
                    read.problems.append(f"unknown label {label!r:.60}; the project has {sorted(known)}")
                else:
                    boxes.append({"label": label, "box": box})
    if read.problems:
        return read
    _answer_from_parts(read, task_type, list(labels), distribution, choices, boxes, distribution_text)
    return read


def _answer_from_parts(
    read: ReadResult,
    task_type: TaskType,
    labels: list[str],
    distribution: bool,
    choices: list[str],
    boxes: list[dict[str, Any]],
    distribution_text: str | None,
) -> None:
    if task_type is TaskType.classification:
        unknown = [c for c in choices if c not in labels]
        if unknown:
            read.problems.append(f"unknown label {unknown[0]!r:.60}; the project has {labels}")
        elif distribution and distribution_text is not None:
            read.answer = _read_distribution(distribution_text, labels, read.problems)
        elif len(choices) != 1:
            read.problems.append(f"expected one chosen label, found {len(choices)}")
        elif distribution:
            read.answer = {label: float(label == choices[0]) for label in labels}
        else:
            read.answer = choices[0]
    elif task_type is TaskType.grounding:
        if len(boxes) != 1:
            read.problems.append(f"a grounding answer is one box; found {len(boxes)}")
        else:
            read.answer = boxes[0]["box"]
    else:
        read.answer = boxes


def _read_distribution(text: str, labels: list[str], problems: list[str]) -> dict[str, float] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        problems.append(f"the distribution is not JSON: {text!r:.60}")
        return None
    if not isinstance(value, dict) or set(value) - set(labels):
        problems.append(f"the distribution must map the project's labels {labels} to probabilities: {text!r:.60}")
        return None
    probabilities = {label: value.get(label, 0.0) for label in labels}
    if not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in probabilities.values()):
        problems.append(f"the distribution holds a negative or non-numeric probability: {text!r:.60}")
        return None
    total = sum(probabilities.values())
    if not total > 0 or not math.isfinite(total):
        problems.append("the distribution sums to zero")
        return None
    return {label: p / total for label, p in probabilities.items()}

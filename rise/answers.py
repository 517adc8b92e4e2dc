"""Answers: reading what a model wrote inside `<answer>…</answer>`, validating stored answers, writing them back.

Every answer leaves this module in the JSON shapes of `rise.tasks` and in original-image pixels. Model text goes
through `parse_answer_text`, which never raises and returns `(answer, None)` or `(None, reason)`. Stored and gold
answers go through `normalize_answer`, which raises `ValueError` with the reason, because a bad stored answer is a
data bug someone must fix, not model noise.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from rise.boxes import QWEN2_VL_SCALE, from_pixels, smart_resize, to_pixels
from rise.tasks import Answer, Box, CoordinateFrame, TaskSpec, TaskType

NUMBER = r"-?\d+(?:\.\d+)?"
# Qwen2-VL writes boxes as `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`;
# decoding with skip_special_tokens=True leaves `label(x1,y1),(x2,y2)`, so the special tokens are optional.
BOX_PAIR_RE = re.compile(rf"\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)\s*,?\s*\(\s*({NUMBER})\s*,\s*({NUMBER})\s*\)")
QWEN_SPECIAL_RE = re.compile(r"<\|(?:box_start|box_end|object_ref_start|object_ref_end|quad_start|quad_end)\|>")
LABEL_SEPARATOR_RE = re.compile(r"[\s_\-]+")
# literal_eval builds the whole syntax tree first; beyond this size no real answer is written that way.
MAX_LITERAL_CHARS = 20_000
# The most boxes one answer may hold: far more than any image is annotated with, few enough that reading,
# storing and drawing an answer stays quick.
MAX_BOXES = 1_000
BOX_KEYS = ("box", "bbox_2d", "bbox")
LABEL_KEYS = ("label", "name", "class")
# Characters a model puts around a label ("Circle.", `"circle"`, **circle**) that are never part of it.
LABEL_TRIM = " \t\r\n\"'`*.,;:!"


# Labels


def answer_labels(answer: Any) -> list[str]:
    """The labels an answer names: the label, the most probable label of a distribution, or the box labels (sorted,
    each once). A grounding box names none.

    >>> answer_labels([{"label": "square", "box": [0, 0, 4, 4]}, {"label": "circle", "box": [1, 1, 5, 5]}])
    ['circle', 'square']
    >>> answer_labels({"joy": 0.2, "fear": 0.8}), answer_labels([1, 2, 3, 4])
    (['fear'], [])
    """
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, dict):
        numeric = {k: v for k, v in answer.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        return [max(numeric, key=numeric.__getitem__)] if numeric else []
    if isinstance(answer, list):
        labels = {entry.get("label") for entry in answer if isinstance(entry, dict)}
        return sorted(label for label in labels if isinstance(label, str))
    return []


def label_key(text: str) -> str:
    """The comparison form of a label: case-folded, `_`/`-`/whitespace runs collapsed to one space.

    >>> label_key("  Traffic_Light ")
    'traffic light'
    """
    return LABEL_SEPARATOR_RE.sub(" ", text.casefold()).strip()


def normalize_label(text: str, spec: TaskSpec) -> str | None:
    """The canonical label `text` names (a label or a synonym, any case or spacing), or `None` if it names none.

    >>> spec = TaskSpec("classification", labels=("circle", "square"), synonyms={"ball": "circle"})
    >>> normalize_label(" Ball. ", spec)
    'circle'
    >>> normalize_label("triangle", spec) is None
    True
    """
    cleaned = text.strip(LABEL_TRIM)
    if cleaned in spec.labels:
        return cleaned
    if cleaned in spec.synonyms:
        return spec.synonyms[cleaned]
    key = label_key(cleaned)
    matches = {label for label in spec.labels if label_key(label) == key}
    matches |= {target for synonym, target in spec.synonyms.items() if label_key(synonym) == key}
    # Two labels differing only in case ("Cat", "cat") make a case-folded match ambiguous: refuse rather than guess.
    return matches.pop() if len(matches) == 1 else None


# Reading JSON-ish model text


def _strip_code_fence(text: str) -> str:
    """Qwen2.5-VL wraps JSON in a ```json fence; drop the fence lines."""
    text = text.strip()
    if text.startswith("```"):
        first_newline = text.find("\n")
        text = text[first_newline + 1 :] if first_newline != -1 else text[3:]
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def load_json_value(text: str) -> tuple[Any, str | None]:
    """Parse JSON (or a Python literal with single quotes, which small models often write); never raises."""
    text = _strip_code_fence(text)
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        pass
    if len(text) > MAX_LITERAL_CHARS:
        return None, f"not valid JSON: {text[:60]!r}"
    try:
        return ast.literal_eval(text), None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, OverflowError):
        # why: literal_eval raises all of these on arbitrary text, and deep nesting exhausts the parser
        return None, f"not valid JSON: {text[:60]!r}"


def _as_number(value: Any) -> float | None:
    """A finite float, or `None` for booleans, NaN/inf, huge integers and anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _as_box(value: Any) -> Box | None:
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    numbers = [_as_number(v) for v in value]
    return None if any(n is None for n in numbers) else numbers


def _rounded(box: Box) -> Box:
    # Sub-hundredth-pixel precision means nothing and makes stored answers noisy.
    return [round(v, 2) for v in box]


# Structure: JSON value -> (label or None, box in some frame) pairs


def _too_many_boxes(count: int) -> str:
    return f"{count:,} boxes are more than the {MAX_BOXES:,} one answer may hold"


def _box_items_from_value(value: Any) -> tuple[list[tuple[str | None, Box]], str | None]:
    """Accept `[x1,y1,x2,y2]`, `{"box"|"bbox_2d"|"bbox": [...], "label": ...}`, or a list of either."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list | tuple):
        return [], f"expected a JSON list of boxes, got {type(value).__name__}"
    if len(value) > MAX_BOXES:
        return [], _too_many_boxes(len(value))
    if _as_box(value) is not None:
        return [(None, _as_box(value))], None
    items: list[tuple[str | None, Box]] = []
    for entry in value:
        if isinstance(entry, dict):
            raw_box = next((entry[key] for key in BOX_KEYS if key in entry), None)
            raw_label = next((entry[key] for key in LABEL_KEYS if key in entry), None)
            box = _as_box(raw_box)
            if box is None:
                return [], f"entry {entry!r:.80} has no box of four numbers under 'box' or 'bbox_2d'"
            if raw_label is not None and not isinstance(raw_label, str):
                return [], f"label {raw_label!r:.40} is not text"
            items.append((raw_label, box))
        elif _as_box(entry) is not None:
            items.append((None, _as_box(entry)))
        else:
            return [], f"entry {entry!r:.80} is neither a box [x1, y1, x2, y2] nor an object with a 'box'"
    return items, None


def _box_items_from_qwen_text(text: str) -> tuple[list[tuple[str | None, Box]], str | None]:
    """Boxes written as `label(x1,y1),(x2,y2)`, with or without Qwen's special tokens around them; none when the
    text holds no such box."""
    items: list[tuple[str | None, Box]] = []
    previous_end = 0
    for match in BOX_PAIR_RE.finditer(text):
        # The label is whatever text sits between the previous box and this one, special tokens removed.
        label = QWEN_SPECIAL_RE.sub("", text[previous_end : match.start()]).strip(LABEL_TRIM + "[]{}")
        box = [_as_number(float(g)) for g in match.groups()]
        if any(v is None for v in box):
            return [], None
        items.append((label or None, box))
        if len(items) > MAX_BOXES:
            return [], _too_many_boxes(sum(1 for _ in BOX_PAIR_RE.finditer(text)))
        previous_end = match.end()
    return items, None


def _box_items_from_text(text: str) -> tuple[list[tuple[str | None, Box]], str | None]:
    stripped = _strip_code_fence(text)
    if not stripped.startswith(("[", "{")):
        items, error = _box_items_from_qwen_text(stripped)
        if items or error:
            return items, error
    value, error = load_json_value(stripped)
    if error is not None:
        return [], error
    return _box_items_from_value(value)


# Structure -> answer in pixels


def _is_size(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _pixel_box(box: Box, frame: CoordinateFrame, width: Any, height: Any) -> tuple[Box | None, str]:
    """`box` (in `frame`) as clipped pixels, or `None` and why not. Without an image size, pixels are only checked."""
    if width is None and height is None and frame is CoordinateFrame.pixels:
        x1, x2 = sorted((box[0], box[2]))
        y1, y2 = sorted((box[1], box[3]))
        if x1 < 0 or y1 < 0:
            return None, "has negative pixel coordinates"
        pixels = [x1, y1, x2, y2]
    elif not (_is_size(width) and _is_size(height)):
        return None, f"cannot be converted to pixels: the image size {width!r}x{height!r} is not known"
    else:
        pixels = to_pixels(box, frame, width, height)
        if pixels is None:
            return None, "lies outside the image or has no area"
    pixels = _rounded(pixels)
    if pixels[2] <= pixels[0] or pixels[3] <= pixels[1]:
        return None, "has no area (at 0.01 px precision)"
    return pixels, ""


def _boxes_to_answer(
    items: list[tuple[str | None, Box]], spec: TaskSpec, frame: CoordinateFrame, width: int | None, height: int | None
) -> tuple[Answer | None, str | None]:
    if spec.task_type is TaskType.grounding:
        if len(items) != 1:
            return None, f"expected exactly one box for the query, got {len(items)}"
        box, problem = _pixel_box(items[0][1], frame, width, height)
        return (box, None) if box is not None else (None, f"box {items[0][1]} {problem}")
    answer = []
    for raw_label, raw_box in items:
        if raw_label is None:
            if len(spec.labels) != 1:
                return None, f"box {raw_box} has no label; expected one of {list(spec.labels)}"
            raw_label = spec.labels[0]
        label = normalize_label(raw_label, spec)
        if label is None:
            return None, f"unknown label {raw_label!r:.40}; expected one of {list(spec.labels)}"
        box, problem = _pixel_box(raw_box, frame, width, height)
        if box is None:
            return None, f"box {raw_box} ({label}) {problem}"
        answer.append({"label": label, "box": box})
    return answer, None


def _distribution_from_value(value: Any, spec: TaskSpec) -> tuple[dict[str, float] | None, str | None]:
    if isinstance(value, str):
        label = normalize_label(value, spec)
        if label is None:
            return None, f"unknown label {value!r:.40}; expected one of {list(spec.labels)}"
        return {name: float(name == label) for name in spec.labels}, None
    if not isinstance(value, dict):
        return None, f'expected a JSON object like {{"{spec.labels[0]}": 0.7, ...}}, got {type(value).__name__}'
    totals = dict.fromkeys(spec.labels, 0.0)
    for raw_label, raw_probability in value.items():
        label = normalize_label(str(raw_label), spec)
        if label is None:
            return None, f"unknown label {raw_label!r:.40}; expected labels from {list(spec.labels)}"
        probability = _as_number(raw_probability)
        if probability is None or probability < 0:
            return None, f"probability {raw_probability!r:.40} for {label!r} is not a non-negative number"
        totals[label] += probability
    total = sum(totals.values())
    if not total > 0 or not math.isfinite(total):
        return None, "the probabilities sum to zero"
    # Models rarely sum to exactly 1 (or write percents); the shape, not the scale, is the answer.
    return {label: p / total for label, p in totals.items()}, None


# Public API


def parse_answer_text(text: str, spec: TaskSpec, width: int, height: int) -> tuple[Answer | None, str | None]:
    """Read the text a model wrote inside `<answer>…</answer>` as an answer in original-image pixels; never raises.

    Boxes are read in the spec's coordinate frame, converted to pixels and clipped to the image; a box entirely
    outside the image is an error.

    Returns:
        `tuple[Answer | None, str | None]`: the answer and `None`, or `None` and the reason it could not be read.

    >>> spec = TaskSpec("detection", labels=("circle", "square"))
    >>> parse_answer_text('[{"label": "Circle", "box": [0, 0, 500, 1000]}]', spec, 200, 100)
    ([{'label': 'circle', 'box': [0.0, 0.0, 100.0, 100.0]}], None)
    >>> parse_answer_text("triangle", TaskSpec("classification", labels=("circle", "square")), 0, 0)
    (None, "unknown label 'triangle'; expected one of ['circle', 'square']")
    """
    if not isinstance(text, str) or not text.strip():
        return None, "the answer is empty"
    if spec.task_type is TaskType.classification:
        if not spec.distribution:
            label = normalize_label(text, spec)
            if label is None:
                return None, f"unknown label {text.strip()!r:.40}; expected one of {list(spec.labels)}"
            return label, None
        value, error = load_json_value(text)
        return (None, error) if error is not None else _distribution_from_value(value, spec)
    items, error = _box_items_from_text(text)
    if error is not None:
        return None, error
    return _boxes_to_answer(items, spec, spec.frame, width, height)


def normalize_answer(value: Any, spec: TaskSpec, width: int | None = None, height: int | None = None) -> Answer:
    """Validate a stored or gold answer (pixels; a JSON string or the object) and return its canonical form.

    Labels become canonical, distributions cover the whole label set and sum to 1, box corners are ordered, and
    boxes are clipped to the image when its size is given.

    Raises:
        `ValueError`: the answer does not fit the task, with the reason.

    >>> emotions = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
    >>> normalize_answer('{"joy": 3, "fear": 1}', emotions)
    {'joy': 0.75, 'fear': 0.25}
    >>> normalize_answer("[120, 80, 20, 10]", TaskSpec("grounding"), width=100, height=100)
    [20.0, 10.0, 100.0, 80.0]
    """
    if spec.task_type is TaskType.classification and not spec.distribution:
        if isinstance(value, str):
            label = normalize_label(value, spec)
            if label is None and value.strip().startswith('"'):
                loaded, _ = load_json_value(value)
                label = normalize_label(loaded, spec) if isinstance(loaded, str) else None
            if label is not None:
                return label
        raise ValueError(f"{value!r:.60} is not one of the labels {list(spec.labels)}")
    if isinstance(value, str):
        loaded, error = load_json_value(value)
        if error is not None:
            if spec.distribution and normalize_label(value, spec) is not None:
                loaded = value  # a bare label on a distribution task means all the mass on that label
            else:
                raise ValueError(f"answer {value!r:.60} is {error}")
        value = loaded
    if spec.distribution:
        answer, error = _distribution_from_value(value, spec)
    else:
        items, error = _box_items_from_value(value)
        answer = None
        if error is None:
            answer, error = _boxes_to_answer(items, spec, CoordinateFrame.pixels, width, height)
    if error is not None:
        raise ValueError(f"Invalid {spec.task_type.value} answer: {error}")
    return answer


INTEGER_FRAMES = (CoordinateFrame.qwen2_vl, CoordinateFrame.qwen2_5_vl)


def _frame_number(value: float, frame: CoordinateFrame) -> int | float:
    # Qwen frames are integers by construction; pixel and percent frames keep two decimals, dropping ".0".
    if frame in INTEGER_FRAMES or float(value).is_integer():
        return int(round(value))
    return round(value, 2)


def answer_to_text(answer: Any, spec: TaskSpec, width: int, height: int) -> str:
    """Write a pixel answer as the model should (boxes in the spec's frame); the inverse of `parse_answer_text`.

    Raises:
        `ValueError`: the answer does not fit the task.

    >>> spec = TaskSpec("detection", labels=("circle",))
    >>> answer_to_text([{"label": "circle", "box": [0, 0, 100, 50]}], spec, 200, 100)
    '[{"label": "circle", "box": [0, 0, 500, 500]}]'
    """
    answer = normalize_answer(answer, spec, width, height)
    if spec.task_type is TaskType.classification:
        if not spec.distribution:
            return answer
        return json.dumps({label: round(p, 4) for label, p in answer.items()})

    def in_frame(box: Box) -> list[int | float]:
        values = [_frame_number(v, spec.frame) for v in from_pixels(box, spec.frame, width, height)]
        if spec.frame in INTEGER_FRAMES:
            limits = (
                (int(QWEN2_VL_SCALE),) * 2 if spec.frame is CoordinateFrame.qwen2_vl else smart_resize(width, height)
            )
            for low, high, limit in ((0, 2, limits[0]), (1, 3, limits[1])):
                if values[high] <= values[low]:
                    # why: a box under half a frame unit would round to no area and be unreadable; keep one unit
                    if values[low] >= limit:
                        values[low] = limit - 1
                    else:
                        values[high] = values[low] + 1
        return values

    if spec.task_type is TaskType.grounding:
        return json.dumps(in_frame(answer))
    return json.dumps([{"label": item["label"], "box": in_frame(item["box"])} for item in answer])

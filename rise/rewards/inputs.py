"""What TRL hands a reward function, turned into plain values: completion texts, image sizes, gold answers."""

from __future__ import annotations

from typing import Any

from rise.answers import load_json_value, normalize_answer
from rise.parsing import ParsedCompletion, parse_completion
from rise.tasks import Answer, TaskSpec


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or conversational messages whose contents are joined.

    Message content may be a string or a list of parts (`{"type": "text", "text": ...}`) as VLM chat templates use.

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "<answer>a</answer>"}]}])
    '<answer>a</answer>'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, list | tuple):
        return ""
    parts: list[str] = []
    for message in completion:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list | tuple):
            parts.extend(
                part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return "".join(parts)


def _size_of(image: Any) -> tuple[int, int] | None:
    if isinstance(image, list | tuple):
        image = image[0] if image else None
    size = getattr(image, "size", None)  # PIL images; TRL passes them through unchanged
    if isinstance(size, tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def image_sizes(count: int, spec: TaskSpec, kwargs: dict[str, Any]) -> list[tuple[int, int] | None]:
    """Each example's original (width, height), from `width`/`height` columns or else the `image`/`images` column.

    Raises:
        `ValueError`: a box task whose dataset gives no way to know image sizes.
    """
    widths, heights = kwargs.get("width"), kwargs.get("height")
    if widths is not None and heights is not None:
        return [(w, h) if w is not None and h is not None else None for w, h in zip(widths, heights, strict=True)]
    for key in ("images", "image"):
        if kwargs.get(key) is not None:
            return [_size_of(image) for image in kwargs[key]]
    if not spec.has_boxes:
        return [None] * count  # labels need no size
    raise ValueError(
        f"{spec.task_type.value} rewards need each image's size to read boxes: add integer `width` and `height` "
        "columns to the dataset (original pixels), or keep its `image`/`images` column, which TRL passes on."
    )


def load_gold(value: Any, spec: TaskSpec, size: tuple[int, int] | None) -> Answer | None:
    """A gold answer (JSON string or object, pixels) in canonical form, or `None` when it is missing or invalid.

    `None` makes TRL skip the example for this reward, as `trl.rewards.accuracy_reward` does with unparseable gold.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if spec.has_boxes and size is None:
        return None  # boxes cannot be compared without the image size; skip rather than score 0
    width, height = size if size is not None else (None, None)
    try:
        return normalize_answer(value, spec, width, height)
    except ValueError:
        return None


def load_gold_list(value: Any, spec: TaskSpec, size: tuple[int, int] | None) -> list[Answer]:
    """Several gold answers (a JSON list string or a list); invalid entries are left out."""
    if isinstance(value, str):
        value, error = load_json_value(value) if value.strip() else ([], None)
        if error is not None:
            return []
    if not isinstance(value, list | tuple):
        return []
    answers = (load_gold(entry, spec, size) for entry in value)
    return [answer for answer in answers if answer is not None]


def parse_completions(
    spec: TaskSpec, completions: list[Any], kwargs: dict[str, Any], *, require_think: bool = True
) -> tuple[list[ParsedCompletion], list[tuple[int, int] | None]]:
    """Parse every completion of a reward call; also returns each example's image size for reading gold boxes."""
    texts = [completion_text(completion) for completion in completions]
    sizes = image_sizes(len(texts), spec, kwargs)
    parsed = [
        parse_completion(text, spec, *(size or (None, None)), require_think=require_think)
        for text, size in zip(texts, sizes, strict=True)
    ]
    return parsed, sizes

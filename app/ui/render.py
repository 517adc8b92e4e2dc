"""Pure formatting for the review UI: model text to escaped HTML, answers to annotator boxes and back.

Everything a model wrote (chain of thought, raw output, labels inside answers) and everything a user typed (project
names, queries) passes through `escape` before it reaches an HTML component, so a CoT containing `<script>` or a
Markdown link shows as the literal text the model produced.
"""

from __future__ import annotations

import html
import math
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from rise.boxes import clip_box

# Box colours by label index; distinct on both light and dark backgrounds.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 190, 190),
    (240, 50, 230),
    (128, 128, 0),
    (0, 0, 128),
    (170, 110, 40),
)
UNKNOWN_LABEL_COLOUR = (90, 90, 90)
GROUNDING_LABEL = "target"


def escape(text: object) -> str:
    """HTML-escape any value (quotes included) so that it can only ever show as text.

    >>> escape('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    """
    return html.escape("" if text is None else str(text), quote=True)


def label_colour(label: str, labels: list[str] | tuple[str, ...]) -> tuple[int, int, int]:
    if label in labels:
        return PALETTE[list(labels).index(label) % len(PALETTE)]
    return UNKNOWN_LABEL_COLOUR


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def css_rgb(rgb: tuple[int, int, int]) -> str:
    """The one colour form `gradio_image_annotation` reads back from the browser unchanged ("rgb(r, g, b)")."""
    return "rgb({}, {}, {})".format(*rgb)


def format_confidence(score: float | None) -> str:
    """'87 %' for a score in [0, 1]; 'n/a' when the model gave none."""
    if score is None or not math.isfinite(score):
        return "n/a"
    return f"{round(score * 100)} %"


def confidence_level(score: float | None) -> str:
    """A CSS class suffix: low / medium / high / none."""
    if score is None or not math.isfinite(score):
        return "none"
    if score < 0.5:
        return "low"
    if score < 0.8:
        return "medium"
    return "high"


def _format_box(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def format_answer(task_type: str, answer: Any) -> str:
    """A one-glance plain-text summary of an answer (not escaped; pass it through `escape` for HTML)."""
    if answer is None:
        return "no answer"
    if task_type == "classification":
        if isinstance(answer, dict):
            ranked = sorted(answer.items(), key=lambda kv: kv[1], reverse=True)
            return ", ".join(f"{label} {prob:.0%}" for label, prob in ranked)
        return str(answer)
    if task_type == "grounding":
        return _format_box(answer) if isinstance(answer, list) else str(answer)
    if isinstance(answer, list):
        if not answer:
            return "no objects"
        counts: dict[str, int] = {}
        for obj in answer:
            label = str(obj.get("label", "?")) if isinstance(obj, dict) else "?"
            counts[label] = counts.get(label, 0) + 1
        return f"{len(answer)} object{'s' if len(answer) != 1 else ''}: " + ", ".join(
            f"{n} × {label}" for label, n in counts.items()
        )
    return str(answer)


def cot_html(cot: str | None, raw_text: str = "", parse_error: str | None = None) -> str:
    """The chain of thought as escaped, whitespace-preserving text; the raw output when it could not be parsed."""
    parts = ['<div class="rise-cot-title">Reasoning</div>']
    if cot and cot.strip():
        parts.append(f'<div class="rise-cot" data-testid="cot">{escape(cot.strip())}</div>')
    else:
        parts.append('<div class="rise-cot rise-muted" data-testid="cot">The model gave no reasoning.</div>')
    if parse_error:
        parts.append(f'<div class="rise-parse-error">Could not read the answer: {escape(parse_error)}</div>')
        if raw_text:
            parts.append(f'<div class="rise-raw">{escape(raw_text)}</div>')
    return "\n".join(parts)


def _is_machine_path(name: str) -> bool:
    return PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or name.startswith("~")


def model_display_name(model_name: str) -> str:
    """How a prediction's model is shown: a version name or a Hub id as it is; a model folder by its own name, never
    the machine's path to it; a base model with an adapter folder as both names.

    >>> model_display_name("shapes-v2"), model_display_name("Qwen/Qwen2-VL-2B-Instruct")
    ('shapes-v2', 'Qwen/Qwen2-VL-2B-Instruct')
    >>> model_display_name("/srv/rise/assets/demo-model"), model_display_name("/m/base+/runs/job-3/adapter")
    ('demo-model', 'base + adapter')
    """
    base, plus, adapter = model_name.partition("+")
    if plus and _is_machine_path(adapter):
        return f"{model_display_name(base)} + {model_display_name(adapter)}"
    if _is_machine_path(model_name):
        return PurePosixPath(model_name.replace("\\", "/")).name or model_name
    return model_name


def model_html(model_name: str, *, show_source: bool = False) -> str:
    """The model's shown name, escaped; with `show_source` (admins), the full name or path as its tooltip."""
    shown = model_display_name(model_name) if model_name else "unknown"
    if show_source and model_name and shown != model_name:
        return f'<span title="{escape(model_name)}">{escape(shown)}</span>'
    return escape(shown)


def task_card_html(
    *,
    task_type: str,
    item_id: int,
    position: int,
    remaining: int,
    model_name: str,
    score: float | None,
    answer: Any,
    query: str | None = None,
    verdict: str | None = None,
    show_model_source: bool = False,
) -> str:
    """The header beside the image: where we are in the queue, which model answered, how sure it was, and what.

    The model shows by its name, not the path of its folder (`model_display_name`); `show_model_source` (for admins)
    adds the full name or path as a tooltip.
    """
    level = confidence_level(score)
    rows = [
        '<div class="rise-card">',
        '<div class="rise-card-top">',
        f'<span class="rise-pill">Item #{item_id}</span>',
        f'<span class="rise-pill">{position} of {position + max(remaining, 0)}</span>',
        f'<span class="rise-confidence rise-confidence-{level}" title="Model confidence">'
        f"confidence {escape(format_confidence(score))}</span>",
        "</div>",
    ]
    if verdict:
        rows.insert(4, f'<span class="rise-pill rise-verdict">current verdict: {escape(verdict)}</span>')
    if query:
        rows.append(f'<div class="rise-query"><b>Query:</b> {escape(query)}</div>')
    rows.append(f'<div class="rise-answer"><b>Answer:</b> {escape(format_answer(task_type, answer))}</div>')
    rows.append(f'<div class="rise-model"><b>Model:</b> {model_html(model_name, show_source=show_model_source)}</div>')
    rows.append("</div>")
    return "\n".join(rows)


def empty_queue_html(message: str) -> str:
    return f'<div class="rise-card rise-empty">{escape(message)}</div>'


# Annotator <-> answer -----------------------------------------------------------------------------------------


def answer_to_boxes(
    task_type: str, answer: Any, labels: list[str] | tuple[str, ...], scale: float = 1.0
) -> list[dict[str, Any]]:
    """An answer in pixels to `gradio_image_annotation` boxes on an image shown `scale` times enlarged.

    Malformed entries are dropped, not fatal: the reviewer sees what could be read and can redraw the rest.
    """
    boxes: list[dict[str, Any]] = []
    if task_type == "grounding":
        entries = [{"label": GROUNDING_LABEL, "box": answer}] if isinstance(answer, list) else []
    elif task_type == "detection":
        entries = answer if isinstance(answer, list) else []
    else:
        return []
    for entry in entries:
        box = entry.get("box") if isinstance(entry, dict) else None
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            continue
        label = str(entry.get("label", ""))
        x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
        boxes.append(
            {
                "xmin": x1,
                "ymin": y1,
                "xmax": x2,
                "ymax": y2,
                "label": label,
                "color": css_rgb(PALETTE[0] if task_type == "grounding" else label_colour(label, labels)),
            }
        )
    return boxes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def boxes_to_answer(
    task_type: str, boxes: list[dict[str, Any]], *, width: int, height: int, scale: float = 1.0
) -> Any:
    """Annotator boxes (display pixels) back to an answer in original pixels, clipped to the image.

    Boxes with no area left after clipping are dropped. Grounding takes the one box (None when there is none).
    """
    cleaned = []
    for box in boxes or []:
        corners = [float(box[k]) / scale for k in ("xmin", "ymin", "xmax", "ymax")]
        clipped = clip_box(corners, width, height)
        if clipped is None:
            continue
        cleaned.append({"label": str(box.get("label") or ""), "box": [round(v, 2) for v in clipped]})
    if task_type == "grounding":
        return cleaned[0]["box"] if cleaned else None
    return cleaned


def boxes_signature(boxes: list[dict[str, Any]]) -> list[tuple]:
    """Order-insensitive comparison key for annotator boxes (labels and whole display-pixel corners)."""
    return sorted(
        (str(b.get("label") or ""), *(round(float(b[k])) for k in ("xmin", "ymin", "xmax", "ymax"))) for b in boxes
    )


def distribution_rows(answer: Any, labels: list[str] | tuple[str, ...]) -> list[list[Any]]:
    """Rows [label, probability] for the distribution editor, in the project's label order."""
    probs = answer if isinstance(answer, dict) else {}
    return [[label, round(float(probs.get(label, 0.0)), 4)] for label in labels]


def rows_to_distribution(rows: list[list[Any]], labels: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Read the distribution editor back, renormalised to sum to 1.

    Raises:
        ValueError: a probability is negative or not a number, or they are all zero.
    """
    values: dict[str, float] = {label: 0.0 for label in labels}
    for row in rows:
        if len(row) < 2 or str(row[0]) not in values:
            continue
        try:
            value = float(row[1])
        except (TypeError, ValueError):
            raise ValueError(f"The probability for {row[0]!r} is not a number: {row[1]!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"The probability for {row[0]!r} must be zero or more, got {row[1]!r}")
        values[str(row[0])] = value
    total = sum(values.values())
    if total <= 0:
        raise ValueError("Give at least one label a probability above zero.")
    return {label: value / total for label, value in values.items()}


def progress_bar_html(done: int, total: int, caption: str) -> str:
    fraction = done / total if total else 0.0
    return (
        '<div class="rise-progress">'
        f'<div class="rise-progress-caption">{escape(caption)}</div>'
        f'<div class="rise-progress-track"><div class="rise-progress-fill" style="width:{fraction * 100:.1f}%"></div>'
        "</div></div>"
    )

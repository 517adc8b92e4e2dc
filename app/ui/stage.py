"""The review screen's staged panels: the item on screen and, hidden behind it, the item leased ahead.

The image, the item card and the reasoning are each an HTML panel holding two slides: the current item's, shown,
and the upcoming item's (`ReviewTask.upcoming`), hidden, its image already loaded by the browser. When the reviewer
gives a verdict by key, the key listener (`app.ui.shortcuts`) shows the upcoming slides at once, in the same frame,
while the server records the verdict; the server's answer then brings that same item as the current one, with the
next item hidden behind it. So the reviewer's wait is one frame, not a round trip.

Only a screen without editors that belong to one item shows the upcoming item early: a single-label classification
item whose image could be shown (`can_show_early`). Box editors and probability tables are Gradio components that
the server fills, so those items wait for the server as before; their next image is still preloaded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from app.services.review import ReviewTask
from app.ui import render
from app.ui.display import display_copy, display_scale, served_copy, shown_size

# Gradio's route for files in its upload folder, relative to the page (so it also works under a path prefix).
FILE_ROUTE = "gradio_api/file="


def file_url(path: str | Path) -> str:
    """The page-relative URL under which Gradio serves a file of its upload folder."""
    return FILE_ROUTE + quote(str(path))


def has_boxes(task: ReviewTask) -> bool:
    return task.task_type in ("detection", "grounding")


def shown_image(task: ReviewTask) -> tuple[str | None, int, str]:
    """The servable copy of the task's image (enlarged for the box editor), its enlargement factor on screen, and
    why it cannot be shown ("" if it can)."""
    try:
        if has_boxes(task):
            path, scale = display_copy(task.image_path, task.width, task.height)
        else:
            path, scale = served_copy(task.image_path), display_scale(task.width, task.height)
    except (OSError, ValueError) as error:
        return None, 1, f"The image cannot be shown ({error}); reject or skip this item."
    return path, scale, ""


def can_show_early(task: ReviewTask) -> bool:
    """Whether the item can be put on screen before the server confirms it (see the module docstring)."""
    return task.task_type == "classification" and not task.distribution


def card_html(task: ReviewTask) -> str:
    return render.task_card_html(
        task_type=task.task_type,
        item_id=task.item_id,
        position=task.position,
        remaining=task.remaining,
        model_name=task.model_name,
        score=task.score,
        answer=task.answer,
        query=task.query,
        verdict=task.verdict,
    )


def reasoning_html(task: ReviewTask) -> str:
    return render.cot_html(task.cot, task.raw_text, task.parse_error)


def image_html(task: ReviewTask, path: str | None) -> str:
    """The image at its size on screen: small images enlarged by a whole factor, every pixel a crisp square."""
    if path is None:
        return '<div class="rise-stage-missing rise-muted">No image</div>'
    width, height = shown_size(task.width, task.height)
    alt = render.escape(f"Item #{task.item_id}")
    url = render.escape(file_url(path))
    size = f'width="{width}" height="{height}"'
    pixelated = " rise-pixelated" if display_scale(task.width, task.height) > 1 else ""
    return (
        f'<a href="{url}" target="_blank" rel="noopener">'
        f'<img class="rise-stage-image{pixelated}" src="{url}" {size} alt="{alt}"></a>'
    )


def _staged(current: str, upcoming: str | None, *, item_id: int, upcoming_task: ReviewTask | None) -> str:
    attributes = f'class="rise-stage" data-item="{item_id}"'
    if upcoming_task is not None and upcoming is not None:
        attributes += f' data-upcoming="{upcoming_task.item_id}"'
        if can_show_early(upcoming_task):
            attributes += ' data-show-early="1"'
            if isinstance(upcoming_task.answer, str):
                attributes += f' data-upcoming-answer="{render.escape(upcoming_task.answer)}"'
    slides = [f'<div class="rise-slide">{current}</div>']
    if upcoming is not None:
        slides.append(f'<div class="rise-slide" hidden>{upcoming}</div>')
    return f"<div {attributes}>{''.join(slides)}</div>"


def staged_panels(task: ReviewTask, image_path: str | None) -> tuple[str, str, str]:
    """The image, card and reasoning panels of `task` (its image already copied to `image_path`), each with the
    upcoming item's slide hidden behind."""
    upcoming = task.upcoming
    upcoming_image = shown_image(upcoming)[0] if upcoming is not None else None
    early = upcoming is not None and can_show_early(upcoming) and upcoming_image is not None
    show_image = can_show_early(task)
    image_panel = _staged(
        image_html(task, image_path) if show_image else "",
        image_html(upcoming, upcoming_image) if upcoming is not None else None,
        item_id=task.item_id,
        upcoming_task=upcoming if early else None,
    )
    card_panel = _staged(
        card_html(task),
        card_html(upcoming) if early and upcoming is not None else None,
        item_id=task.item_id,
        upcoming_task=upcoming if early else None,
    )
    reasoning_panel = _staged(
        reasoning_html(task),
        reasoning_html(upcoming) if early and upcoming is not None else None,
        item_id=task.item_id,
        upcoming_task=upcoming if early else None,
    )
    return image_panel, card_panel, reasoning_panel

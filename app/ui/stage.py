"""The review screen's staged panels: the item on screen and, hidden behind it, the items leased ahead.

The image, the item card and the reasoning are each an HTML panel holding slides: the current item's, shown, and
those of the items leased ahead (`ReviewTask.upcoming`; `app.ui.review_actions.LOOKAHEAD` of them), hidden, their
images already loaded by the browser. When the reviewer gives a verdict by key, the key listener (`app.ui.shortcuts`)
shows the next slides at once, in the same frame, while the server records the verdict; the server's answer then
brings that item as the current one, with the next ones behind it. The reviewer's wait is one frame, not a round
trip, even while they are faster than the server for a few items.

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


def card_html(task: ReviewTask, *, admin: bool = False) -> str:
    """The item card; an admin's also names the model's full source (Hub id or folder path) in a tooltip."""
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
        show_model_source=admin,
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


def _staged(slides: list[str], item_ids: list[int], *, show_early: bool) -> str:
    """A panel of slides, the first shown: `data-item` names the item on screen as the server sees it, and each slide
    its own item; `data-show-early` lets the key listener step through the hidden ones before the server answers."""
    attributes = f'class="rise-stage" data-item="{item_ids[0]}"' + (' data-show-early="1"' if show_early else "")
    html = "".join(
        f'<div class="rise-slide" data-item="{item_id}"{"" if index == 0 else " hidden"}>{slide}</div>'
        for index, (slide, item_id) in enumerate(zip(slides, item_ids, strict=True))
    )
    return f"<div {attributes}>{html}</div>"


def staged_panels(task: ReviewTask, image_path: str | None, *, admin: bool = False) -> tuple[str, str, str]:
    """The image, card and reasoning panels of `task` (its image already copied to `image_path`), each with the
    slides of the items leased ahead (`task.upcoming`) hidden behind. Items that cannot be shown early still get
    their image preloaded, in hidden slides of the image panel. `admin`: the cards show where each model came from
    (`card_html`)."""
    upcoming = list(task.upcoming)
    images = [shown_image(item)[0] for item in upcoming]
    early = bool(upcoming) and all(can_show_early(item) for item in upcoming) and None not in images
    ids = [task.item_id, *(item.item_id for item in upcoming)]
    image_panel = _staged(
        [image_html(task, image_path) if can_show_early(task) else ""]
        + [image_html(item, path) for item, path in zip(upcoming, images, strict=True)],
        ids,
        show_early=early,
    )
    if not early:
        upcoming, ids = [], ids[:1]
    cards = [card_html(item, admin=admin) for item in (task, *upcoming)]
    card_panel = _staged(cards, ids, show_early=early)
    reasoning_panel = _staged(
        [reasoning_html(task), *(reasoning_html(item) for item in upcoming)], ids, show_early=early
    )
    return image_panel, card_panel, reasoning_panel

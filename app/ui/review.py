"""The review screen: the image with the model's answer, its reasoning, and one key per verdict.

Layout: queue controls on top; the image (boxes editable in place) on the left; on the right the item card
(position, confidence, model, answer), the chain of thought as escaped text, the label or distribution editor for
classification, the "reasoning is wrong" flag, a comment, and the action buttons with their keys. Every action
returns the next item in the same round trip, so it appears at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator

from app.runtime import Runtime
from app.services import review as review_service
from app.services.review import ReviewTask
from app.ui import render, review_actions
from app.ui.display import display_copy
from app.ui.review_actions import ANY, ORDER_CHOICES, VERDICT_CHOICES, Edits, Outcome, ReviewInputError
from app.ui.session import UserInfo, require_user
from app.ui.shortcuts import LABEL_RADIO_ID, legend_html


@dataclass
class ReviewTab:
    task: gr.State
    view: gr.State  # {"shown_at": monotonic seconds, "scale": display enlargement} of the task on screen
    order: gr.Radio
    label_filter: gr.Dropdown
    verdict_filter: gr.Dropdown
    model_filter: gr.Dropdown
    annotator: image_annotator
    image: gr.Image
    card: gr.HTML
    cot: gr.HTML
    label_radio: gr.Radio
    distribution: gr.Dataframe
    reasoning_wrong: gr.Checkbox
    comment: gr.Textbox
    status: gr.HTML
    legend: gr.HTML
    accept: gr.Button
    correct: gr.Button
    reject: gr.Button
    skip: gr.Button
    undo: gr.Button

    def screen_outputs(self) -> list[Any]:
        return [
            self.task,
            self.view,
            self.annotator,
            self.image,
            self.card,
            self.cot,
            self.label_radio,
            self.distribution,
            self.reasoning_wrong,
            self.comment,
            self.status,
            self.legend,
            self.accept,
            self.correct,
            self.reject,
            self.skip,
        ]

    def filter_inputs(self) -> list[Any]:
        return [self.order, self.label_filter, self.verdict_filter, self.model_filter]

    def edit_inputs(self) -> list[Any]:
        return [self.annotator, self.label_radio, self.distribution, self.reasoning_wrong, self.comment]


BLUR_JS = "() => { if (document.activeElement) { document.activeElement.blur(); } }"


def status_html(message: str) -> str:
    return f'<div class="rise-status" data-testid="review-status">{render.escape(message)}</div>'


def screen_updates(task: ReviewTask | None, message: str) -> tuple[Any, ...]:
    """Updates for `ReviewTab.screen_outputs()` that show `task` (or the empty-queue card) with `message`."""
    if task is None:
        status = status_html("")  # the card says it, in large
        hidden = gr.update(visible=False)
        idle = gr.update(interactive=False)
        return (
            None,
            None,
            hidden,
            hidden,
            render.empty_queue_html(message or "Nothing to review."),
            "",
            hidden,
            hidden,
            False,
            "",
            status,
            legend_html(with_labels=False),
            idle,
            idle,
            idle,
            idle,
        )
    labels = list(task.labels)
    has_boxes = task.task_type in ("detection", "grounding")
    try:
        image_path, scale = display_copy(task.image_path, task.width, task.height)
    except (OSError, ValueError) as error:
        # The media file is gone or unreadable: the reviewer can still reject or skip, but there is nothing to edit.
        image_path, scale = None, 1
        message = f"The image cannot be shown ({error}); reject or skip this item. {message}".strip()
    distribution = review_actions.is_distribution(task)
    editable = image_path is not None
    if has_boxes and editable:
        annotator = gr.update(
            value={"image": image_path, "boxes": render.answer_to_boxes(task.task_type, task.answer, labels, scale)},
            label_list=labels if task.task_type == "detection" else [render.GROUNDING_LABEL],
            label_colors=[render.hex_colour(render.label_colour(label, labels)) for label in labels]
            if task.task_type == "detection"
            else [render.hex_colour(render.PALETTE[0])],
            single_box=task.task_type == "grounding",
            visible=True,
        )
        image = gr.update(visible=False)
    else:
        annotator = gr.update(value=None, visible=False)
        image = gr.update(value=image_path, visible=not has_boxes and editable)
    card = render.task_card_html(
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
    show_label = task.task_type == "classification" and not distribution
    label_radio = gr.update(
        choices=labels,
        value=task.answer if show_label and task.answer in labels else None,
        visible=show_label,
    )
    dist = gr.update(value=render.distribution_rows(task.answer, labels), visible=True) if distribution else None
    active = gr.update(interactive=True)
    return (
        task,
        {"shown_at": time.monotonic(), "scale": scale, "editable": editable},
        annotator,
        image,
        card,
        render.cot_html(task.cot, task.raw_text, task.parse_error),
        label_radio,
        dist if dist is not None else gr.update(visible=False),
        False,
        "",
        status_html(message),
        legend_html(with_labels=show_label),
        active,
        active,
        active,
        active,
    )


def _keep_screen(message: str) -> tuple[Any, ...]:
    """Leave everything as it is and only say why nothing happened."""
    skip = gr.skip()
    return (
        skip,
        skip,
        skip,
        skip,
        skip,
        skip,
        skip,
        skip,
        skip,
        skip,
        status_html(message),
        skip,
        skip,
        skip,
        skip,
        skip,
    )


def _run(action, *args, **kwargs) -> tuple[Any, ...]:
    """Run an action and show its outcome; input problems become a warning and leave the screen as it was."""
    try:
        outcome: Outcome = action(*args, **kwargs)
    except ReviewInputError as error:
        gr.Warning(str(error))
        return _keep_screen(str(error))
    except review_service.ReviewError as error:
        # Someone else holds the item, or it changed under us: say so and move on to what the queue offers now.
        gr.Warning(str(error))
        return _keep_screen(str(error))
    return screen_updates(outcome.task, outcome.message)


# Handlers: component values in, screen updates out. `runtime` is bound with functools.partial.


def load_queue(
    runtime: Runtime, user: UserInfo | None, project_id: int | None, order: str, label: str, verdict: str, model: str
) -> tuple[Any, ...]:
    if user is None:
        # The project menu also changes when someone signs out; there is nothing to load then.
        return screen_updates(None, "Sign in to start reviewing.")
    queue = review_actions.queue_filter(order, label, verdict, model)
    return _run(review_actions.load, runtime, user_id=user.id, project_id=project_id, queue=queue)


def _edits(view: dict | None, annotator, label, distribution, reasoning_wrong, comment) -> Edits:
    view = view or {}
    rows = distribution.values.tolist() if hasattr(distribution, "values") else distribution
    return Edits(
        # A hidden annotator may still hold an earlier item's boxes: only a shown one counts as the reviewer's edit.
        annotator=annotator if view.get("editable", True) else None,
        label=label,
        distribution_rows=rows,
        reasoning_wrong=bool(reasoning_wrong),
        comment=comment or "",
        scale=int(view.get("scale", 1)),
    )


def _verdict_handler(action):
    def handler(
        runtime: Runtime,
        user: UserInfo | None,
        task: ReviewTask | None,
        view: dict | None,
        order: str,
        label_filter: str,
        verdict_filter: str,
        model_filter: str,
        annotator: dict | None,
        label: str | None,
        distribution: Any,
        reasoning_wrong: bool,
        comment: str,
    ) -> tuple[Any, ...]:
        user = require_user(user)
        return _run(
            action,
            runtime,
            user_id=user.id,
            task=task,
            edits=_edits(view, annotator, label, distribution, reasoning_wrong, comment),
            shown_at=(view or {}).get("shown_at"),
            queue=review_actions.queue_filter(order, label_filter, verdict_filter, model_filter),
        )

    handler.__name__ = f"on_{action.__name__}"
    return handler


on_accept = _verdict_handler(review_actions.accept)
on_correct = _verdict_handler(review_actions.correct)
on_reject = _verdict_handler(review_actions.reject)


def on_skip(
    runtime: Runtime, user: UserInfo | None, task: ReviewTask | None, order: str, label: str, verdict: str, model: str
) -> tuple[Any, ...]:
    user = require_user(user)
    queue = review_actions.queue_filter(order, label, verdict, model)
    return _run(review_actions.skip, runtime, user_id=user.id, task=task, queue=queue)


def on_undo(
    runtime: Runtime, user: UserInfo | None, task: ReviewTask | None, project_id: int | None
) -> tuple[Any, ...]:
    user = require_user(user)
    return _run(review_actions.undo, runtime, user_id=user.id, project_id=project_id, current=task)


def filter_choices(
    runtime: Runtime, user: UserInfo | None, project_id: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Label and model choices of the queue filters for the chosen project."""
    if user is None or project_id is None:
        return gr.update(choices=[("All labels", ANY)], value=ANY), gr.update(choices=[("All models", ANY)], value=ANY)
    try:
        options = review_service.queue_options(runtime, project_id=project_id)
    except review_service.ReviewError:  # deleted meanwhile; loading the queue says so
        return gr.skip(), gr.skip()
    labels = [("All labels", ANY), *[(label, label) for label in options.labels]]
    models = [("All models", ANY), *[(name, name) for name in options.model_names]]
    # Grounding projects have no label set: a label menu with nothing in it would only puzzle.
    return gr.update(choices=labels, value=ANY, visible=bool(options.labels)), gr.update(choices=models, value=ANY)


# Layout ------------------------------------------------------------------------------------------------------


def build_review_tab(runtime: Runtime, *, user_state: gr.State, project: gr.Dropdown) -> ReviewTab:
    """Lay out the review screen inside the current `gr.Tab` and wire its events."""
    task_state = gr.State(None)
    view = gr.State(None)
    with gr.Row(equal_height=True):
        order = gr.Radio(ORDER_CHOICES, value="confidence", label="Order", scale=2, elem_id="queue-order")
        label_filter = gr.Dropdown([("All labels", ANY)], value=ANY, label="Label", scale=1, elem_id="queue-label")
        verdict_filter = gr.Dropdown(VERDICT_CHOICES, value=ANY, label="Verdict", scale=1, elem_id="queue-verdict")
        model_filter = gr.Dropdown([("All models", ANY)], value=ANY, label="Model", scale=1, elem_id="queue-model")
    with gr.Row():
        with gr.Column(scale=3):
            annotator = image_annotator(
                label="Image (drag boxes to move them; click the image, then C to draw, E to relabel, Del to delete)",
                image_type="filepath",
                sources=None,
                show_clear_button=False,
                show_download_button=False,
                show_remove_button=True,
                handles_cursor=True,
                box_min_size=4,
                boxes_alpha=0.12,
                height=520,
                visible=False,
                elem_id="review-annotator",
            )
            image = gr.Image(
                label="Image",
                type="filepath",
                interactive=False,
                height=520,
                visible=False,
                buttons=["fullscreen"],
                elem_id="review-image",
            )
        with gr.Column(scale=2, min_width=320):
            card = gr.HTML(
                render.empty_queue_html("Pick a project to start reviewing."), js_on_load=None, elem_id="review-card"
            )
            cot = gr.HTML("", js_on_load=None, elem_id="review-cot")
            label_radio = gr.Radio([], label="Label", visible=False, elem_id=LABEL_RADIO_ID)
            distribution = gr.Dataframe(
                headers=["label", "probability"],
                datatype=["str", "number"],
                type="array",
                interactive=True,
                static_columns=[0],
                label="Distribution (renormalised on save)",
                visible=False,
                elem_id="review-distribution",
            )
            reasoning_wrong = gr.Checkbox(label="Reasoning is wrong (W)", elem_id="review-reasoning-wrong")
            comment = gr.Textbox(label="Comment or reject reason (M)", lines=2, max_lines=6, elem_id="review-comment")
            with gr.Row():
                accept = gr.Button("Accept (A)", interactive=False, elem_id="review-accept", min_width=80)
                correct = gr.Button("Correct (S)", interactive=False, elem_id="review-correct", min_width=80)
                reject = gr.Button("Reject (R)", interactive=False, elem_id="review-reject", min_width=80)
            with gr.Row():
                skip = gr.Button("Skip (N)", interactive=False, elem_id="review-skip", size="md", min_width=80)
                undo = gr.Button("Undo last (U)", elem_id="review-undo", size="md", min_width=80)
            status = gr.HTML(status_html(""), js_on_load=None)
    legend = gr.HTML(legend_html(with_labels=False), js_on_load=None, elem_id="review-legend")

    tab = ReviewTab(
        task=task_state,
        view=view,
        order=order,
        label_filter=label_filter,
        verdict_filter=verdict_filter,
        model_filter=model_filter,
        annotator=annotator,
        image=image,
        card=card,
        cot=cot,
        label_radio=label_radio,
        distribution=distribution,
        reasoning_wrong=reasoning_wrong,
        comment=comment,
        status=status,
        legend=legend,
        accept=accept,
        correct=correct,
        reject=reject,
        skip=skip,
        undo=undo,
    )
    _wire(runtime, tab, user_state=user_state, project=project)
    return tab


def _wire(runtime: Runtime, tab: ReviewTab, *, user_state: gr.State, project: gr.Dropdown) -> None:
    screen = tab.screen_outputs()
    load_inputs = [user_state, project, *tab.filter_inputs()]
    verdict_inputs = [user_state, tab.task, tab.view, *tab.filter_inputs(), *tab.edit_inputs()]
    # trigger_mode="once": a second key press while a verdict is in flight is dropped, so holding a key or
    # double-tapping can never record a verdict for an item the reviewer has not seen yet.
    common = {"outputs": screen, "trigger_mode": "once", "show_progress": "hidden"}

    project.change(partial(filter_choices, runtime), [user_state, project], [tab.label_filter, tab.model_filter]).then(
        partial(load_queue, runtime), load_inputs, screen, show_progress="hidden"
    )
    for control in tab.filter_inputs():
        control.input(partial(load_queue, runtime), load_inputs, screen, show_progress="hidden")
    # A menu keeps the keyboard focus after a pick, and keys typed into it would filter the menu instead of
    # reviewing; leave it as soon as something is picked so the next key is a shortcut again.
    for menu in (project, tab.label_filter, tab.verdict_filter, tab.model_filter):
        menu.input(None, js=BLUR_JS)
    tab.accept.click(partial(on_accept, runtime), verdict_inputs, api_name="review_accept", **common)
    tab.correct.click(partial(on_correct, runtime), verdict_inputs, api_name="review_correct", **common)
    tab.reject.click(partial(on_reject, runtime), verdict_inputs, api_name="review_reject", **common)
    tab.skip.click(
        partial(on_skip, runtime), [user_state, tab.task, *tab.filter_inputs()], api_name="review_skip", **common
    )
    tab.undo.click(partial(on_undo, runtime), [user_state, tab.task, project], api_name="review_undo", **common)

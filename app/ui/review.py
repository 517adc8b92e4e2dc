"""The review screen: the image with the model's answer, its reasoning, and one key per verdict.

Layout: queue controls on top; the image (boxes editable in place) on the left; on the right the item card
(position, confidence, model, answer), the chain of thought as escaped text, the label or distribution editor for
classification, the "reasoning is wrong" flag, the reviewer's own reasoning for a correction, a comment, and the
action buttons with their keys. Every action returns the next item in the same round trip, and the items after it
are already in the page, hidden, so a verdict by key shows the next one in the same frame (`app.ui.stage`). Updates
are dicts keyed by field name (`SCREEN_FIELDS`), so no component can be matched to the wrong value. From item to
item in one layout they carry plain values only: Gradio builds a component anew on the server for each `gr.update`
and each component left out.
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
from app.ui.review_actions import ANY, ORDER_CHOICES, VERDICT_CHOICES, Edits, Outcome, ReviewInputError
from app.ui.session import UserInfo, is_admin, require_user
from app.ui.shortcuts import LABEL_RADIO_ID, SEND_TYPED_KEYS_ID, TYPED_KEYS_ID, legend_html
from app.ui.stage import shown_image, staged_panels

# The components a screen update may set, by `ReviewTab` field name. An update is a dict over some of them; the
# ones it leaves out stay as they are on screen (Gradio sends only what is in the dict).
SCREEN_FIELDS: tuple[str, ...] = (
    "task",
    "view",
    "annotator",
    "image",
    "card",
    "cot",
    "label_radio",
    "distribution",
    "reasoning_wrong",
    "reasoning",
    "comment",
    "status",
    "legend",
    "accept",
    "correct",
    "reject",
    "skip",
)
VERDICT_BUTTON_LABELS = {"accept": "Accept (A)", "correct": "Correct (S)", "reject": "Reject (R)", "skip": "Skip (N)"}
VERDICT_BUTTONS: tuple[str, ...] = tuple(VERDICT_BUTTON_LABELS)
ScreenUpdate = dict[str, Any]


@dataclass
class ReviewTab:
    task: gr.State
    # {"shown_at": monotonic seconds, "scale": display enlargement, "editable": image shown, "layout": which editors
    # are on screen} of the task on screen
    view: gr.State
    order: gr.Radio
    label_filter: gr.Dropdown
    verdict_filter: gr.Dropdown
    model_filter: gr.Dropdown
    annotator: image_annotator
    image: gr.HTML
    card: gr.HTML
    cot: gr.HTML
    label_radio: gr.Radio
    distribution: gr.Dataframe
    reasoning_wrong: gr.Checkbox
    reasoning: gr.Textbox
    comment: gr.Textbox
    status: gr.HTML
    legend: gr.HTML
    accept: gr.Button
    correct: gr.Button
    reject: gr.Button
    skip: gr.Button
    undo: gr.Button
    # Hidden: the key listener puts verdict keys typed ahead of the server here and sends them together.
    typed_keys: gr.Textbox
    send_typed_keys: gr.Button

    def screen_outputs(self) -> list[Any]:
        return [getattr(self, name) for name in SCREEN_FIELDS]

    def components(self, update: ScreenUpdate) -> dict[Any, Any]:
        """`update` keyed by component, as a Gradio handler returns it; a name that is not a screen field fails."""
        unknown = set(update) - set(SCREEN_FIELDS)
        if unknown:
            raise KeyError(f"Not a review screen component: {sorted(unknown)}")
        return {getattr(self, name): value for name, value in update.items()}

    def filter_inputs(self) -> list[Any]:
        return [self.order, self.label_filter, self.verdict_filter, self.model_filter]

    def edit_inputs(self) -> list[Any]:
        return [
            self.annotator,
            self.label_radio,
            self.distribution,
            self.reasoning_wrong,
            self.reasoning,
            self.comment,
        ]


BLUR_JS = "() => { if (document.activeElement) { document.activeElement.blur(); } }"


def status_html(message: str, *, failed: bool = False) -> str:
    """The status line. Its `data-response` changes with every answer of the server, even when the message does not:
    that is how the key listener knows an action is done and the next key can go; `data-outcome` says whether the
    action failed, which makes the listener drop the keys it held back for the items after it."""
    outcome = "failed" if failed else "done"
    return (
        f'<div class="rise-status" data-testid="review-status" data-response="{time.monotonic_ns()}" '
        f'data-outcome="{outcome}">{render.escape(message)}</div>'
    )


def screen_updates(
    task: ReviewTask | None, message: str, view: dict | None = None, *, admin: bool = False
) -> ScreenUpdate:
    """The screen update that shows `task` (or the empty-queue card) with `message`. `view` is the view state of
    what is on screen now: editors that are already as `task` needs them are left alone. `admin`: the card names
    where the model came from (`app.ui.stage.card_html`)."""
    if task is None:
        hidden = gr.update(visible=False)
        idle = gr.update(interactive=False)
        return {
            "task": None,
            "view": None,
            "annotator": hidden,
            "image": "",
            "card": render.empty_queue_html(message or "Nothing to review."),
            "cot": "",
            "label_radio": hidden,
            "distribution": hidden,
            "reasoning_wrong": False,
            "reasoning": "",
            "comment": "",
            "status": status_html(""),  # the card says it, in large
            "legend": legend_html(with_labels=False),
            **{name: idle for name in VERDICT_BUTTONS},
        }
    labels = list(task.labels)
    has_boxes = task.task_type in ("detection", "grounding")
    image_path, scale, problem = shown_image(task)
    message = f"{problem} {message}".strip()
    distribution = review_actions.is_distribution(task)
    editable = image_path is not None
    show_label = task.task_type == "classification" and not distribution
    layout = [task.task_type, distribution, editable, labels]
    same_layout = (view or {}).get("layout") == layout
    image_panel, card_panel, reasoning_panel = staged_panels(task, image_path, admin=admin)
    update: ScreenUpdate = {
        "task": task,
        "view": {"shown_at": time.monotonic(), "scale": scale, "editable": editable, "layout": layout},
        "image": image_panel,
        "card": card_panel,
        "cot": reasoning_panel,
        "reasoning_wrong": False,
        "reasoning": "",
        "comment": "",
        "status": status_html(message),
    }
    # In the same layout every component gets a plain value, even one that did not change: a component left out
    # (Gradio fills in a skip) or given a `gr.update` is built anew on the server, about a millisecond each, which
    # made most of a verdict's cost.
    if has_boxes and editable:
        boxes = {"image": image_path, "boxes": render.answer_to_boxes(task.task_type, task.answer, labels, scale)}
        update["annotator"] = (
            boxes
            if same_layout
            else gr.update(
                value=boxes,
                label_list=labels if task.task_type == "detection" else [render.GROUNDING_LABEL],
                label_colors=[render.hex_colour(render.label_colour(label, labels)) for label in labels]
                if task.task_type == "detection"
                else [render.hex_colour(render.PALETTE[0])],
                single_box=task.task_type == "grounding",
                visible=True,
            )
        )
    else:
        update["annotator"] = None if same_layout else gr.update(value=None, visible=False)
    if show_label:
        value = task.answer if task.answer in labels else None
        update["label_radio"] = value if same_layout else gr.update(choices=labels, value=value, visible=True)
    else:
        update["label_radio"] = None if same_layout else gr.update(value=None, visible=False)
    if distribution:
        rows = render.distribution_rows(task.answer, labels)
        update["distribution"] = rows if same_layout else gr.update(value=rows, visible=True)
    else:
        update["distribution"] = None if same_layout else gr.update(visible=False)
    update["legend"] = legend_html(with_labels=show_label)
    if same_layout:
        update.update(VERDICT_BUTTON_LABELS)
    else:
        update.update({name: gr.update(interactive=True) for name in VERDICT_BUTTONS})
    return update


def _keep_screen(task: ReviewTask | None, message: str, *, admin: bool = False) -> ScreenUpdate:
    """Only say why nothing happened, and put the panels back on `task`: the key listener may already show the
    item leased ahead, which did not become the reviewer's."""
    update: ScreenUpdate = {"status": status_html(message, failed=True)}
    if task is not None:
        update["image"], update["card"], update["cot"] = staged_panels(task, shown_image(task)[0], admin=admin)
    return update


def busy_message(action: str) -> str:
    """What a reviewer reads when the database stayed locked: what was not done, and the key that does it again."""
    key = {"accept": "A", "correct": "S", "reject": "R", "skip": "N", "undo": "U"}.get(action)
    if action == "apply_typed_keys":
        return "The database is busy; your verdicts were not saved, press the keys again."
    if key is None:
        return "The database is busy; the queue was not loaded. Pick the project again in a moment."
    what = {"skip": "the item was not skipped", "undo": "nothing was undone"}.get(action, "your verdict was not saved")
    return f"The database is busy; {what}, press {key} again."


def _run(action, *, shown: ReviewTask | None, view: dict | None, admin: bool, **kwargs) -> ScreenUpdate:
    """Run an action and show its outcome (to an admin, with the model's source: `screen_updates`). A problem becomes
    a warning and leaves `shown` (the task on screen) as it was."""
    try:
        outcome: Outcome = action(**kwargs)
    except review_service.DatabaseBusyError:
        message = busy_message(action.__name__)
        gr.Warning(message)
        return _keep_screen(shown, message, admin=admin)
    except ReviewInputError as error:
        gr.Warning(str(error))
        return _keep_screen(shown, str(error), admin=admin)
    except review_service.ReviewError as error:
        # Someone else holds the item, the database is busy, or the item changed under us: say so.
        gr.Warning(str(error))
        return _keep_screen(shown, str(error), admin=admin)
    return screen_updates(outcome.task, outcome.message, view, admin=admin)


# Handlers: component values in, screen updates out (by component: `ReviewTab.components`). `runtime` and `tab` are
# bound with functools.partial.


def load_queue(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    order: str,
    label: str,
    verdict: str,
    model: str,
) -> ScreenUpdate:
    if user is None:
        # The project menu also changes when someone signs out; there is nothing to load then.
        return screen_updates(None, "Sign in to start reviewing.")
    queue = review_actions.queue_filter(order, label, verdict, model)
    return _run(
        review_actions.load,
        shown=None,
        view=None,
        admin=is_admin(user),
        runtime=runtime,
        user_id=user.id,
        project_id=project_id,
        queue=queue,
    )


def _edits(view: dict | None, annotator, label, distribution, reasoning_wrong, reasoning, comment) -> Edits:
    view = view or {}
    rows = distribution.values.tolist() if hasattr(distribution, "values") else distribution
    return Edits(
        # A hidden annotator may still hold an earlier item's boxes: only a shown one counts as the reviewer's edit.
        annotator=annotator if view.get("editable", True) else None,
        label=label,
        distribution_rows=rows,
        reasoning_wrong=bool(reasoning_wrong),
        reasoning=reasoning or "",
        comment=comment or "",
        scale=int(view.get("scale", 1)),
    )


def _verdict_kwargs(
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
    reasoning: str,
    comment: str,
) -> dict[str, Any]:
    """The arguments of a verdict action (`review_actions.accept`, ...) from the values of `verdict_inputs`."""
    user = require_user(user)
    return {
        "shown": task,
        "view": view,
        "admin": is_admin(user),
        "runtime": runtime,
        "user_id": user.id,
        "task": task,
        "edits": _edits(view, annotator, label, distribution, reasoning_wrong, reasoning, comment),
        "shown_at": (view or {}).get("shown_at"),
        "queue": review_actions.queue_filter(order, label_filter, verdict_filter, model_filter),
    }


def _verdict_handler(action):
    def handler(runtime: Runtime, *values: Any) -> ScreenUpdate:
        return _run(action, **_verdict_kwargs(runtime, *values))

    handler.__name__ = f"on_{action.__name__}"
    return handler


def on_typed_keys(runtime: Runtime, *values: Any) -> ScreenUpdate:
    """Verdict keys the page typed ahead of the server (`review_actions.apply_typed_keys`); the values are those of
    the other verdicts, then the typed keys."""
    *verdict_values, typed_keys = values
    kwargs = _verdict_kwargs(runtime, *verdict_values)
    try:
        keys = review_actions.parse_typed_keys(typed_keys)
    except ReviewInputError as error:
        gr.Warning(str(error))
        return _keep_screen(kwargs["task"], str(error), admin=kwargs["admin"])
    return _run(review_actions.apply_typed_keys, **kwargs, keys=keys)


on_accept = _verdict_handler(review_actions.accept)
on_correct = _verdict_handler(review_actions.correct)
on_reject = _verdict_handler(review_actions.reject)


def on_skip(
    runtime: Runtime,
    user: UserInfo | None,
    task: ReviewTask | None,
    view: dict | None,
    order: str,
    label: str,
    verdict: str,
    model: str,
) -> ScreenUpdate:
    user = require_user(user)
    queue = review_actions.queue_filter(order, label, verdict, model)
    return _run(
        review_actions.skip,
        shown=task,
        view=view,
        admin=is_admin(user),
        runtime=runtime,
        user_id=user.id,
        task=task,
        queue=queue,
    )


def on_undo(
    runtime: Runtime, user: UserInfo | None, task: ReviewTask | None, view: dict | None, project_id: int | None
) -> ScreenUpdate:
    user = require_user(user)
    return _run(
        review_actions.undo,
        shown=task,
        view=view,
        admin=is_admin(user),
        runtime=runtime,
        user_id=user.id,
        project_id=project_id,
        current=task,
    )


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
    # Shown by their names, never a machine's folder path (as on the card); the filter itself keeps the full name.
    models = [("All models", ANY), *[(render.model_display_name(name), name) for name in options.model_names]]
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
            # The item's image (a click opens it full size), with the next item's hidden behind it: `app.ui.stage`.
            image = gr.HTML("", js_on_load=None, elem_id="review-image")
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
            reasoning = gr.Textbox(
                label="Your reasoning, saved with a correction to teach the model (Y)",
                placeholder="Why the right answer is right, as the model should reason it",
                lines=2,
                max_lines=6,
                elem_id="review-reasoning",
            )
            comment = gr.Textbox(label="Comment or reject reason (M)", lines=2, max_lines=6, elem_id="review-comment")
            with gr.Row():
                accept = gr.Button(
                    VERDICT_BUTTON_LABELS["accept"], interactive=False, elem_id="review-accept", min_width=80
                )
                correct = gr.Button(
                    VERDICT_BUTTON_LABELS["correct"], interactive=False, elem_id="review-correct", min_width=80
                )
                reject = gr.Button(
                    VERDICT_BUTTON_LABELS["reject"], interactive=False, elem_id="review-reject", min_width=80
                )
            with gr.Row():
                skip = gr.Button(
                    VERDICT_BUTTON_LABELS["skip"], interactive=False, elem_id="review-skip", size="md", min_width=80
                )
                undo = gr.Button("Undo last (U)", elem_id="review-undo", size="md", min_width=80)
            status = gr.HTML(status_html(""), js_on_load=None, elem_id="review-status")
    legend = gr.HTML(legend_html(with_labels=False), js_on_load=None, elem_id="review-legend")
    typed_keys = gr.Textbox("", visible="hidden", elem_id=TYPED_KEYS_ID, label="Keys typed ahead")
    send_typed_keys = gr.Button("Send typed keys", visible="hidden", elem_id=SEND_TYPED_KEYS_ID)

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
        reasoning=reasoning,
        comment=comment,
        status=status,
        legend=legend,
        accept=accept,
        correct=correct,
        reject=reject,
        skip=skip,
        undo=undo,
        typed_keys=typed_keys,
        send_typed_keys=send_typed_keys,
    )
    _wire(runtime, tab, user_state=user_state, project=project)
    return tab


def _screen_handler(runtime: Runtime, tab: ReviewTab, handler):
    """`handler` with `runtime` bound, its screen update keyed by component as Gradio wants it."""

    def run(*args: Any) -> dict[Any, Any]:
        return tab.components(handler(runtime, *args))

    run.__name__ = handler.__name__
    return run


def _wire(runtime: Runtime, tab: ReviewTab, *, user_state: gr.State, project: gr.Dropdown) -> None:
    screen = tab.screen_outputs()
    load_inputs = [user_state, project, *tab.filter_inputs()]
    verdict_inputs = [user_state, tab.task, tab.view, *tab.filter_inputs(), *tab.edit_inputs()]
    # trigger_mode="once": a click while an action is in flight is dropped, so a double click can never record a
    # verdict for an item the reviewer has not seen yet. Keys never get there: the key listener holds them back
    # until the screen has the server's answer, then applies them in order (`app.ui.shortcuts`).
    # Progress shows on the status line alone: the page re-reads every component that ever showed an event's progress
    # on each later event, and the whole screen as progress targets made every key press pay for reading it twice.
    progress = {"show_progress": "hidden", "show_progress_on": [tab.status]}
    common = {"outputs": screen, "trigger_mode": "once", **progress}
    load = _screen_handler(runtime, tab, load_queue)

    project.change(partial(filter_choices, runtime), [user_state, project], [tab.label_filter, tab.model_filter]).then(
        load, load_inputs, screen, **progress
    )
    for control in tab.filter_inputs():
        control.input(load, load_inputs, screen, **progress)
    # A menu keeps the keyboard focus after a pick, and keys typed into it would filter the menu instead of
    # reviewing; leave it as soon as something is picked so the next key is a shortcut again.
    for menu in (project, tab.label_filter, tab.verdict_filter, tab.model_filter):
        menu.input(None, js=BLUR_JS)
    for button, handler, api_name in (
        (tab.accept, on_accept, "review_accept"),
        (tab.correct, on_correct, "review_correct"),
        (tab.reject, on_reject, "review_reject"),
    ):
        button.click(_screen_handler(runtime, tab, handler), verdict_inputs, api_name=api_name, **common)
    tab.send_typed_keys.click(
        _screen_handler(runtime, tab, on_typed_keys),
        [*verdict_inputs, tab.typed_keys],
        api_name="review_typed_keys",
        **common,
    )
    tab.skip.click(
        _screen_handler(runtime, tab, on_skip),
        [user_state, tab.task, tab.view, *tab.filter_inputs()],
        api_name="review_skip",
        **common,
    )
    tab.undo.click(
        _screen_handler(runtime, tab, on_undo),
        [user_state, tab.task, tab.view, project],
        api_name="review_undo",
        **common,
    )

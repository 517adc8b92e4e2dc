"""The Projects tab (admins): create a project, upload images into it, and have a model annotate what is new.

Uploads go through `app.services.imports.import_paths` (the same validation as `rise import`) and report progress
to the browser through `gr.Progress`. Annotation is a job (`app.services.jobs.request_annotation`) that `rise worker`
runs like every other job, with the model loaded once, outside the web server; the Runs tab follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from app.runtime import Runtime
from app.services import jobs as job_service
from app.services import projects as project_service
from app.services.imports import ImportFailed, import_paths
from app.services.projects import ProjectError
from app.ui.render import escape
from app.ui.selection import selected_project
from app.ui.session import UserInfo, require_admin

TASK_CHOICES = [
    ("Classification (one label per image)", "classification"),
    ("Detection (labelled boxes)", "detection"),
    ("Grounding (one box for a text query)", "grounding"),
]
PROJECT_HEADERS = ["name", "task", "labels", "items", "held out", "annotated"]


@dataclass
class ProjectsTab:
    table: gr.Dataframe
    name: gr.Textbox
    task_type: gr.Radio
    labels: gr.Textbox
    distribution: gr.Checkbox
    description: gr.Textbox
    create: gr.Button
    create_message: gr.HTML
    files: gr.File
    query: gr.Textbox
    upload: gr.Button
    upload_message: gr.HTML
    model: gr.Textbox
    annotate: gr.Button
    annotate_message: gr.HTML


def project_choices(runtime: Runtime) -> list[tuple[str, int]]:
    return [(f"{p.name} · {p.task_type.value}", p.id) for p in project_service.list_projects(runtime)]


def project_rows(runtime: Runtime) -> list[list[Any]]:
    return [
        [p.name, p.task_type.value, ", ".join(p.labels), p.items, p.eval_items, p.annotated_items]
        for p in project_service.list_projects(runtime)
    ]


def _ok(text: str) -> str:
    return f'<div class="rise-status">{escape(text)}</div>'


def _problem(text: str) -> str:
    return f'<div class="rise-parse-error">{escape(text)}</div>'


def on_create(
    runtime: Runtime,
    user: UserInfo | None,
    name: str,
    task_type: str,
    labels: str,
    distribution: bool,
    description: str,
) -> tuple[Any, ...]:
    """Create the project and select it at the top, so the next upload goes into it."""
    require_admin(user)
    label_list = [label.strip() for label in (labels or "").replace("\n", ",").split(",") if label.strip()]
    try:
        created = project_service.create_project(
            runtime,
            name or "",
            task_type,
            label_list,
            description=description or "",
            distribution=bool(distribution) and task_type == "classification",
        )
    except ProjectError as error:
        return gr.skip(), gr.skip(), _problem(str(error))
    selector = gr.update(choices=project_choices(runtime), value=created.id)
    return selector, project_rows(runtime), _ok(f"Created project {created.name!r}. Upload its images below.")


def on_upload(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    files: list[str] | None,
    query: str,
    progress: gr.Progress = gr.Progress(),
) -> tuple[Any, ...]:
    require_admin(user)
    if not files:
        return gr.skip(), _problem("Choose one or more image files first.")
    chosen = selected_project(project_id)
    progress((0, None), desc="Reading the files")
    try:
        summary = import_paths(
            runtime,
            chosen,
            list(files),
            query=(query or "").strip() or None,
            progress=lambda done, total: progress((done, total), desc="Importing", unit="images"),
        )
    except ImportFailed as error:
        return gr.skip(), _problem(str(error))
    lines = [f"Added {summary.added}, already there {summary.duplicates}, skipped {len(summary.skipped)}."]
    lines += [f"Skipped {skip.path}: {skip.reason}" for skip in summary.skipped[:20]]
    body = "".join(f"<div>{escape(line)}</div>" for line in lines)
    return project_rows(runtime), f'<div class="rise-status">{body}</div>'


def on_annotate(runtime: Runtime, user: UserInfo | None, project_id: int | None, model: str) -> str:
    """Queue an annotate job for the project's items that have no prediction from `model` yet; the worker runs it,
    as it runs retraining, and the Runs tab follows it."""
    user = require_admin(user)
    try:
        job = job_service.request_annotation(
            runtime,
            selected_project(project_id),
            model=(model or "").strip() or None,
            requested_by_id=user.id,
            reason=f"requested by {user.username} in the app",
        )
    except job_service.JobRequestError as error:
        return _problem(f"Annotation not queued: {error}")
    return _ok(
        f"Queued job #{job.id}: annotate the new items of {job.project!r} with {job.config['model']}. A running "
        "`rise worker` takes it; follow it in the Runs tab. Its predictions join the review queue batch by batch."
    )


def build_projects_tab(runtime: Runtime, *, user_state: gr.State, project: gr.Dropdown) -> ProjectsTab:
    table = gr.Dataframe(headers=PROJECT_HEADERS, interactive=False, label="Projects", elem_id="projects-table")
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            gr.HTML("<h3>New project</h3>", js_on_load=None)
            name = gr.Textbox(label="Name", elem_id="new-project-name")
            task_type = gr.Radio(TASK_CHOICES, value="detection", label="Task", elem_id="new-project-task")
            labels = gr.Textbox(label="Labels (comma-separated)", placeholder="circle, square, triangle")
            distribution = gr.Checkbox(label="Classification answers are probability distributions")
            description = gr.Textbox(label="Description", lines=2)
            create = gr.Button("Create project", variant="primary", elem_id="new-project-create")
            create_message = gr.HTML("", js_on_load=None)
        with gr.Column(variant="panel"):
            gr.HTML("<h3>Add images to the selected project</h3>", js_on_load=None)
            files = gr.File(label="Images", file_count="multiple", file_types=["image"], elem_id="upload-files")
            query = gr.Textbox(label="Grounding query for these images (grounding projects only)")
            upload = gr.Button("Import images", variant="primary", elem_id="upload-import")
            upload_message = gr.HTML("", js_on_load=None)
            gr.HTML("<h3>Annotate new items with a model</h3>", js_on_load=None)
            model = gr.Textbox(
                label="Model",
                placeholder="empty: the serving version, else the project's default model; or a version name, "
                "a Hub id such as Qwen/Qwen2-VL-2B-Instruct, a model folder",
                elem_id="annotate-model",
            )
            annotate = gr.Button("Queue annotation", variant="primary", elem_id="annotate-start")
            annotate_message = gr.HTML("", js_on_load=None)

    tab = ProjectsTab(
        table=table,
        name=name,
        task_type=task_type,
        labels=labels,
        distribution=distribution,
        description=description,
        create=create,
        create_message=create_message,
        files=files,
        query=query,
        upload=upload,
        upload_message=upload_message,
        model=model,
        annotate=annotate,
        annotate_message=annotate_message,
    )
    create.click(
        partial(on_create, runtime),
        [user_state, name, task_type, labels, distribution, description],
        [project, table, create_message],
        api_name="project_create",
    )
    upload.click(
        partial(on_upload, runtime),
        [user_state, project, files, query],
        [table, upload_message],
        api_name="project_upload",
        concurrency_limit=1,
    )
    annotate.click(
        partial(on_annotate, runtime), [user_state, project, model], [annotate_message], api_name="project_annotate"
    )
    return tab

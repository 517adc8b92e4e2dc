"""Export controls for admins: download the selected project (Label Studio JSON and config, COCO, Hugging Face
dataset) or push it to a Label Studio server.

    build_export_controls(runtime, user_state=user_state, project=project)   # inside any admin tab

Handlers refuse non-admins, call `app.services.exports`, and show every message escaped. The API key is read from
the password box, or from `LABEL_STUDIO_API_KEY` when the URL is empty or `LABEL_STUDIO_URL`'s, and never shown
back, logged or put in a message.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from app.export.label_studio_config import LabelingConfigError
from app.export.label_studio_push import URL_ENV, LabelStudioError
from app.runtime import Runtime
from app.services import exports
from app.ui.render import escape
from app.ui.selection import selected_project
from app.ui.session import UserInfo, require_admin

FORMATS = {
    "Label Studio tasks (JSON)": "label-studio",
    "Label Studio labeling config (XML)": "label-studio-config",
    "COCO detection (JSON)": "coco",
    "Hugging Face dataset: SFT data (zip)": "hf-sft",
    "Hugging Face dataset: trusted annotations (zip)": "hf-annotations",
}
_ERRORS = (exports.ExportError, LabelStudioError, LabelingConfigError)


@dataclass
class ExportControls:
    format: gr.Radio
    download: gr.Button
    file: gr.File
    download_status: gr.HTML
    url: gr.Textbox
    api_key: gr.Textbox
    title: gr.Textbox
    images: gr.Radio
    push: gr.Button
    push_status: gr.HTML


def _message(text: str, *, error: bool = False) -> str:
    css = "rise-error" if error else "rise-note"
    return f'<div class="{css}">{escape(text)}</div>'


def _safe_stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
    return stem[:60] or "project"


def on_download(
    runtime: Runtime, user: UserInfo | None, project_id: int | None, kind_label: str
) -> tuple[str | None, str]:
    """Write the chosen export to a fresh temporary folder (where Gradio serves files from) and offer it."""
    require_admin(user)
    chosen = selected_project(project_id)
    kind = FORMATS.get(kind_label)
    if kind is None:
        raise gr.Error("Choose an export format.")
    folder = Path(tempfile.mkdtemp(prefix="rise-export-"))
    try:
        stem = _safe_stem(exports.project_info(runtime, chosen).name)  # the files are named after the project
        if kind == "label-studio":
            path = folder / f"{stem}.json"
            summary = exports.export_label_studio(runtime, chosen, path)
            note = (
                f"{summary.tasks:,} tasks, {summary.predictions:,} predictions, {summary.annotations:,} annotations. "
                "The labeling config is the XML format above."
            )
        elif kind == "label-studio-config":
            path = folder / f"{stem}.label_config.xml"
            path.write_text(exports.label_studio_config(runtime, chosen), encoding="utf-8")
            note = "Paste it into Label Studio: Settings > Labeling Interface > Code."
        elif kind == "coco":
            path = folder / f"{stem}.coco.json"
            coco = exports.export_coco(runtime, chosen, path)
            note = f"{coco.images:,} images, {coco.boxes:,} boxes (latest trusted annotation of each item)."
        else:
            dataset_kind = "sft" if kind == "hf-sft" else "annotations"
            summary = exports.export_hf_dataset(runtime, chosen, folder / stem, kind=dataset_kind)
            path = Path(shutil.make_archive(str(folder / f"{stem}-{dataset_kind}"), "zip", folder, stem))
            note = f"{summary.rows:,} rows; unzip and open with datasets.load_from_disk."
    except _ERRORS as error:
        shutil.rmtree(folder, ignore_errors=True)
        return None, _message(str(error), error=True)
    return str(path), _message(f"Ready: {path.name}. {note}")


def on_push(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    url: str,
    api_key: str,
    title: str,
    images: str,
) -> str:
    """Push the selected project to Label Studio; empty URL and key fall back to the environment."""
    require_admin(user)
    try:
        summary = exports.push_to_label_studio(
            runtime,
            selected_project(project_id),
            url=url.strip() or None,
            api_key=api_key.strip() or None,
            title=title.strip() or None,
            image_mode=images,
        )
    except _ERRORS as error:
        return _message(str(error), error=True)
    verb = "Created" if summary.created_project else "Updated"
    return _message(
        f"{verb} Label Studio project “{summary.project_title}” ({summary.project_url}): {summary.tasks:,} tasks, "
        f"{summary.predictions:,} predictions, {summary.annotations:,} annotations imported; "
        f"{summary.images_uploaded:,} images uploaded; {summary.already_there:,} items were already there."
    )


def build_export_controls(runtime: Runtime, *, user_state: gr.State, project: gr.Dropdown) -> ExportControls:
    """Add the export and push controls (in a closed accordion) to the Blocks being built."""
    with gr.Accordion("Export and Label Studio", open=False, elem_id="export-controls"):
        with gr.Row(equal_height=False):
            with gr.Column(variant="panel"):
                gr.HTML("<h3>Download the selected project</h3>", js_on_load=None)
                kind = gr.Radio(list(FORMATS), value=next(iter(FORMATS)), label="Format", elem_id="export-format")
                download = gr.Button("Prepare download", elem_id="export-download")
                file = gr.File(label="Export file", interactive=False, elem_id="export-file")
                download_status = gr.HTML(js_on_load=None, elem_id="export-status")
            with gr.Column(variant="panel"):
                gr.HTML("<h3>Push to a Label Studio server</h3>", js_on_load=None)
                url = gr.Textbox(
                    label="Label Studio URL", placeholder=f"empty: ${URL_ENV}", elem_id="ls-url", max_lines=1
                )
                api_key = gr.Textbox(
                    label="API key",
                    type="password",
                    placeholder="empty: $LABEL_STUDIO_API_KEY (for $LABEL_STUDIO_URL only)",
                    elem_id="ls-api-key",
                    max_lines=1,
                )
                title = gr.Textbox(
                    label="Label Studio project title", placeholder="empty: the project name", max_lines=1
                )
                images = gr.Radio(
                    [("Upload the images", "upload"), ("Embed them in the tasks", "inline")],
                    value="upload",
                    label="Images",
                    elem_id="ls-images",
                )
                push = gr.Button("Push to Label Studio", elem_id="ls-push")
                push_status = gr.HTML(js_on_load=None, elem_id="ls-push-status")
    download.click(
        partial(on_download, runtime),
        [user_state, project, kind],
        [file, download_status],
        api_name="export_download",
    )
    push.click(
        partial(on_push, runtime),
        [user_state, project, url, api_key, title, images],
        [push_status],
        api_name="export_push",
    )
    return ExportControls(kind, download, file, download_status, url, api_key, title, images, push, push_status)

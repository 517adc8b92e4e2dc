"""The project chosen in the selector at the top of the page, as the admin tabs' handlers need it."""

from __future__ import annotations

import gradio as gr

from app.runtime import Runtime
from app.services import projects as project_service


def selected_project_name(runtime: Runtime, project_id: int | None) -> str:
    """The chosen project's name (one primary-key query); a `gr.Error` when none is chosen or it no longer exists."""
    name = project_service.project_name(runtime, project_id) if project_id is not None else None
    if name is None:
        raise gr.Error("Pick a project at the top first.")
    return name

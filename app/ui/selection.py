"""The project chosen in the selector at the top of the page, as the admin tabs' handlers need it."""

from __future__ import annotations

import gradio as gr


def selected_project(project_id: int | None) -> int:
    """The chosen project's id, which the services take; a `gr.Error` when none is chosen."""
    if project_id is None:
        raise gr.Error("Pick a project at the top first.")
    return project_id

"""Admin tabs: accounts (Users) and annotation runs (Runs). Hidden for reviewers, and refused to them by every
handler, so a reviewer calling the API directly gets nowhere either."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from app.runtime import Runtime
from app.services import auth
from app.ui.render import escape
from app.ui.runs import RUN_HEADERS, RunLog
from app.ui.session import UserInfo, require_admin

LOCAL_USERNAME = "local"
USER_HEADERS = ["username", "role", "active"]
ROLE_CHOICES = [("Reviewer", "reviewer"), ("Admin", "admin")]


def local_user(runtime: Runtime) -> UserInfo:
    """The account used when the app runs on loopback without login (it has no usable password)."""
    return auth.ensure_user(runtime, LOCAL_USERNAME, "admin")


def user_rows(runtime: Runtime) -> list[list[Any]]:
    return [[u.username, u.role, "yes" if u.is_active else "no"] for u in auth.list_users(runtime)]


def on_refresh_users(runtime: Runtime, user: UserInfo | None) -> list[list[Any]]:
    require_admin(user)
    return user_rows(runtime)


def on_create_user(
    runtime: Runtime, user: UserInfo | None, username: str, password: str, role: str
) -> tuple[Any, ...]:
    require_admin(user)
    try:
        created = auth.create_user(runtime, username or "", password or "", role or "reviewer")
    except auth.AuthError as error:
        return gr.skip(), gr.skip(), f'<div class="rise-parse-error">{escape(str(error))}</div>'
    message = f"Created {created.role} {created.username!r}."
    return user_rows(runtime), "", f'<div class="rise-status">{escape(message)}</div>'


def build_users_tab(runtime: Runtime, *, user_state: gr.State) -> gr.Dataframe:
    table = gr.Dataframe(headers=USER_HEADERS, interactive=False, label="Accounts", elem_id="users-table")
    refresh = gr.Button("Refresh", size="sm")
    with gr.Column(variant="panel"):
        gr.HTML("<h3>New account</h3>", js_on_load=None)
        with gr.Row():
            username = gr.Textbox(label="Username", elem_id="new-user-name")
            password = gr.Textbox(
                label="Password (8 characters or more)", type="password", elem_id="new-user-password"
            )
            role = gr.Radio(ROLE_CHOICES, value="reviewer", label="Role")
        create = gr.Button("Create account", variant="primary", elem_id="new-user-create")
        message = gr.HTML("", js_on_load=None)
    refresh.click(partial(on_refresh_users, runtime), [user_state], [table], api_name="users_refresh")
    create.click(
        partial(on_create_user, runtime),
        [user_state, username, password, role],
        [table, password, message],
        api_name="users_create",
    )
    return table


def on_refresh_runs(run_log: RunLog, user: UserInfo | None) -> list[list[Any]]:
    require_admin(user)
    return run_log.rows()


def build_runs_tab(*, user_state: gr.State, run_log: RunLog) -> gr.Dataframe:
    gr.HTML(
        '<p class="rise-muted">Annotation runs started from the Projects tab on this server, newest first. '
        "Predictions are saved batch by batch, so a run that stops keeps what it finished; starting it again "
        "annotates only what is left.</p>",
        js_on_load=None,
    )
    table = gr.Dataframe(headers=RUN_HEADERS, interactive=False, label="Annotation runs", elem_id="runs-table")
    refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh")
    refresh.click(partial(on_refresh_runs, run_log), [user_state], [table], api_name="runs_refresh")
    return table

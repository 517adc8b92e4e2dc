"""Admin tabs: accounts (Users) and annotate jobs (Runs). Hidden for reviewers, and refused to them by every
handler, so a reviewer calling the API directly gets nowhere either."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import gradio as gr

from app.runtime import Runtime
from app.services import auth
from app.services import jobs as job_service
from app.ui.render import escape
from app.ui.session import UserInfo, require_admin

LOCAL_USERNAME = "local"
USER_HEADERS = ["username", "role", "active"]
ROLE_CHOICES = [("Reviewer", "reviewer"), ("Admin", "admin")]
RUN_HEADERS = ["job", "project", "model", "status", "progress", "attempts", "created", "finished", "message"]
RUNS_SHOWN = 50
RUNS_REFRESH_SECONDS = 3.0


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


def run_rows(jobs: list[job_service.JobView]) -> list[list[Any]]:
    """Annotate jobs as the Runs table shows them, newest first."""
    rows = []
    for job in jobs:
        last_line = job.log.strip().splitlines()[-1] if job.log.strip() else ""
        progress = f"{job.step}/{job.total_steps}" if job.total_steps else ""
        rows.append(
            [
                job.id,
                job.project,
                job.config.get("model") or job.config.get("version") or "",
                job.status + (" (cancelling)" if job.cancel_requested and job.active else ""),
                progress,
                job.attempts,
                _when(job.created_at),
                _when(job.finished_at),
                job.error or last_line,
            ]
        )
    return rows


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def on_refresh_runs(runtime: Runtime, user: UserInfo | None) -> list[list[Any]]:
    require_admin(user)
    return run_rows(job_service.list_jobs(runtime, kind="annotate", limit=RUNS_SHOWN))


def build_runs_tab(runtime: Runtime, *, user_state: gr.State, tab: gr.Tab | None = None) -> gr.Dataframe:
    """The tab's contents; with `tab`, the table refreshes itself every few seconds once the tab was first opened."""
    gr.HTML(
        '<p class="rise-muted">Annotate jobs of every project, newest first: those queued from the Projects tab and '
        "the re-annotations after a promotion. A running <code>rise worker</code> takes them. Predictions are saved "
        "batch by batch, so a job that stops keeps what it finished, and its next attempt annotates only what is "
        "left.</p>",
        js_on_load=None,
    )
    table = gr.Dataframe(headers=RUN_HEADERS, interactive=False, label="Annotation runs", elem_id="runs-table")
    refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh")
    do_refresh = partial(on_refresh_runs, runtime)
    refresh.click(do_refresh, [user_state], [table], api_name="runs_refresh")
    timer = gr.Timer(RUNS_REFRESH_SECONDS, active=tab is None)
    timer.tick(do_refresh, [user_state], [table], api_visibility="private", show_progress="hidden")
    if tab is not None:
        tab.select(lambda: gr.Timer(active=True), None, [timer]).then(do_refresh, [user_state], [table])
    return table

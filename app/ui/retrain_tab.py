"""The Retrain tab (admins): queue a retraining, watch it live, and choose which model version serves.

- Retrain: queue a job for the selected project (base model and pipeline settings optional); `rise worker` runs it.
- Jobs: the project's queue, newest first; the selected job's stage, step, reward and loss curves and log, refreshed
  every few seconds while the tab is open; Cancel stops a queued or running job.
- Versions: every registered version with its held-out score; Promote serves any of them, Roll back returns to
  the one that served before; both can re-annotate the unreviewed items with the new serving version.
- Policy: retrain after N new verdicts and/or every H hours.

Handlers call `app.services.jobs`, `model_versions` and `retrain_policy` and refuse non-admins; every text that
came from a model, a log or a user is escaped (HTML) or shown in plain-text components.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd

from app.runtime import Runtime
from app.services import jobs as job_service
from app.services import model_versions as version_service
from app.services import retrain_policy as policy_service
from app.ui.render import escape
from app.ui.selection import selected_project
from app.ui.session import UserInfo, is_admin, require_admin

JOB_HEADERS = ["#", "kind", "status", "stage", "step", "progress", "attempts", "created", "finished", "error"]
VERSION_HEADERS = [
    "#", "name", "serving", "held-out score [95 % interval]", "parent", "job", "created", "promoted", "promotion",
]  # fmt: skip
LAUNCHER_CHOICES = [
    ("auto (accelerate, else python)", "auto"),
    ("accelerate launch", "accelerate"),
    ("python -m", "python"),
]
REFRESH_SECONDS = 2.0
# The components a refresh may set, by name (`build_retrain_tab` maps them to its components). An update is a dict
# over some of them; the ones it leaves out stay as they are on screen.
REFRESH_FIELDS: tuple[str, ...] = (
    "jobs", "progress", "reward_plot", "loss_plot", "log", "versions", "version_choice", "shown",
)  # fmt: skip
USER_ERRORS = (
    job_service.JobRequestError,
    job_service.ActiveJobExistsError,
    version_service.VersionError,
    policy_service.PolicyError,
)


def _ok(text: str) -> str:
    return f'<div class="rise-status">{escape(text)}</div>'


def _problem(text: str) -> str:
    return f'<div class="rise-parse-error">{escape(text)}</div>'


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def job_rows(jobs: list[job_service.JobView]) -> list[list[Any]]:
    return [
        [
            job.id,
            job.kind,
            job.status + (" (cancelling)" if job.cancel_requested and job.active else ""),
            job.stage,
            f"{job.step}/{job.total_steps}" if job.total_steps else (str(job.step) if job.step else ""),
            f"{job.progress:.0%}",
            job.attempts,
            _when(job.created_at),
            _when(job.finished_at),
            job.error or "",
        ]
        for job in jobs
    ]


def version_rows(versions: list[version_service.VersionView]) -> list[list[Any]]:
    rows = []
    for v in versions:
        score = v.score_text
        promotion = (v.metrics.get("promotion") or {}).get("reason", "")
        rows.append(
            [
                v.id,
                v.name,
                "serving" if v.is_serving else "",
                score,
                v.parent_name or "",
                v.job_id or "",
                _when(v.created_at),
                _when(v.promoted_at),
                promotion,
            ]  # fmt: skip
        )
    return rows


def curves_frame(job: job_service.JobView | None, name: str) -> pd.DataFrame:
    """One curve ("reward" or "loss") of every stage, long form: step, value, stage."""
    rows = []
    for stage, curves in ((job.metrics.get("curves") or {}) if job else {}).items():
        for step, value in curves.get(name, []):
            rows.append({"step": step, "value": value, "stage": stage})
    return pd.DataFrame(rows, columns=["step", "value", "stage"])


def progress_html(job: job_service.JobView | None) -> str:
    if job is None:
        return '<div class="rise-muted">No job yet for this project.</div>'
    step = f", step {job.step} of {job.total_steps}" if job.total_steps else ""
    lines = [
        f"Job #{job.id} ({job.kind}): {job.status}"
        + (", cancelling" if job.cancel_requested and job.active else "")
        + f", attempt {job.attempts}",
        f"Stage {job.stage or '–'}{step} · {job.progress:.0%} overall",
    ]
    last = job.metrics.get("last") or {}
    shown = {k: last[k] for k in ("reward", "loss", "rise/reconstruction_accuracy", "rise/leak_rate") if k in last}
    if shown:
        lines.append(" · ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    if job.error:
        lines.append(f"Error: {job.error}")
    body = "".join(f"<div>{escape(line)}</div>" for line in lines)
    return f'<div class="rise-status" id="retrain-progress-text">{body}</div>'


def policy_html(status: policy_service.PolicyStatus) -> str:
    due = "due now" if status.due else "not due"
    return _ok(f"Policy: {due} ({status.reason}).")


def _selected_job(jobs: list[job_service.JobView], job_number: float | None) -> job_service.JobView | None:
    if job_number:
        return next((job for job in jobs if job.id == int(job_number)), None)
    trains = [job for job in jobs if job.kind == "train"]
    return trains[0] if trains else (jobs[0] if jobs else None)


def _job_signature(job: job_service.JobView | None) -> tuple:
    if job is None:
        return ()
    curves = sum(len(points) for stage in (job.metrics.get("curves") or {}).values() for points in stage.values())
    return (
        job.id,
        job.status,
        job.stage,
        job.step,
        job.progress,
        job.cancel_requested,
        job.error,
        len(job.log),
        curves,
    )


def refresh(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    job_number: float | None,
    shown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The queue, the selected job (default: the newest training job) and the versions of the selected project, as
    an update over `REFRESH_FIELDS`.

    `shown` (a per-browser `gr.State`) remembers what was last sent; parts that have not changed since are left out
    of the update, so a refresh every few seconds re-draws nothing (plots, log, tables) while a job waits or has
    ended. The update's "shown" is the new `shown`.
    """
    if not is_admin(user) or project_id is None:
        return {}
    shown = dict(shown or {})
    jobs = job_service.list_jobs(runtime, project_id, limit=30)
    job = _selected_job(jobs, job_number)
    if job is not None:
        job = job_service.get_job(runtime, job.id)  # the full row, log included
    versions = version_service.list_versions(runtime, project_id)
    current = {
        "project": project_id,
        "jobs": job_rows(jobs),
        "job": _job_signature(job),
        "versions": version_rows(versions),
    }
    same_project = shown.get("project") == project_id

    def changed(key: str) -> bool:
        return not same_project or shown.get(key) != current[key]

    update: dict[str, Any] = {"shown": current}
    if changed("jobs"):
        update["jobs"] = current["jobs"]
    if changed("job"):
        update |= {
            "progress": progress_html(job),
            "reward_plot": curves_frame(job, "reward"),
            "loss_plot": curves_frame(job, "loss"),
            "log": job.log if job else "",
        }
    if changed("versions"):
        choices = [(f"#{v.id} {v.name}" + (" (serving)" if v.is_serving else ""), v.id) for v in versions]
        update |= {"versions": current["versions"], "version_choice": gr.update(choices=choices)}
    return update


def load_policy(runtime: Runtime, user: UserInfo | None, project_id: int | None) -> tuple[Any, ...]:
    """The project's policy into the form: only when the project changes, never while an admin may be typing."""
    if not is_admin(user) or project_id is None:
        return gr.skip(), gr.skip(), gr.skip()
    status = policy_service.policy_status(runtime, project_id)
    return status.every_verdicts, status.every_hours, policy_html(status)


def on_retrain(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    model: str,
    settings: str,
    launcher: str,
    min_items: float | None = None,
) -> str:
    user = require_admin(user)
    try:
        job = job_service.request_retrain(
            runtime,
            selected_project(project_id),
            model=(model or "").strip() or None,
            overrides=(settings or "").splitlines(),
            launcher=launcher or "auto",
            promotion_min_items=job_service.DEFAULT_PROMOTION_MIN_ITEMS if min_items is None else int(min_items),
            reason=f"requested by {user.username} in the app",
            requested_by_id=user.id,
        )
    except USER_ERRORS as error:
        return _problem(str(error))
    return _ok(
        f"Queued job #{job.id}: retrain {job.project} from {job.config['model']}. A running `rise worker` takes it."
    )


def on_cancel(runtime: Runtime, user: UserInfo | None, project_id: int | None, job_number: float | None) -> str:
    require_admin(user)
    jobs = job_service.list_jobs(runtime, selected_project(project_id), limit=30)
    job = _selected_job(jobs, job_number)
    if job is None:
        return _problem("No job to cancel.")
    if not job.active:
        return _problem(f"Job #{job.id} already ended ({job.status}).")
    try:
        job = job_service.cancel_job(runtime, job.id)
    except USER_ERRORS as error:
        return _problem(str(error))
    if job.status == "cancelled":
        return _ok(f"Job #{job.id} cancelled.")
    return _ok(f"Job #{job.id}: its worker stops the training within a few seconds.")


def on_promote(
    runtime: Runtime, user: UserInfo | None, project_id: int | None, version_id: int | None, reannotate: bool
) -> str:
    require_admin(user)
    if version_id is None:
        return _problem("Choose a version to promote.")
    try:
        version = version_service.promote_version(
            runtime, selected_project(project_id), int(version_id), reannotate=bool(reannotate)
        )
    except USER_ERRORS as error:
        return _problem(str(error))
    extra = " Its re-annotation of unreviewed items is queued." if reannotate else ""
    return _ok(f"{version.name} serves new predictions now.{extra}")


def on_rollback(runtime: Runtime, user: UserInfo | None, project_id: int | None, reannotate: bool) -> str:
    require_admin(user)
    try:
        version = version_service.rollback(runtime, selected_project(project_id), reannotate=bool(reannotate))
    except USER_ERRORS as error:
        return _problem(str(error))
    return _ok(f"Rolled back: {version.name} serves new predictions now.")


def on_reannotate(runtime: Runtime, user: UserInfo | None, project_id: int | None) -> str:
    user = require_admin(user)
    try:
        job = job_service.request_reannotation(
            runtime,
            selected_project(project_id),
            requested_by_id=user.id,
            reason=f"asked by {user.username}",
        )
    except USER_ERRORS as error:
        return _problem(str(error))
    return _ok(f"Queued job #{job.id}: annotate the unreviewed items with {job.config['version']}.")


def _optional_number(value: float | None) -> float | None:
    return None if value is None or value == 0 else value


def on_save_policy(
    runtime: Runtime,
    user: UserInfo | None,
    project_id: int | None,
    every_verdicts: float | None,
    every_hours: float | None,
) -> str:
    require_admin(user)
    verdicts = _optional_number(every_verdicts)
    try:
        status = policy_service.set_retrain_policy(
            runtime,
            selected_project(project_id),
            every_verdicts=int(verdicts) if verdicts is not None else None,
            every_hours=_optional_number(every_hours),
        )
    except USER_ERRORS as error:
        return _problem(str(error))
    return policy_html(status)


@dataclass
class RetrainTab:
    timer: gr.Timer
    jobs: gr.Dataframe
    versions: gr.Dataframe
    message: gr.HTML


def build_retrain_tab(
    runtime: Runtime, *, user_state: gr.State, project: gr.Dropdown, tab: gr.Tab | None = None
) -> RetrainTab:
    """The tab's contents; with `tab`, the live refresh runs only after the tab was first opened."""
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            gr.HTML("<h3>Retrain the selected project</h3>", js_on_load=None)
            model = gr.Textbox(
                label="Base model (optional)",
                placeholder="default: the serving version's base model, else the project's model",
                elem_id="retrain-model",
            )
            settings = gr.Textbox(
                label="Pipeline settings (one section.field=value per line)",
                placeholder="rise_cot.max_steps=50\nrft.max_steps=50",
                lines=4,
                elem_id="retrain-settings",
            )
            launcher = gr.Radio(LAUNCHER_CHOICES, value="auto", label="Launcher")
            min_items = gr.Number(
                value=job_service.DEFAULT_PROMOTION_MIN_ITEMS,
                precision=0,
                minimum=0,
                label="Promote automatically only with at least this many held-out items",
                elem_id="retrain-min-items",
            )
            start = gr.Button("Retrain", variant="primary", elem_id="retrain-start")
            message = gr.HTML("", js_on_load=None, elem_id="retrain-message")
        with gr.Column(variant="panel"):
            gr.HTML("<h3>Retraining policy</h3>", js_on_load=None)
            every_verdicts = gr.Number(label="Retrain after this many new verdicts (empty: off)", precision=0)
            every_hours = gr.Number(label="Retrain every this many hours (empty: off)")
            save_policy = gr.Button("Save policy", elem_id="retrain-policy-save")
            policy = gr.HTML("", js_on_load=None, elem_id="retrain-policy")
    gr.HTML("<h3>Jobs</h3>", js_on_load=None)
    jobs = gr.Dataframe(headers=JOB_HEADERS, interactive=False, label="Jobs", elem_id="retrain-jobs")
    with gr.Row():
        job_number = gr.Number(label="Job # to show (0: the newest training job)", precision=0)
        refresh_button = gr.Button("Refresh", size="sm", elem_id="retrain-refresh")
        cancel = gr.Button("Cancel job", variant="stop", size="sm", elem_id="retrain-cancel")
    progress = gr.HTML("", js_on_load=None, elem_id="retrain-progress")
    with gr.Row():
        reward_plot = gr.LinePlot(x="step", y="value", color="stage", label="Reward", elem_id="retrain-reward")
        loss_plot = gr.LinePlot(x="step", y="value", color="stage", label="Loss", elem_id="retrain-loss")
    log = gr.Textbox(label="Log", lines=12, max_lines=24, interactive=False, elem_id="retrain-log")
    gr.HTML("<h3>Model versions</h3>", js_on_load=None)
    versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, label="Versions", elem_id="retrain-versions")
    with gr.Row():
        version_choice = gr.Dropdown([], label="Version", elem_id="retrain-version")
        reannotate = gr.Checkbox(value=True, label="Re-annotate unreviewed items with the new serving version")
    with gr.Row():
        promote = gr.Button("Promote", elem_id="retrain-promote")
        rollback_button = gr.Button("Roll back", elem_id="retrain-rollback")
        reannotate_now = gr.Button("Re-annotate with the serving version", elem_id="retrain-reannotate")
    timer = gr.Timer(REFRESH_SECONDS, active=tab is None)

    # The policy form and its status are filled by `load_policy` only (project change, save), so neither the live
    # refresh nor opening the tab overwrites what an admin is typing.
    shown = gr.State(None)
    components = dict(
        zip(
            REFRESH_FIELDS, [jobs, progress, reward_plot, loss_plot, log, versions, version_choice, shown], strict=True
        )
    )
    refresh_outputs = list(components.values())

    def do_refresh(*args: Any) -> dict[Any, Any]:
        return {components[name]: value for name, value in refresh(runtime, *args).items()}

    refresh_inputs = [user_state, project, job_number, shown]
    # Progress shows on the progress line alone: the page re-reads every component an event ever showed progress on,
    # at each later event, and the plots' points would be read again on every review key press.
    on_line = {"show_progress_on": [progress]}
    refresh_button.click(do_refresh, refresh_inputs, refresh_outputs, api_name="retrain_refresh", **on_line)
    timer.tick(
        do_refresh, refresh_inputs, refresh_outputs, api_visibility="private", show_progress="hidden", **on_line
    )
    policy_form = partial(load_policy, runtime)
    policy_outputs = [every_verdicts, every_hours, policy]
    project.change(do_refresh, refresh_inputs, refresh_outputs, api_visibility="private", **on_line).then(
        policy_form, [user_state, project], policy_outputs
    )
    if tab is not None:
        # Opening the tab starts the live refresh and sends everything once more: what was sent while the tab was
        # never opened may not have reached its components.
        opened = tab.select(lambda: (gr.Timer(active=True), None), None, [timer, shown])
        opened.then(do_refresh, refresh_inputs, refresh_outputs, **on_line)

    def then_refresh(event: Any) -> None:
        event.then(do_refresh, refresh_inputs, refresh_outputs, **on_line)

    inputs = [user_state, project, model, settings, launcher, min_items]
    then_refresh(start.click(partial(on_retrain, runtime), inputs, [message], api_name="retrain_start"))
    then_refresh(
        cancel.click(
            partial(on_cancel, runtime), [user_state, project, job_number], [message], api_name="retrain_cancel"
        )
    )
    then_refresh(
        promote.click(
            partial(on_promote, runtime),
            [user_state, project, version_choice, reannotate],
            [message],
            api_name="retrain_promote",
        )
    )
    then_refresh(
        rollback_button.click(
            partial(on_rollback, runtime), [user_state, project, reannotate], [message], api_name="retrain_rollback"
        )
    )
    then_refresh(
        reannotate_now.click(
            partial(on_reannotate, runtime), [user_state, project], [message], api_name="retrain_reannotate"
        )
    )
    save_policy.click(
        partial(on_save_policy, runtime),
        [user_state, project, every_verdicts, every_hours],
        [policy],
        api_name="retrain_policy",
    )
    return RetrainTab(timer=timer, jobs=jobs, versions=versions, message=message)

"""`rise worker`, `rise retrain`, `rise jobs list|show|cancel`, `rise versions list|promote|rollback` and
`rise policy show|set`: retraining from the job queue.

    rise retrain --project shapes --set rise_cot.max_steps=50     # queue a retraining
    rise worker                                                   # run queued jobs (GPU box; any number on PostgreSQL)
    rise jobs list --project shapes
    rise versions list --project shapes
    rise versions promote --project shapes shapes-v2 --reannotate
    rise policy set --project shapes --every-verdicts 200 --every-hours 24
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from app.commands._common import cli, console, fail, migrated_runtime
from app.services import jobs as job_service
from app.services import model_versions as version_service
from app.services import retrain_policy as policy_service
from app.services.projects import ProjectError, project_id_called
from db.models import JobKind
from rise.training.config import PipelineConfig

jobs_cli = typer.Typer(help="List, inspect and cancel training and re-annotation jobs.", no_args_is_help=True)
versions_cli = typer.Typer(help="Model versions of a project: list, promote, roll back.", no_args_is_help=True)
policy_cli = typer.Typer(help="A project's periodic retraining policy.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")
cli.add_typer(versions_cli, name="versions")
cli.add_typer(policy_cli, name="policy")

USER_ERRORS = (
    ProjectError,
    job_service.JobRequestError,
    job_service.ActiveJobExistsError,
    version_service.VersionError,
    policy_service.PolicyError,
)


def config_file_overrides(path: Path) -> list[str]:
    """A pipeline config file as `section.field=value` overrides: the fields that differ from the defaults (the
    model, data and output folder are the job's own and are left out)."""
    chosen, defaults = PipelineConfig.load(path).to_dict(), PipelineConfig().to_dict()
    overrides = []
    for section, values in chosen.items():
        if isinstance(values, dict):
            for name, value in values.items():
                if value != defaults[section][name]:
                    overrides.append(f"{section}.{name}={json.dumps(value)}")
    return overrides


@cli.command()
def worker(
    lease_seconds: float = typer.Option(60.0, min=1, help="A claimed job is lost this long after a heartbeat stops."),
    idle_seconds: float = typer.Option(5.0, min=0.1, help="Wait between looks at an empty queue."),
    max_jobs: int | None = typer.Option(None, min=1, help="Stop after this many jobs (default: run until stopped)."),
    exit_when_idle: bool = typer.Option(False, help="Stop as soon as the queue is empty."),
    worker_id: str | None = typer.Option(None, help="Name in the job rows (default: host:pid)."),
    policies: bool = typer.Option(True, help="Queue the retraining that projects' periodic policies ask for."),
    kind: list[str] = typer.Option(["train", "annotate"], help="Job kinds to take (repeatable): train, annotate."),
    grace_seconds: float = typer.Option(10.0, min=0, help="Between SIGTERM and SIGKILL when stopping training."),
) -> None:
    """Run queued jobs: retrain (snapshot, RISE pipeline, evaluation, version registration) and re-annotate.

    Ctrl-C or SIGTERM stops the running job's training process and puts the job back in the queue."""
    from app.worker.loop import Worker, WorkerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        kinds = tuple(JobKind(k) for k in kind)
    except ValueError:
        raise fail(f"Unknown job kind in {kind}; use train and/or annotate.") from None
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        console.print(Text(f"Stopping (signal {signum}): the running job goes back to the queue.", style="yellow"))
        stop.set()

    config_values: dict[str, Any] = {"lease_seconds": lease_seconds, "idle_seconds": idle_seconds, "kinds": kinds}
    config_values.update(check_policies=policies, grace_seconds=grace_seconds)
    if worker_id:
        config_values["worker_id"] = worker_id
    try:
        config = WorkerConfig(**config_values)
    except ValueError as error:
        raise fail(error) from None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with migrated_runtime(user_errors=USER_ERRORS) as runtime:
            console.print(Text(f"Worker {config.worker_id} is waiting for jobs ({', '.join(kinds)})."))
            ran = Worker(runtime, config, stop=stop).run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print(Text(f"Worker {config.worker_id} stopped after {ran} job(s)."))


@cli.command()
def retrain(
    project: str = typer.Option(..., "--project", "-p", help="Project to retrain on its verdicts."),
    model: str | None = typer.Option(None, help="Base model (default: the serving version's, else the project's)."),
    config: Path | None = typer.Option(None, help="Pipeline config file (YAML/JSON); its non-default fields apply."),
    overrides: list[str] = typer.Option([], "--set", help="Pipeline setting, e.g. --set rft.max_steps=50."),
    launcher: str = typer.Option("auto", help=f"{', '.join(job_service.LAUNCHERS)}: how the worker starts training."),
    accelerate_config: Path | None = typer.Option(None, help="accelerate config file for the launch (on the worker)."),
    num_processes: int | None = typer.Option(None, min=1, help="Processes (GPUs) for accelerate launch."),
    max_attempts: int = typer.Option(job_service.DEFAULT_MAX_ATTEMPTS, min=1, help="Tries before the job fails."),
    tolerance: float = typer.Option(0.0, min=0, help="Promote if the held-out score drops by at most this."),
    min_eval_items: int = typer.Option(
        job_service.DEFAULT_PROMOTION_MIN_ITEMS,
        min=0,
        help="Promote automatically only when the held-out slice has at least this many items.",
    ),
    reannotate: bool = typer.Option(True, help="After an automatic promotion, re-annotate unreviewed items."),
) -> None:
    """Queue a retraining of the project; `rise worker` runs it."""
    try:
        from_file = config_file_overrides(config) if config else []
    except (ValueError, OSError) as error:
        raise fail(f"{config}: {error}") from None
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        job = job_service.request_retrain(
            runtime,
            project_id_called(runtime, project),
            model=model,
            overrides=[*from_file, *overrides],
            launcher=launcher,
            accelerate_config=str(accelerate_config.expanduser().resolve()) if accelerate_config else None,
            num_processes=num_processes,
            max_attempts=max_attempts,
            promotion_tolerance=tolerance,
            promotion_min_items=min_eval_items,
            reannotate=reannotate,
            reason="command line",
        )
    console.print(Text(f"Queued job #{job.id}: retrain {job.project} from {job.config['model']}. Run `rise worker`."))


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


@jobs_cli.command("list")
def jobs_list(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project's jobs."),
    limit: int = typer.Option(20, min=1, help="How many of the newest jobs."),
) -> None:
    """The newest jobs with their status and progress."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        jobs = job_service.list_jobs(runtime, project_id_called(runtime, project) if project else None, limit=limit)
    table = Table("#", "project", "kind", "status", "stage", "step", "progress", "attempts", "created", "error")
    for job in jobs:
        step = f"{job.step}/{job.total_steps}" if job.total_steps else str(job.step or "")
        table.add_row(
            str(job.id), job.project, job.kind, job.status, job.stage, step, f"{job.progress:.0%}",
            str(job.attempts), _when(job.created_at), Text(job.error or ""),
        )  # fmt: skip
    console.print(table)


@jobs_cli.command("show")
def jobs_show(job_id: int = typer.Argument(..., help="Job number.")) -> None:
    """One job's settings, progress and log."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        job = job_service.get_job(runtime, job_id)
    if job is None:
        raise fail(f"No job #{job_id}.")
    console.print(Text(f"Job #{job.id} ({job.kind}, {job.project}): {job.status}, attempt {job.attempts}"))
    console.print(Text(f"stage {job.stage or '–'}, step {job.step}/{job.total_steps}, {job.progress:.0%}"))
    console.print(Text(json.dumps(job.config, indent=1)))
    if job.error:
        console.print(Text(f"Error: {job.error}", style="red"))
    console.print(Text(job.log))


@jobs_cli.command("cancel")
def jobs_cancel(job_id: int = typer.Argument(..., help="Job number.")) -> None:
    """Cancel a queued job, or stop a running one (its worker stops the training within a heartbeat)."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        job = job_service.cancel_job(runtime, job_id)
    state = "cancelled" if job.status == "cancelled" else f"{job.status}; its worker will stop it shortly"
    console.print(Text(f"Job #{job.id}: {state}."))


def _version_rows(versions: list[version_service.VersionView]) -> Table:
    table = Table("#", "name", "serving", "held-out score [95 % interval]", "parent", "job", "adapter", "created",
                  "promoted", "promotion")  # fmt: skip
    for v in versions:
        promotion = (v.metrics.get("promotion") or {}).get("reason", "")
        table.add_row(
            str(v.id), v.name, "yes" if v.is_serving else "", v.score_text or "–", v.parent_name or "",
            str(v.job_id or ""), Text(v.adapter_path or "(base weights)"), _when(v.created_at), _when(v.promoted_at),
            Text(promotion),
        )  # fmt: skip
    return table


@versions_cli.command("list")
def versions_list(project: str = typer.Option(..., "--project", "-p")) -> None:
    """The project's model versions, newest first, with their held-out score."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        versions = version_service.list_versions(runtime, project_id_called(runtime, project))
    console.print(_version_rows(versions))


@versions_cli.command("promote")
def versions_promote(
    version: str = typer.Argument(..., help="Version name or number."),
    project: str = typer.Option(..., "--project", "-p"),
    reannotate: bool = typer.Option(False, help="Also queue a re-annotation of unreviewed items by it."),
) -> None:
    """Make a version serve new predictions."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        promoted = version_service.promote_version(
            runtime, project_id_called(runtime, project), version, reannotate=reannotate
        )
    console.print(Text(f"{promoted.name} serves {project} now."))


@versions_cli.command("rollback")
def versions_rollback(
    project: str = typer.Option(..., "--project", "-p"),
    reannotate: bool = typer.Option(False, help="Also queue a re-annotation of unreviewed items by it."),
) -> None:
    """Serve the version that served before the current one."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        version = version_service.rollback(runtime, project_id_called(runtime, project), reannotate=reannotate)
    console.print(Text(f"Rolled back: {version.name} serves {project} now."))


def _print_policy(status: policy_service.PolicyStatus) -> None:
    verdicts = f"every {status.every_verdicts} verdicts" if status.every_verdicts else "not by verdicts"
    hours = f"every {status.every_hours} h" if status.every_hours else "not on a schedule"
    due = "due now" if status.due else "not due"
    console.print(Text(f"{status.project}: retrain {verdicts}, {hours}; {due} ({status.reason})."))


@policy_cli.command("show")
def policy_show(project: str = typer.Option(..., "--project", "-p")) -> None:
    """The project's retraining policy and whether it is due."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        _print_policy(policy_service.policy_status(runtime, project_id_called(runtime, project)))


@policy_cli.command("set")
def policy_set(
    project: str = typer.Option(..., "--project", "-p"),
    every_verdicts: int | None = typer.Option(None, min=1, help="Retrain after this many new verdicts."),
    every_hours: float | None = typer.Option(None, help="Retrain this often (when there are new verdicts)."),
) -> None:
    """Set the project's periodic retraining (leave an option out to switch that trigger off)."""
    with migrated_runtime(user_errors=USER_ERRORS) as runtime:
        status = policy_service.set_retrain_policy(
            runtime, project_id_called(runtime, project), every_verdicts=every_verdicts, every_hours=every_hours
        )
    _print_policy(status)

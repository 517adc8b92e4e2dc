"""An annotate job: the project's unreviewed items annotated by one model, through
`app.services.annotation.run_annotation`, which records the model on every prediction and skips items that already
have one from it, so a retried job continues where the lost attempt stopped. A re-annotation names a model version by
id (usually the one just promoted); a request from the Projects tab names any model, or the project's own."""

from __future__ import annotations

import threading
from typing import Any

from app.services.annotation import run_annotation
from app.worker.context import JobContext
from app.worker.lease import JobFailed, JobInterrupted
from db.crud.jobs import finish_job
from db.crud.model_versions import get_model_version
from db.models import JobStatus
from rise.annotate import GenerationSettings
from rise.modeling import ModelLoadError


def _model_of(ctx: JobContext) -> str:
    """What the job annotates with: a version it names by id (a re-annotation), else the model the request chose."""
    config = ctx.job.config
    if "version_id" not in config:
        return str(config["model"])
    with ctx.runtime.sessions.begin() as session:
        version = get_model_version(session=session, version_id=int(config["version_id"]))
        if version is None:
            raise JobFailed(f"Model version #{config['version_id']} no longer exists.")
        return version.name


def run_annotate_job(ctx: JobContext) -> str:
    config = ctx.job.config
    model_name = _model_of(ctx)
    settings = GenerationSettings(
        batch_size=int(config.get("batch_size", 16)), max_new_tokens=int(config.get("max_new_tokens", 256))
    )
    counts = {"done": 0, "total": 0}

    def work(interrupted: threading.Event) -> Any:
        def progress(done: int, total: int) -> None:
            counts.update(done=done, total=total)
            if interrupted.is_set():
                # Raised between batches: what is stored stays stored, a retry does the rest.
                raise JobInterrupted("stopped between batches")

        return run_annotation(ctx.runtime, ctx.job.project_id, model_name, settings=settings, progress=progress)

    def row_fields() -> dict[str, Any]:
        total = counts["total"]
        return {
            "stage": "annotate",
            "step": counts["done"],
            "total_steps": total,
            "progress": round(counts["done"] / total, 4) if total else 0.0,
        }

    ctx.note(f"annotating the unreviewed items of {ctx.job.project!r} with {model_name}")
    ctx.beat(force=True, stage="annotate")
    try:
        summary = ctx.run_in_thread(work, progress=row_fields)
    except ModelLoadError as error:
        raise JobFailed(f"Could not load {model_name}: {error}") from None
    message = (
        f"annotated {summary.stored} of {summary.pending} items with {model_name} ({summary.parsed} readable, "
        f"{summary.failed} unreadable, {len(summary.skipped)} images skipped) in {summary.seconds:.1f} s"
    )
    ctx.note(message)
    with ctx.runtime.sessions.begin() as session:
        finish_job(
            session=session,
            job_id=ctx.job.id,
            worker_id=ctx.keeper.worker_id,
            status=JobStatus.succeeded,
            progress=1.0,
            step=summary.pending,
            total_steps=summary.pending,
            log=ctx.row_log(),
        )
    return message

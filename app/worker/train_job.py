"""A retraining job, step by step, in the job's folder (the same for every attempt, so a retry resumes):

    job-00012/data/            the project's training data, snapshotted once (first attempt) and reused
    job-00012/pipeline.yaml    the pipeline config: base model, snapshot, output folder, the job's overrides
    job-00012/run/             the pipeline's stages; `<stage>/stage.json` marks a finished stage
    job-00012/run/compare/     the serving model's score on the same held-out items, when the pipeline lacks it
    job-00012/progress.jsonl   progress events from the training process (`rise.training.progress`)
    job-00012/job.log          the worker's notes and the training process's output, all attempts

1. snapshot the project's verdicts (`app.services.training_data`), unless an earlier attempt did;
2. run `rise.train --stage all` in a supervised subprocess through `accelerate launch` (or `python -m`), streaming
   its progress into the job row;
3. check the final stage's marker and evaluation report exist: anything less is a failed job, never a version;
4. score the serving model on the same held-out items if the pipeline did not;
5. finish the job, register the version and promote it if it is not worse, in one transaction
   (`app.services.model_versions.register_training_result`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.services.model_versions import LostLeaseError, TrainingOutcome, register_training_result, serving_version
from app.services.training_data import snapshot_training_data
from app.worker.context import JobContext
from app.worker.lease import JobFailed, LeaseLost
from app.worker.process import SupervisedProcess
from app.worker.progress import ProgressState
from rise.training.config import PipelineConfig
from rise.training.launch import accelerate_available, accelerate_command
from rise.training.pipeline import RISE_STAGES, finished_stage
from rise.training.records import SNAPSHOT_INFO

FINAL_STAGE = RISE_STAGES[-1]  # "evaluate": its marker holds the evaluation reports


def _snapshot(ctx: JobContext, data_dir: Path) -> None:
    if (data_dir / SNAPSHOT_INFO).is_file():
        ctx.note(f"reusing the data snapshot in {data_dir} from an earlier attempt")
        return
    ctx.note("snapshotting the project's training data")
    ctx.beat(force=True, stage="snapshot")
    summary = ctx.run_in_thread(
        lambda _interrupted: snapshot_training_data(ctx.runtime, ctx.job.project_id, data_dir),
        progress=lambda: {"stage": "snapshot"},
    )
    ctx.note(
        f"snapshot: {summary.train_items} training items ({summary.with_answer} with a trusted answer, "
        f"{summary.with_cot} with an accepted reasoning, {summary.with_rejections} with rejections), "
        f"{summary.eval_items} held out, {len(summary.skipped)} left out"
    )


def _pipeline_config(ctx: JobContext, data_dir: Path, run_dir: Path) -> Path:
    config = ctx.job.config
    fixed = [f"model={json.dumps(config['model'])}", f"data={json.dumps(str(data_dir))}"]
    fixed.append(f"output_dir={json.dumps(str(run_dir))}")
    try:
        pipeline = PipelineConfig().with_overrides([*config.get("overrides", []), *fixed])
    except ValueError as error:
        raise JobFailed(f"The job's pipeline settings are invalid: {error}") from None
    return pipeline.save(ctx.folder / "pipeline.yaml")


def _commands(ctx: JobContext, train_args: list[str]) -> list[tuple[str, list[str]]]:
    """The launch commands to try, in order: accelerate first unless the job says python (or it is missing)."""
    config = ctx.job.config
    launcher = config.get("launcher", "auto")
    python = [sys.executable, "-m", "rise.train", *train_args]
    if launcher == "python":
        return [("python", python)]
    if not accelerate_available():
        if launcher == "accelerate":
            raise JobFailed("The job asks for `accelerate launch` but accelerate is not installed on this worker.")
        return [("python", python)]
    accelerate_config = config.get("accelerate_config")
    accelerate = accelerate_command(
        train_args,
        accelerate_config=Path(accelerate_config) if accelerate_config else None,
        num_processes=config.get("num_processes"),
    )
    return (
        [("accelerate", accelerate)] if launcher == "accelerate" else [("accelerate", accelerate), ("python", python)]
    )


def _run_pipeline(ctx: JobContext, config_path: Path) -> None:
    progress_path = ctx.folder / "progress.jsonl"
    train_args = ["--config", str(config_path), "--stage", "all", "--progress-file", str(progress_path)]
    commands = _commands(ctx, train_args)
    for number, (name, command) in enumerate(commands):
        state = ProgressState(stages=list(RISE_STAGES))
        ctx.note(f"starting the pipeline with {name}")
        process = SupervisedProcess(command, log_path=ctx.log_path, grace_seconds=ctx.grace_seconds)
        before = progress_path.stat().st_size if progress_path.is_file() else 0
        code = ctx.run_process(process, progress_path, state)
        if code == 0:
            return
        started = progress_path.is_file() and progress_path.stat().st_size > before
        if name == "accelerate" and not started and number + 1 < len(commands):
            # The launcher failed before the pipeline wrote anything: accelerate itself is unusable here.
            ctx.note(f"accelerate launch exited with code {code} before the pipeline started; trying python -m")
            continue
        raise JobFailed(
            f"The training process exited with code {code} during stage {state.stage or '?'}; see the log."
        )


def _evaluation(run_dir: Path) -> dict[str, Any]:
    marker = finished_stage(run_dir, FINAL_STAGE)
    if marker is None:
        raise JobFailed(f"The pipeline ended without its final {FINAL_STAGE!r} stage marker; nothing was registered.")
    reports = marker.get("reports") or {}
    if "rise" not in reports:
        why = marker.get("skipped") or "it has no report for the new version"
        raise JobFailed(f"The new version could not be evaluated ({why}); nothing was registered.")
    report_file = run_dir / FINAL_STAGE / "rise.json"
    if not report_file.is_file():
        raise JobFailed(f"The evaluation report {report_file} is missing; nothing was registered.")
    return reports


def _compare_with_serving(ctx: JobContext, config_path: Path, run_dir: Path, reports: dict[str, Any]) -> tuple:
    """The serving model's metrics on this run's held-out items: (version id, metrics), or (None, None) when the
    serving model is the base model, which the pipeline scored itself."""
    serving = serving_version(ctx.runtime, ctx.job.project_id)
    if serving is None or serving.is_base:
        if "base" in reports:
            return None, None
        target = (None, "base", ctx.job.config["model"], None)
    else:
        target = (serving.id, serving.name, serving.base_model, serving.adapter_path)
    version_id, name, model, adapter = target
    out = run_dir / "compare" / f"{'version-' + str(version_id) if version_id else 'base'}.json"
    if not out.is_file():
        ctx.note(f"scoring the serving model {name} on the same held-out items")
        command = [sys.executable, "-m", "app.worker.evaluate_version", "--config", str(config_path)]
        command += ["--model", model, "--name", name, "--out", str(out), *(["--adapter", adapter] if adapter else [])]
        ctx.beat(force=True, stage="compare")
        code = ctx.run_process(SupervisedProcess(command, log_path=ctx.log_path), None, None)
        if code != 0 or not out.is_file():
            raise JobFailed(f"Scoring the serving model {name} failed (exit code {code}); see the log.")
    metrics = json.loads(out.read_text())["metrics"]
    if version_id is None:
        reports["base"] = {"model": model, "adapter": None, "metrics": metrics}
    return version_id, metrics


def _training_summary(run_dir: Path) -> dict[str, Any]:
    keys = ("steps", "seconds", "items", "qualified", "stopped_by_time_limit", "train_loss")
    summary = {}
    for stage in RISE_STAGES[:-1]:
        marker = finished_stage(run_dir, stage) or {}
        summary[stage] = {key: marker[key] for key in keys if key in marker}
    return summary


def _annotation_settings(config_path: Path) -> dict[str, Any]:
    evaluation = PipelineConfig.load(config_path).evaluation
    return {"batch_size": evaluation.batch_size, "max_new_tokens": evaluation.max_new_tokens}


def run_train_job(ctx: JobContext) -> str:
    data_dir, run_dir = ctx.folder / "data", ctx.folder / "run"
    _snapshot(ctx, data_dir)
    config_path = _pipeline_config(ctx, data_dir, run_dir)
    if finished_stage(run_dir, FINAL_STAGE) is None:
        _run_pipeline(ctx, config_path)
    else:
        ctx.note("the pipeline finished in an earlier attempt; registering its result")
    reports = _evaluation(run_dir)
    compared_id, compared_metrics = _compare_with_serving(ctx, config_path, run_dir, reports)
    new = reports["rise"]
    outcome = TrainingOutcome(
        base_model=ctx.job.config["model"],
        model_path=new["model"],
        adapter_path=new.get("adapter"),
        data_snapshot=str(data_dir),
        eval_metrics=new["metrics"],
        eval_report=str(run_dir / FINAL_STAGE / "rise.json"),
        base_metrics=(reports.get("base") or {}).get("metrics"),
        compared_version_id=compared_id,
        compared_metrics=compared_metrics,
        training=_training_summary(run_dir),
        annotation_settings=_annotation_settings(config_path),
    )
    ctx.beat(force=True, stage="register")
    try:
        registration = register_training_result(
            ctx.runtime, job_id=ctx.job.id, worker_id=ctx.keeper.worker_id, outcome=outcome, log=ctx.row_log()
        )
    except LostLeaseError as lost:
        raise LeaseLost(str(lost)) from None
    decision = registration.decision
    verdict = "promoted: it serves new predictions now" if decision.promote else "not promoted"
    message = f"registered {registration.version.name} ({verdict}; {decision.reason})"
    ctx.note(message)
    ctx.finish_log()
    return message

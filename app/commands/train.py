"""`rise train`: snapshot a project's verdicts, then run RISE training stages on them.

    rise train --project shapes --output-dir runs/shapes                       # the whole RISE pipeline
    rise train --project shapes --output-dir runs/shapes --stage baselines     # SFT and Visual-RFT baselines
    rise train --project shapes --output-dir runs/shapes --config rise.yaml --set rise_cot.max_steps=50
    rise train --project shapes --output-dir runs/shapes --accelerate-config zero3.yaml   # several GPUs, ZeRO-3

Running the same command again resumes after the last finished stage, on the same snapshot (`--resnapshot` takes a
fresh one, `--restart` reruns finished stages).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from app.commands._common import cli, console, fail, migrated_runtime
from app.services.projects import ProjectError, project_id_called
from app.services.training_data import TrainingDataSummary, snapshot_training_data
from rise.training.config import PipelineConfig
from rise.training.launch import LAUNCHERS, choose_launcher, run_accelerate
from rise.training.pipeline import STAGE_GROUPS, STAGES, resolve_stages, run_pipeline
from rise.training.records import SNAPSHOT_INFO

DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
DATA_DIR = "data"
CONFIG_FILE = "config.yaml"


def _snapshot(project: str, data_dir: Path) -> TrainingDataSummary:
    with migrated_runtime() as runtime:
        return snapshot_training_data(runtime, project_id_called(runtime, project), data_dir)


def _print_snapshot(summary: TrainingDataSummary) -> None:
    console.print(
        Text(
            f"Snapshot of {summary.project!r} in {summary.path}: {summary.train_items} training items "
            f"({summary.with_answer} with a trusted answer, {summary.with_cot} with an accepted reasoning, "
            f"{summary.with_rejections} with rejected answers), {summary.eval_items} held out."
        )
    )
    for item_id, reason in summary.skipped[:20]:
        console.print(Text(f"  left out item {item_id}: {reason}", style="yellow"))
    if len(summary.skipped) > 20:
        console.print(Text(f"  ... and {len(summary.skipped) - 20} more (see {summary.path / SNAPSHOT_INFO})"))


@cli.command()
def train(
    project: str = typer.Option(..., "--project", "-p", help="Project whose verdicts to train on."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder for the snapshot and every stage."),
    model: str | None = typer.Option(
        None, "--model", "-m", help=f"Base model id or folder; default: the project's model, else {DEFAULT_MODEL}."
    ),
    stage: str = typer.Option(
        "all", help=f"Stage(s): {', '.join([*STAGE_GROUPS, *STAGES])}, or a comma-separated list."
    ),
    config: Path | None = typer.Option(None, help="Pipeline config (YAML/JSON) with one section per stage."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config field, e.g. --set rft.max_steps=50 (repeatable)."
    ),
    launcher: str = typer.Option(
        "auto", help=f"{', '.join(LAUNCHERS)}: auto uses accelerate launch on GPUs, in-process on one CPU process."
    ),
    accelerate_config: Path | None = typer.Option(
        None, help="accelerate config file (several GPUs, DeepSpeed ZeRO-3, ...); implies accelerate launch."
    ),
    num_processes: int | None = typer.Option(None, min=1, help="Processes (GPUs) for accelerate launch."),
    resnapshot: bool = typer.Option(False, help="Snapshot the project's verdicts again even if a snapshot exists."),
    restart: bool = typer.Option(False, help="Run the selected stages again even if they finished before."),
) -> None:
    """Train a new model version on the project's verdicts with RISE (RISE-CoT, filter, SFT, RFT, evaluation)."""
    output_dir = output_dir.expanduser().resolve()
    data_dir = output_dir / DATA_DIR
    try:
        resolve_stages(stage)
        chosen = choose_launcher(launcher, accelerate_config=accelerate_config, num_processes=num_processes)
        base = PipelineConfig.load(config) if config else PipelineConfig()
    except (ValueError, OSError) as error:
        raise fail(error) from None
    if resnapshot or not (data_dir / SNAPSHOT_INFO).is_file():
        try:
            summary = _snapshot(project, data_dir)
        except ProjectError as error:
            raise fail(error) from None
        _print_snapshot(summary)
        default_model = summary.default_model
    else:
        info = json.loads((data_dir / SNAPSHOT_INFO).read_text())
        if info.get("project") != project:
            raise fail(
                f"{output_dir} holds a run of project {info.get('project')!r}, not {project!r}. "
                "Choose another --output-dir."
            )
        console.print(Text(f"Resuming on the snapshot in {data_dir} (--resnapshot takes a fresh one)."))
        default_model = None
        if config is None and (output_dir / CONFIG_FILE).is_file():
            # The earlier run's settings (model included), so the resumed stages continue what it started.
            base = PipelineConfig.load(output_dir / CONFIG_FILE)
            config = output_dir / CONFIG_FILE
    chosen_model = model or default_model or (base.model if config else DEFAULT_MODEL)
    try:
        pipeline = base.with_overrides(
            [*overrides, f"model={json.dumps(chosen_model)}", f"data={json.dumps(str(data_dir))}",
             f"output_dir={json.dumps(str(output_dir))}"]
        )  # fmt: skip
    except ValueError as error:
        raise fail(error) from None
    config_path = pipeline.save(output_dir / CONFIG_FILE)
    if chosen == "accelerate":
        train_args = ["--config", str(config_path), "--stage", stage, *(["--restart"] if restart else [])]
        code = run_accelerate(train_args, accelerate_config=accelerate_config, num_processes=num_processes)
        if code != 0:
            raise fail(f"Training failed (accelerate launch exited with {code}); see the output above.")
        return
    try:
        results = run_pipeline(pipeline, stage, restart=restart, progress=_print_progress)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        raise fail(error) from None
    _print_results(results)


def _print_progress(stage: str, event: str) -> None:
    words = {"start": "running ...", "skip": "already finished, skipped", "done": "finished"}
    console.print(Text(f"{stage}: {words[event]}"))


def _print_results(results: dict[str, dict]) -> None:
    for stage, summary in results.items():
        if "reasons" in summary:
            console.print(Text(f"{stage}: {summary['qualified']} of {summary['items']} items qualified"))
            for reason, count in summary["reasons"].items():
                console.print(Text(f"  {count} not: {reason}"))
        elif "reports" in summary:
            for name, report in summary["reports"].items():
                metrics = {k: v for k, v in report["metrics"].items() if isinstance(v, int | float)}
                console.print(Text(f"{stage}: {name} {json.dumps(metrics)}"))
        elif "skipped" in summary:
            console.print(Text(f"{stage}: skipped, {summary['skipped']}"))
        elif "final" in summary:
            console.print(Text(f"{stage}: {summary.get('steps')} steps, saved to {summary['final']}"))

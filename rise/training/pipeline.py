"""The RISE pipeline as resumable stages, and the baselines on the same data.

| stage | does | writes (under output_dir) |
|---|---|---|
| `rise_cot` | stage 1 GRPO with the reconstruction reward | `rise_cot/final`, `rise_cot/rollouts/*.jsonl` |
| `filter` | best qualifying reasoning per item | `filter/sft_data.jsonl`, `filter/report.json` |
| `sft` | SFT on image + prompt -> reasoning + answer | `sft/final` |
| `rft` | GRPO with task and human-feedback rewards | `rft/final` (the new model version) |
| `evaluate` | the new version (and the base model) on held-out items | `evaluate/rise.json`, `evaluate/base.json` |
| `baseline_sft` | SFT on answers only | `baseline_sft/final` |
| `visual_rft` | GRPO from the base model, format + accuracy | `visual_rft/final` |
| `evaluate_baselines` | both baselines on held-out items | `evaluate_baselines/*.json` |

`all` runs the first five, `baselines` the last three. A finished stage leaves `<stage>/stage.json` (its summary);
running again skips finished stages, so an interrupted run resumes from the last finished one. Training stages run
in every process of an `accelerate launch`; the filter and evaluation run on the main process while the others wait.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rise.training.config import PipelineConfig
from rise.training.records import Snapshot, load_snapshot

RISE_STAGES = ("rise_cot", "filter", "sft", "rft", "evaluate")
BASELINE_STAGES = ("baseline_sft", "visual_rft", "evaluate_baselines")
STAGES = RISE_STAGES + BASELINE_STAGES
STAGE_GROUPS = {"all": RISE_STAGES, "baselines": BASELINE_STAGES, "everything": STAGES}
MARKER = "stage.json"
MAIN_PROCESS_STAGES = ("filter", "evaluate", "evaluate_baselines")


def resolve_stages(selection: str | list[str]) -> list[str]:
    """`all`, `baselines`, `everything`, one stage name or a comma-separated list, in pipeline order."""
    names = selection.split(",") if isinstance(selection, str) else list(selection)
    chosen: set[str] = set()
    for name in (n.strip() for n in names if n.strip()):
        if name in STAGE_GROUPS:
            chosen.update(STAGE_GROUPS[name])
        elif name in STAGES:
            chosen.add(name)
        else:
            raise ValueError(f"Unknown stage {name!r}; choose from {', '.join([*STAGE_GROUPS, *STAGES])}.")
    if not chosen:
        raise ValueError("No stage selected; e.g. --stage all")
    return [stage for stage in STAGES if stage in chosen]


def stage_marker(output_dir: str | Path, stage: str) -> Path:
    return Path(output_dir) / stage / MARKER


def finished_stage(output_dir: str | Path, stage: str) -> dict[str, Any] | None:
    """The summary a finished stage left, or `None` if it has not finished."""
    marker = stage_marker(output_dir, stage)
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None  # a marker torn by a crash counts as unfinished


def _require_finished(output_dir: Path, stage: str, needed_by: str) -> dict[str, Any]:
    summary = finished_stage(output_dir, stage)
    if summary is None:
        raise RuntimeError(f"The {needed_by!r} stage needs the {stage!r} stage's output: run `--stage {stage}` first.")
    return summary


def _trained_model(stage_summary: dict[str, Any]) -> tuple[str, str | None]:
    """(model, adapter) that a training stage produced: base + adapter for LoRA, the folder itself otherwise."""
    return stage_summary["model"], stage_summary.get("adapter")


def trained_version(start_model: str, use_lora: bool, final: str) -> dict[str, Any]:
    """The model version a training stage produced: its adapter on the model it started from, or a whole model."""
    return {"model": start_model, "adapter": final} if use_lora else {"model": final, "adapter": None}


# Stage runners: (config, snapshot, stage_dir) -> summary


def _run_rise_cot(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.rise_cot import train_rise_cot

    summary = train_rise_cot(config.model, snapshot, config.rise_cot, stage_dir)
    return {**summary, **trained_version(summary["started_from"], config.rise_cot.use_lora, summary["final"])}


def _run_filter(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.cot_filter import select_cots, write_filter_outputs
    from rise.training.reconstruction import read_rollouts

    rollouts_dir = Path(config.output_dir) / "rise_cot" / "rollouts"
    report = select_cots(snapshot, read_rollouts(rollouts_dir), config.filter)
    return write_filter_outputs(report, stage_dir)


def _run_sft(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.cot_filter import read_selected
    from rise.training.sft import train_sft

    _require_finished(Path(config.output_dir), "filter", "sft")
    selected = read_selected(Path(config.output_dir) / "filter")
    summary = train_sft(config.model, snapshot, config.sft, stage_dir, selected)
    return {**summary, **trained_version(config.model, config.sft.use_lora, summary["final"])}


def _run_rft(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.rft import train_rft

    model, adapter = config.model, None
    if config.rft.start_from == "sft":
        model, adapter = _trained_model(_require_finished(Path(config.output_dir), "sft", "rft"))
    summary = train_rft(model, snapshot, config.rft, stage_dir, adapter=adapter)
    # Continuing the SFT adapter keeps the result one adapter on the base model.
    return {**summary, **trained_version(model, adapter is not None or config.rft.use_lora, summary["final"])}


def _run_baseline_sft(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.sft import train_sft

    summary = train_sft(config.model, snapshot, config.baseline_sft, stage_dir, None)
    return {**summary, **trained_version(config.model, config.baseline_sft.use_lora, summary["final"])}


def _run_visual_rft(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    from rise.training.rft import train_rft

    summary = train_rft(config.model, snapshot, config.visual_rft, stage_dir)
    return {**summary, **trained_version(config.model, config.visual_rft.use_lora, summary["final"])}


def _evaluate_versions(
    config: PipelineConfig, snapshot: Snapshot, stage_dir: Path, versions: dict[str, tuple[str, str | None]]
) -> dict[str, Any]:
    from rise.training.evaluate import evaluate_model

    if len(snapshot.split(config.evaluation.split)) == 0:
        # A recorded skip, not a failure: the trained model is still good, there is just nothing held out.
        return {"skipped": f"the snapshot's {config.evaluation.split!r} split is empty; hold out items to evaluate"}
    reports = {}
    for name, (model, adapter) in versions.items():
        report = evaluate_model(
            model, snapshot, config.evaluation, adapter=adapter, out_path=stage_dir / f"{name}.json", name=name
        )
        reports[name] = {"model": model, "adapter": adapter, "metrics": report["metrics"]}
        gc.collect()
    return {"reports": reports}


def _run_evaluate(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    versions = {"rise": _trained_model(_require_finished(Path(config.output_dir), "rft", "evaluate"))}
    if config.evaluation.include_base:
        versions["base"] = (config.model, None)
    return _evaluate_versions(config, snapshot, stage_dir, versions)


def _run_evaluate_baselines(config: PipelineConfig, snapshot: Snapshot, stage_dir: Path) -> dict[str, Any]:
    output_dir = Path(config.output_dir)
    versions = {
        name: _trained_model(_require_finished(output_dir, name, "evaluate_baselines"))
        for name in ("baseline_sft", "visual_rft")
    }
    return _evaluate_versions(config, snapshot, stage_dir, versions)


RUNNERS: dict[str, Callable[[PipelineConfig, Snapshot, Path], dict[str, Any]]] = {
    "rise_cot": _run_rise_cot,
    "filter": _run_filter,
    "sft": _run_sft,
    "rft": _run_rft,
    "evaluate": _run_evaluate,
    "baseline_sft": _run_baseline_sft,
    "visual_rft": _run_visual_rft,
    "evaluate_baselines": _run_evaluate_baselines,
}


def run_pipeline(
    config: PipelineConfig,
    stages: str | list[str] = "all",
    *,
    restart: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the selected stages in order, skipping those already finished (unless `restart`).

    Args:
        config (`PipelineConfig`): model, data snapshot, output folder and every stage's settings.
        stages (`str | list[str]`): "all", "baselines", "everything", a stage name or a list of them.
        restart (`bool`): run the selected stages again even if they finished before.
        progress (`Callable[[str, str], None]`, *optional*): called with (stage, "start" | "skip" | "done").

    Returns:
        `dict`: each selected stage's summary (read from its marker when it was skipped).
    """
    from accelerate import PartialState

    config.require_paths()
    state = PartialState()
    output_dir = Path(config.output_dir)
    selected = resolve_stages(stages)
    snapshot = load_snapshot(config.data)
    # Every process decides what to skip before any marker is written, so all of them run the same stages.
    done = {stage: None if restart else finished_stage(output_dir, stage) for stage in selected}
    if state.is_main_process:
        config.save(output_dir / "config.yaml")
    results: dict[str, dict[str, Any]] = {}
    for stage in selected:
        if done[stage] is not None:
            results[stage] = done[stage]
            _notify(progress, stage, "skip")
            continue
        _notify(progress, stage, "start")
        stage_dir = output_dir / stage
        if state.is_main_process:
            stage_marker(output_dir, stage).unlink(missing_ok=True)
            # What an interrupted run may have left: a half-saved model, rollouts the new run must not mix with.
            for leftover in ("final", "rollouts"):
                if stage not in MAIN_PROCESS_STAGES and (stage_dir / leftover).exists():
                    shutil.rmtree(stage_dir / leftover)
        state.wait_for_everyone()
        summary: dict[str, Any] = {}
        if stage not in MAIN_PROCESS_STAGES or state.is_main_process:
            summary = RUNNERS[stage](config, snapshot, stage_dir)
        if state.is_main_process:
            summary = {"stage": stage, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **summary}
            marker = stage_marker(output_dir, stage)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(summary, indent=1, default=str))
        state.wait_for_everyone()
        results[stage] = finished_stage(output_dir, stage) or summary
        gc.collect()
        _notify(progress, stage, "done")
    return results


def _notify(progress: Callable[[str, str], None] | None, stage: str, event: str) -> None:
    if progress is not None:
        progress(stage, event)

"""The whole RISE pipeline for a few steps per stage on the tiny model and synthetic scenes, on CPU, from a
project's verdicts in the database to an evaluated adapter; then a resumed run, and the baselines through
`accelerate launch`.

Why the reviewer-accepted reasonings: a random-weight model never reconstructs a label from its own reasoning, so
no rollout reaches the default τ (reconstruction correct); the filter's rollout path is covered with crafted
rollouts in test_training_filter.py. Here the accepted reasonings qualify (as they do in the app), and they are
short, so after SFT the model ends some completions within the length budget and the RFT rewards differ within a
group: GRPO then has a non-zero advantage and moves the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers `rise train` on the CLI)
from app.cli import cli
from app.runtime import open_runtime
from app.services.review import submit_verdict
from app.settings import load_settings
from db.crud.projects import create_imported_annotation, create_project
from db.models import Split
from rise.synthetic import get_rule
from rise.training.pipeline import finished_stage
from tests.utils.review_factories import add_prediction, make_reviewer
from tests.utils.training import RULE, add_scene_item

HUMAN_COTS = {"circle": "Curved.", "square": "Flat sides.", "triangle": "Three tips.", "diamond": "Tilted."}
SMALL = {
    # Tiny batches and token budgets keep every stage to seconds; a high learning rate because the gradients of a
    # few steps on a random model are tiny.
    "rise_cot.max_steps": 2,
    "rise_cot.per_device_train_batch_size": 4,
    "rise_cot.num_generations": 2,
    "rise_cot.max_completion_length": 12,
    "rise_cot.reconstruction_max_new_tokens": 8,
    "rise_cot.learning_rate": 0.05,
    "sft.max_steps": 8,
    "sft.per_device_train_batch_size": 4,
    "sft.learning_rate": 0.05,
    "rft.max_steps": 2,
    "rft.per_device_train_batch_size": 4,
    "rft.num_generations": 2,
    "rft.max_completion_length": 24,
    "rft.overlong_buffer": 8,
    "rft.learning_rate": 0.05,
    "baseline_sft.max_steps": 1,
    "baseline_sft.per_device_train_batch_size": 4,
    "visual_rft.max_steps": 1,
    "visual_rft.per_device_train_batch_size": 4,
    "visual_rft.num_generations": 2,
    "visual_rft.max_completion_length": 8,
    "evaluation.max_new_tokens": 24,
}
for _stage in ("rise_cot", "sft", "rft", "baseline_sft", "visual_rft"):
    SMALL[f"{_stage}.lora_r"] = 4
    SMALL[f"{_stage}.lora_alpha"] = 8


def train_args(output_dir: Path, model: Path, *extra: str) -> list[str]:
    overrides = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    return ["train", "--project", "shapes", "--output-dir", str(output_dir), "--model", str(model), *overrides, *extra]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: ops on a model this small gain nothing from more, and on a busy machine the threads of
    several test processes spin against each other (several times the CPU time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """A database with a project of synthetic scenes, as reviewers left it; RISE_DATA_DIR points the CLI at it."""
    data_dir = tmp_path_factory.mktemp("app-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RISE_DATA_DIR", str(data_dir))
        patch.setenv("OMP_NUM_THREADS", "1")  # for the `accelerate launch` process, as `one_thread` does here
        runtime = open_runtime(load_settings(), upgrade=True)
        media = runtime.settings.media_dir
        accept = []
        with runtime.sessions.begin() as session:
            project = create_project(
                session=session, name="shapes", task_type="classification", labels=get_rule(RULE).labels
            )
            reviewer = make_reviewer(session)
            for seed in range(10):
                split = Split.eval if seed >= 8 else Split.train
                item, label = add_scene_item(session, project, media, seed, split=split)
                if seed % 2 == 0 and split is Split.train:
                    add_prediction(session, item, label, cot=HUMAN_COTS[label])  # accepted below, with its reasoning
                    accept.append(item.id)
                else:
                    create_imported_annotation(session=session, item_id=item.id, answer=label)
            reviewer_id = reviewer.id
        for item_id in accept:
            submit_verdict(runtime, user_id=reviewer_id, item_id=item_id, verdict="accept")
        runtime.close()
        yield patch


@pytest.fixture(scope="module")
def run(environment, tiny_model_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(cli, train_args(output_dir, tiny_model_dir, "--launcher", "inprocess"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return output_dir, result.output


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_rise_cot_logs_every_rollout(run):
    output_dir, _ = run
    rows = [
        json.loads(line) for path in (output_dir / "rise_cot" / "rollouts").glob("*.jsonl") for line in path.open()
    ]
    assert len(rows) == 2 * 4  # 2 steps x 4 completions (2 images x 2 generations)
    for row in rows:
        assert {"item_id", "cot", "scrubbed_cot", "leaked", "reconstruction", "accuracy", "format", "reward"} <= set(
            row
        )
    marker = finished_stage(output_dir, "rise_cot")
    assert "rise/leak_rate" in marker["last_log"] and "rise/reconstruction_accuracy" in marker["last_log"]
    assert (output_dir / "rise_cot" / "final" / "adapter_config.json").is_file()


def test_filter_selects_the_reviewer_reasonings_and_explains_the_rest(run):
    output_dir, output = run
    report = json.loads((output_dir / "filter" / "report.json").read_text())
    assert report["items"] == 8 and report["from_reviewers"] == 4
    assert report["qualified"] + report["not_qualified"] == 8
    assert sum(report["reasons"].values()) == report["not_qualified"]
    assert "items qualified" in output


def test_sft_and_rft_change_the_weights_and_save_a_new_adapter(run):
    output_dir, _ = run
    sft = adapter_weights(output_dir / "sft" / "final")
    lora_b = [name for name in sft if "lora_B" in name]
    # PEFT starts every lora_B at zero, so any non-zero entry was learned.
    assert lora_b and any(sft[name].abs().sum() > 0 for name in lora_b)
    rft = adapter_weights(output_dir / "rft" / "final")
    assert sft.keys() == rft.keys()  # RFT continued the SFT adapter
    assert any(not torch.equal(sft[name], rft[name]) for name in sft)
    assert (output_dir / "rft" / "final" / "processor_config.json").is_file()  # loads on its own


def test_new_adapter_and_base_model_are_evaluated_on_held_out_items(run, tiny_model_dir):
    output_dir, _ = run
    report = json.loads((output_dir / "evaluate" / "rise.json").read_text())
    assert report["adapter"] == str(output_dir / "rft" / "final") and report["model"] == str(tiny_model_dir)
    assert report["metrics"]["items"] == 2 and 0.0 <= report["metrics"]["accuracy"] <= 1.0
    assert json.loads((output_dir / "evaluate" / "base.json").read_text())["adapter"] is None
    predictions = (output_dir / "evaluate" / "rise.predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 2


def test_a_second_run_resumes_with_the_same_settings_and_skips_finished_stages(run, tiny_model_dir):
    output_dir, _ = run
    before = finished_stage(output_dir, "rft")["finished_at"]
    # No --model and no --set this time: the run's saved settings apply, not the defaults.
    args = ["train", "--project", "shapes", "--output-dir", str(output_dir), "--launcher", "inprocess"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("already finished, skipped") == 5
    assert "Resuming on the snapshot" in result.output
    assert finished_stage(output_dir, "rft")["finished_at"] == before
    saved = (output_dir / "config.yaml").read_text()
    assert f"model: {tiny_model_dir}" in saved and "max_steps: 2" in saved


def test_baselines_run_through_accelerate_launch(run, tiny_model_dir):
    output_dir, _ = run
    args = train_args(output_dir, tiny_model_dir, "--stage", "baselines", "--launcher", "accelerate")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for stage in ("baseline_sft", "visual_rft", "evaluate_baselines"):
        assert finished_stage(output_dir, stage) is not None, stage
    reports = finished_stage(output_dir, "evaluate_baselines")["reports"]
    assert set(reports) == {"baseline_sft", "visual_rft"}
    assert all(report["adapter"] for report in reports.values())

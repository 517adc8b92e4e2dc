"""The learning benchmark (`bench/learning.py`) in its quick form on a tiny model, so it cannot rot: every method
runs through the real pipeline and the report, table and plot are written. Scores are not checked (an untrained
tiny model scores zero); the committed results come from the full run on the demo model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.learning import METHODS, BenchSettings, main, markdown_report, rise_lead
from bench.learning_tasks import TASKS, get_task, task_records
from rise.training.config import RiseCoTConfig


def test_quick_run_trains_every_method_and_writes_the_report(tmp_path, tiny_model_dir):
    out = tmp_path / "results"
    code = main(
        ["--quick", "--model", str(tiny_model_dir), "--out", str(out), "--tasks", "odd-one-out", "--seeds", "0"]
    )
    assert code == 0
    report = json.loads((out / "learning.json").read_text())
    task = report["tasks"]["odd-one-out"]
    assert task["metric"] == "accuracy_at_iou" and "mean_iou" in task["base"]["metrics"]
    for method in METHODS[1:]:
        (run,) = task["methods"][method]
        # every method trained for its step budget and was scored on the held-out items (or says why not)
        assert run["error"] is None, run["error"]
        assert run["steps"] == BenchSettings.quick().steps and run["metrics"]["items"] == 2
        # its learning curve: a held-out score at each saved checkpoint, the last one at the full budget
        steps = [point["step"] for point in run["curve"]]
        assert steps == sorted(steps) and steps[-1] == run["steps"] and run["curve"][-1]["metrics"]["items"] == 2
    assert len(task["methods"]["rise"][0]["curve"]) == 3  # one checkpoint per RISE training stage
    assert task["methods"]["rise"][0]["filter"]["items"] == 4
    table = (out / "learning.md").read_text()
    assert "| odd-one-out | IoU > 0.5 |" in table and "| odd-one-out | mean IoU |" in table
    assert "RISE − best baseline" in table and "**odd-one-out**" in table
    assert (out / "learning.png").stat().st_size > 0


def test_a_failed_method_is_reported_not_fatal():
    report = {
        "model": "m", "command": "c", "machine": "x", "total_minutes": 1.0, "seeds": [0],
        "settings": {"n_train": 4, "n_eval": 2, "steps": 3}, "rise_stage_steps": [1, 1, 1],
        "tasks": {
            "shape": {
                "type": "classification", "metric": "accuracy", "base": {"metrics": {"accuracy": 0.5}},
                "methods": {
                    "sft": [{"metrics": {"accuracy": 0.75}, "train_seconds": 1.0}],
                    "visual_rft": [{"metrics": {"accuracy": 0.5}, "train_seconds": 2.0}],
                    "rise": [
                        {"metrics": None, "train_seconds": 1.0, "error": "ValueError: SFT has no data",
                         "filter": {"items": 4, "qualified": 0}, "rise_cot": None},
                    ],
                },
            }
        },
    }  # fmt: skip
    table = markdown_report(report)
    assert "| shape | accuracy | 0.50 | 0.75 | 0.50 | failed |" in table
    assert "SFT has no data" in table and "0/4" in table


def test_rise_lead_is_per_seed_against_the_best_baseline():
    def rows(*scores):
        return [{"seed": seed, "metrics": {"accuracy": score}} for seed, score in enumerate(scores)]

    task = {"metric": "accuracy", "methods": {"sft": rows(0.5, 0.7), "visual_rft": rows(0.4, 0.4),
                                              "rise": rows(0.6, 0.6)}}  # fmt: skip
    best, differences = rise_lead(task)
    assert best == "sft" and differences == pytest.approx([0.1, -0.1])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_items_are_fixed_by_seed_and_held_out_apart(name):
    records = task_records(TASKS[name], n_train=3, n_eval=2)
    again = task_records(TASKS[name], n_train=3, n_eval=2)
    assert [r.image for r in records] == [r.image for r in again]
    assert [r.split for r in records] == ["train"] * 3 + ["eval"] * 2
    assert len({r.image for r in records}) == 5  # no held-out image is a training image


def test_rise_reconstruction_input_reaches_the_pipeline_and_the_report(tmp_path):
    from bench.learning import pipeline_config

    settings = BenchSettings.quick().for_task(get_task("mood"))
    settings.reconstruction_input = "cot_only"
    config = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings, seed=0)
    assert config.rise_cot.reconstruction_input == "cot_only"
    with pytest.raises(SystemExit):  # argparse refuses a mode the pipeline does not have
        main(["--reconstruction-input", "pixels", "--out", str(tmp_path)])


def test_rise_split_sets_each_stages_share_of_the_budget(tmp_path):
    from bench.learning import pipeline_config, rise_split

    settings = BenchSettings(steps=480, rise_split=rise_split("1,2,3")).for_task(get_task("mood"))
    config = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings, seed=0)
    assert (config.rise_cot.max_steps, config.sft.max_steps, config.rft.max_steps) == (80, 160, 240)
    for bad in ("1,2", "1,0,3", "a,b,c"):
        with pytest.raises(SystemExit):  # argparse refuses it before anything runs
            main(["--rise-split", bad, "--out", str(tmp_path)])


def test_reading_share_and_consensus_reach_rise_stages_only(tmp_path):
    from bench.learning import pipeline_config

    mood = get_task("mood")
    config = pipeline_config(
        "model", tmp_path / "data", tmp_path / "out", BenchSettings(reading_share=0.5).for_task(mood), seed=0
    )
    assert config.sft.reading_share == 0.5 and config.baseline_sft.reading_share == 0.0
    assert config.filter.consensus  # the pipeline's default
    first_best = BenchSettings(filter_consensus=False).for_task(mood)
    assert not pipeline_config("model", tmp_path / "data", tmp_path / "out", first_best, seed=0).filter.consensus


def test_rise_cot_beta_reaches_rise_cot_only(tmp_path):
    from bench.learning import pipeline_config

    assert BenchSettings().rise_cot_beta == RiseCoTConfig.beta == 0.04  # the pipeline's default, GRPO's own
    settings = BenchSettings(rise_cot_beta=0.02).for_task(get_task("mood"))
    config = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings, seed=0)
    assert config.rise_cot.beta == 0.02
    assert config.rft.beta == config.visual_rft.beta == 0.0  # the GRPO stages with an informative reward keep theirs


def test_rise_cot_grpo_completion_reaches_rise_cot_and_the_header(tmp_path):
    from bench.learning import pipeline_config, rise_options

    settings = BenchSettings(rise_cot_grpo_completion="reconstruction").for_task(get_task("mood"))
    config = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings, seed=0)
    assert config.rise_cot.grpo_completion == "reconstruction"
    assert "trains the reconstruction" in rise_options(dataclasses.asdict(settings))
    assert "reconstruction" not in rise_options(dataclasses.asdict(BenchSettings().for_task(get_task("mood"))))


def test_each_task_brings_its_own_sft_learning_rate_unless_one_is_given(tmp_path):
    from bench.learning import pipeline_config

    def rates(settings: BenchSettings, task: str) -> tuple[float, float]:
        config = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings.for_task(get_task(task)), 0)
        return config.sft.learning_rate, config.baseline_sft.learning_rate

    assert rates(BenchSettings(), "mood") == (2e-3, 2e-3)
    assert rates(BenchSettings(), "named-object") == (5e-4, 5e-4)
    assert rates(BenchSettings(sft_learning_rate=1e-4), "mood") == (1e-4, 1e-4)
    with pytest.raises(ValueError, match="for_task"):  # no task, no rate: nothing trains at a guessed one
        pipeline_config("model", tmp_path / "data", tmp_path / "out", BenchSettings(steps=6), 0)


def test_worked_reasonings_get_room_for_their_steps_in_every_generation(tmp_path):
    from bench.learning import pipeline_config

    settings = BenchSettings().for_task(get_task("mood"))
    worked = settings.for_reasoning("worked")
    config = pipeline_config("model", tmp_path / "data", tmp_path / "out", worked, 0)
    assert (config.rise_cot.max_completion_length, config.rft.max_completion_length) == (112, 112)
    assert config.evaluation.max_new_tokens == 128
    # the longest worked reasoning the mood rule writes (four objects), tags and answer included, would run into RFT's
    # soft overlong penalty at the default limits and stays clear of it at the worked ones
    from transformers import AutoTokenizer

    from bench.learning import DEFAULT_MODEL

    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    longest = max(
        len(tokenizer(f"<think>{item.cot}</think><answer>{item.answer}</answer>").input_ids)
        for item in task_records(get_task("mood"), 200, 0, reasoning="worked")
    )
    default = pipeline_config("model", tmp_path / "data", tmp_path / "out", settings, 0)
    assert default.rft.max_completion_length - default.rft.overlong_buffer < longest
    assert longest <= config.rft.max_completion_length - config.rft.overlong_buffer
    assert settings.for_reasoning("caption") == settings == settings.for_reasoning(None)
    quick = BenchSettings.quick()
    assert quick.for_reasoning("worked").max_completion_length == quick.max_completion_length  # stays a quick check

"""The reasoning-ceiling diagnostic (`bench/reasoning_ceiling.py`) in its quick form on a tiny model: both ways of
fine-tuning run through the real pipeline on exact captions, and the report, table and plot are written. Scores are
not checked (an untrained tiny model learns nothing in two steps); the committed results come from the full run."""

from __future__ import annotations

import json
import math
import re

from bench.learning_tasks import get_task, task_records
from bench.reasoning_ceiling import main
from rise.synthetic.vocabulary import NUMBER_WORDS


def test_every_training_item_carries_its_exact_caption_and_held_out_items_none():
    records = task_records(get_task("mood"), 3, 2, reasoning="caption")
    assert [r.cot is not None for r in records] == [True, True, True, False, False]
    assert records[0].cot.startswith("There ") and "objects" in records[0].cot or "object" in records[0].cot


def test_worked_reasoning_writes_the_rules_steps_into_the_caption():
    mood = get_task("mood")
    captions = task_records(mood, 6, 0, reasoning="caption")
    worked = task_records(mood, 6, 0, reasoning="worked")
    for plain, with_working in zip(captions, worked, strict=True):
        # every object sentence ends on its colour family and that family's count so far, then come the totals
        counts = re.search(r"Warm (\w+), cool (\w+)\.$", with_working.cot)
        assert re.sub(r": (warm|cool) \w+\.", ".", with_working.cot) == f"{plain.cot} {counts.group()}"
        warm, cool = (NUMBER_WORDS.index(word) for word in counts.groups())
        assert warm == with_working.cot.count(": warm ") and cool == with_working.cot.count(": cool ")
        assert warm + cool == len(re.findall(r"\. An? ", plain.cot))  # one per object sentence
        assert with_working.answer == ("sunny" if warm > cool else "stormy" if cool > warm else "balanced")
    # the odd one out's working names the object whose box is the answer
    for record in task_records(get_task("odd-one-out"), 4, 0, reasoning="worked"):
        assert record.cot.startswith("There are ") and record.cot.endswith(" differs from the others.")
    # a rule with nothing to work out keeps the caption alone
    shape = get_task("shape")
    assert [r.cot for r in task_records(shape, 3, 0, reasoning="worked")] == [
        r.cot for r in task_records(shape, 3, 0, reasoning="caption")
    ]


def test_quick_run_trains_lora_and_full_on_exact_reasoning_and_writes_the_report(tmp_path, tiny_model_dir):
    out = tmp_path / "results"
    assert main(["--quick", "--model", str(tiny_model_dir), "--out", str(out), "--task", "shape"]) == 0
    report = json.loads((out / "reasoning_ceiling.json").read_text())
    assert report["uninformed_cross_entropy"] == math.log(4) and set(report["methods"]) == {"lora", "full"}
    for result in report["methods"].values():
        assert result["curve"] and result["curve"][-1]["step"] == 2
        assert result["train_items"]["cross_entropy"] > 0 and 0 <= result["train_items"]["accuracy"] <= 1
    table = (out / "reasoning_ceiling.md").read_text()
    assert "| lora |" in table and "| full |" in table and "| base |" in table
    assert (out / "reasoning_ceiling.png").stat().st_size > 0


def test_quick_run_on_a_box_task_scores_boxes_and_skips_the_label_cross_entropy(tmp_path, tiny_model_dir):
    out = tmp_path / "results"
    argv = ["--quick", "--model", str(tiny_model_dir), "--out", str(out), "--task", "odd-one-out"]
    assert main([*argv, "--reasoning", "worked", "--methods", "full"]) == 0
    report = json.loads((out / "reasoning_ceiling.json").read_text())
    assert report["metric"] == "accuracy_at_iou" and report["base_train_items"] is None
    (result,) = report["methods"].values()
    assert result["train_items"] is None and 0 <= result["curve"][-1]["accuracy"] <= 1
    table = (out / "reasoning_ceiling.md").read_text()
    assert "share of boxes at IoU > 0.5" in table and "| full |" in table and "| base |" not in table

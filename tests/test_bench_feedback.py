"""The feedback-loop benchmark (`bench/feedback_loop.py`) in its quick form on a tiny model, so it cannot rot: the
simulated reviewer gives verdicts through the review service, the worker retrains and registers a version, SFT on
the labels is scored beside it, and the report, table and plot are written."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import yaml

from bench.feedback_loop import SimulatedReviewer, SimulatedVerdict, main, verdicts_to_reach
from bench.learning_tasks import TASKS
from rise.training.records import load_snapshot


def test_quick_loop_reviews_retrains_and_reports(tmp_path, tiny_model_dir):
    out = tmp_path / "results"
    work = tmp_path / "w"
    options = ["--quick", "--model", str(tiny_model_dir), "--out", str(out), "--work", str(work), "--seeds", "0,1"]
    assert main([*options, "--reasons", "all", "--written-reasoning-steps", "2", "--rise-cot-beta", "0.02"]) == 0
    report = json.loads((out / "feedback_loop.json").read_text())
    (row,) = report["rounds"]
    counts = row["verdict_counts"]
    assert row["verdicts"] == 4 and counts["accept"] + counts["correct"] + counts["reject"] == 4
    # every answer the reviewer gave came with its reasoning, and RISE's snapshot has them as reviewed reasoning
    assert counts["reasoned"] == counts["accept"] + counts["correct"] > 0
    [job] = (work / "data" / "jobs").iterdir()
    cots = [cot for cot in load_snapshot(job / "data").train["cot"] if cot]
    assert len(cots) == counts["reasoned"] and all(re.search(r"Warm \w+, cool \w+\.$", cot) for cot in cots)
    # RISE-CoT learnt those written reasonings before its GRPO
    [marker] = job.rglob("rise_cot/stage.json")
    stage = json.loads(marker.read_text())
    assert stage["written_reasonings"] == counts["reasoned"] and stage["judge_read_written"]
    # ... and trained with the KL term against its start (TRL computes it against the adapter-disabled model)
    [job_config] = job.rglob("config.yaml")
    assert yaml.safe_load(job_config.read_text())["rise_cot"]["beta"] == 0.02
    assert "kl" in stage["last_log"]
    assert "error" not in row and row["rise"]["items"] == report["held_out"] > 0  # the worker registered a version
    assert row["sft"]["items"] == report["held_out"]  # the baseline is scored on the same held-out items
    # every score is the mean over both training seeds: the worker's job is seed 0, seed 1 retrains on its snapshot
    for metrics in (row["rise"], row["sft"], *report["oracles"].values()):
        assert len(metrics["seeds"]) == 2 and metrics["accuracy"] == pytest.approx(sum(metrics["seeds"]) / 2)
    assert (work / "round-1" / "rise-seed-1" / "evaluate" / "rise.json").is_file()
    # the oracles too, trained on every training item's ground truth; the better one is the target
    assert {key: o["items"] for key, o in report["oracles"].items()} == {
        "sft": report["held_out"],
        "rise": report["held_out"],
    }
    assert report["oracle"]["method"] in ("sft", "rise")
    assert report["oracle"]["accuracy"] == max(o["accuracy"] for o in report["oracles"].values())
    table = (out / "feedback_loop.md").read_text()
    assert (
        "| 1 | 4 |" in table
        and "Oracle (the ground truth of every training item, same steps; the better of SFT" in table
        and "RISE-CoT trains 2 steps on the reasonings the reviewer wrote and to reconstruct" in table
        and "RISE's options: filter ties broken by consensus; RISE-CoT's KL coefficient 0.02." in table
    )
    assert (out / "feedback_loop.png").stat().st_size > 0


def test_verdicts_to_reach_is_the_first_round_at_the_target():
    report = {"task": "mood", "rounds": [
        {"verdicts": 32, "rise": {"accuracy": 0.5}}, {"verdicts": 64, "rise": {"accuracy": 0.8}},
        {"verdicts": 96, "rise": None},
    ]}  # fmt: skip
    assert verdicts_to_reach(report, "rise", 0.75) == 64
    assert verdicts_to_reach(report, "rise", 0.9) is None


class TestSimulatedReviewer:
    def _task(self, answer):
        return SimpleNamespace(answer=answer)

    def test_right_answer_is_accepted(self):
        reviewer = SimulatedReviewer(TASKS["mood"], {"a.png": "sunny"}, reject_share=1.0, seed=0)
        assert reviewer.verdict(self._task("sunny"), "a.png") == SimulatedVerdict("accept")

    def test_wrong_answer_is_corrected_or_rejected(self):
        correcting = SimulatedReviewer(TASKS["mood"], {"a.png": "sunny"}, reject_share=0.0, seed=0)
        assert correcting.verdict(self._task("stormy"), "a.png") == SimulatedVerdict("correct", "sunny")
        # an unreadable prediction
        assert correcting.verdict(self._task(None), "a.png") == SimulatedVerdict("correct", "sunny")
        rejecting = SimulatedReviewer(TASKS["mood"], {"a.png": "sunny"}, reject_share=1.0, seed=0)
        assert rejecting.verdict(self._task("stormy"), "a.png") == SimulatedVerdict("reject")

    def test_a_box_counts_as_right_from_iou_one_half(self):
        reviewer = SimulatedReviewer(TASKS["named-object"], {"a.png": [0, 0, 10, 10]}, reject_share=0.0, seed=0)
        assert reviewer.verdict(self._task([0, 0, 10, 8]), "a.png").kind == "accept"
        assert reviewer.verdict(self._task([5, 5, 15, 15]), "a.png") == SimulatedVerdict("correct", [0, 0, 10, 10])

    @pytest.mark.parametrize(
        ("reasons", "on_accept", "on_correct"),
        [("none", None, None), ("corrections", None, "why"), ("all", "why", "why")],
    )
    def test_the_reasons_policy_says_which_answers_come_with_the_reasoning(self, reasons, on_accept, on_correct):
        truths, reasonings = {"a.png": "sunny"}, {"a.png": "why"}
        reviewer = SimulatedReviewer(
            TASKS["mood"], truths, reject_share=0.0, seed=0, reasons=reasons, reasonings=reasonings
        )
        assert reviewer.verdict(self._task("sunny"), "a.png") == SimulatedVerdict("accept", reasoning=on_accept)
        assert reviewer.verdict(self._task("stormy"), "a.png") == SimulatedVerdict("correct", "sunny", on_correct)
        rejecting = SimulatedReviewer(TASKS["mood"], truths, 1.0, 0, reasons=reasons, reasonings=reasonings)
        assert rejecting.verdict(self._task("stormy"), "a.png") == SimulatedVerdict("reject")  # nothing to explain

    def test_a_policy_that_writes_reasons_needs_them(self):
        with pytest.raises(ValueError, match="needs the scenes' reasonings"):
            SimulatedReviewer(TASKS["mood"], {}, reject_share=0.0, seed=0, reasons="all")
        with pytest.raises(ValueError, match="Unknown reasons policy"):
            SimulatedReviewer(TASKS["mood"], {}, reject_share=0.0, seed=0, reasons="some")

"""The RISE-CoT reward with a deterministic judge in place of the model: the leakage penalty fires on a reasoning
that names the label, and the reward rises when the reasoning carries the evidence."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from PIL import Image

from rise.tasks import TaskSpec
from rise.training.reconstruction import ReconstructionRequest, ReconstructionReward, RolloutLog, read_rollouts

SPEC = TaskSpec("classification", labels=("circle", "square", "triangle"))
EVIDENCE = {"round": "circle", "curved": "circle", "four equal sides": "square", "three corners": "triangle"}
IMAGE = Image.new("RGB", (64, 64), "white")


class EvidenceJudge:
    """Reads the reasoning like a careful annotator: names the label its evidence points to, else guesses the first
    label. It sees exactly what the reward hands it, so what reaches it (scrubbed or not) decides the reward."""

    def __init__(self) -> None:
        self.requests: list[ReconstructionRequest] = []

    def __call__(self, requests: Sequence[ReconstructionRequest]) -> list[str]:
        self.requests.extend(requests)
        answers = []
        for request in requests:
            text = request.cot.lower()
            named = [label for label in SPEC.labels if label in text]  # a leak that escaped scrubbing would land here
            found = named or [label for phrase, label in EVIDENCE.items() if phrase in text]
            answers.append(f"<answer>{found[0] if found else SPEC.labels[1]}</answer>")
        return answers


def completions(*cots: str) -> list[list[dict]]:
    return [[{"role": "assistant", "content": f"<think>{cot}</think>"}] for cot in cots]


def call(reward: ReconstructionReward, cots: list[str], gold: str = "circle", **extra) -> list[float | None]:
    n = len(cots)
    columns = {"image": [IMAGE] * n, "item_id": list(range(n)), "query": [None] * n, **extra}
    return reward(completions(*cots), solution=[json.dumps(gold)] * n, **columns)


class TestReconstructionReward:
    def test_leaking_reasoning_is_penalised_even_when_the_evidence_survives(self):
        judge = EvidenceJudge()
        reward = ReconstructionReward(SPEC, reconstruct=judge)
        clean, leaky = call(reward, ["The outline is round.", "It is a circle. The outline is round."])
        assert clean == 2.0  # acc 1 + format 1
        assert leaky == pytest.approx(0.1 * 1.0 + 1.0)  # the scrubbed evidence still reconstructs, scaled by 0.1
        # The label never reached the judge: scrubbing dropped the sentence that named it.
        assert "circle" not in judge.requests[1].cot.lower() and "round" in judge.requests[1].cot

    def test_reward_rises_when_the_reasoning_carries_the_evidence(self):
        reward = ReconstructionReward(SPEC, reconstruct=EvidenceJudge())
        vague, evidence = call(reward, ["There is a shape in the picture.", "Its edge is curved all the way round."])
        assert vague == 1.0  # the judge guesses "square": wrong, but well formed
        assert evidence == 2.0
        assert evidence > vague

    def test_leak_factor_is_configurable(self):
        reward = ReconstructionReward(SPEC, reconstruct=EvidenceJudge(), leak_factor=0.5)
        assert call(reward, ["A circle. Round outline."]) == [1.5]

    def test_cot_only_keeps_the_image_from_the_judge(self):
        judge = EvidenceJudge()
        call(ReconstructionReward(SPEC, reconstruct=judge, reconstruction_input="cot_only"), ["Round."])
        assert judge.requests[0].image is None
        judge = EvidenceJudge()
        call(ReconstructionReward(SPEC, reconstruct=judge), ["Round."])
        assert judge.requests[0].image is IMAGE

    def test_information_gain_subtracts_what_an_empty_reasoning_already_gets(self):
        judge = EvidenceJudge()
        reward = ReconstructionReward(SPEC, reconstruct=judge, reconstruction_input="information_gain")
        # Gold "square": the judge's blind guess is already right, so reasoning adds nothing there.
        square = call(reward, ["Four equal sides.", "Nothing to say."], gold="square")
        assert square == [1.0, 1.0]  # gain 0 + format 1 for both
        circle = call(reward, ["A round outline.", "Nothing to say."], gold="circle")
        assert circle == [2.0, 1.0]  # gain 1 for the evidence, 0 without it
        empty = [r for r in judge.requests if r.cot == ""]
        assert len(empty) == 4  # one empty-reasoning reconstruction per distinct item and call, not per completion

    def test_reward_parts_reach_the_logs_and_the_rollout_file(self, tmp_path):
        metrics: dict[str, float] = {}
        log = RolloutLog(tmp_path / "rollouts" / "rank-00000.jsonl")
        reward = ReconstructionReward(SPEC, reconstruct=EvidenceJudge(), rollout_log=log)
        call(reward, ["Round.", "A circle, round."], log_metric=metrics.__setitem__)
        # The leaking sentence goes whole, evidence and all, so only the clean reasoning reconstructs.
        assert metrics["rise/leak_rate"] == 0.5 and metrics["rise/reconstruction_accuracy"] == 0.5
        rows = list(read_rollouts(tmp_path / "rollouts"))
        assert [r["leaked"] for r in rows] == [False, True]
        assert rows[1]["cot"] == "A circle, round." and rows[1]["scrubbed_cot"] == ""
        assert rows[0]["reconstructed_answer"] == "circle" and rows[0]["item_id"] == 0

    def test_invalid_gold_answer_is_skipped_not_crashed(self):
        reward = ReconstructionReward(SPEC, reconstruct=EvidenceJudge())
        assert call(reward, ["Round."], gold="hexagon") == [None]

    def test_torn_rollout_line_is_skipped(self, tmp_path):
        (tmp_path / "rank-00000.jsonl").write_text('{"item_id": 1, "cot": "a"}\n{"item_id": 2, "co')
        assert [r["item_id"] for r in read_rollouts(tmp_path)] == [1]

    def test_bad_settings_are_refused(self):
        with pytest.raises(ValueError, match="leak_factor"):
            ReconstructionReward(SPEC, reconstruct=EvidenceJudge(), leak_factor=2.0)
        with pytest.raises(ValueError, match="cot_only"):
            ReconstructionReward(SPEC, reconstruct=EvidenceJudge(), reconstruction_input="text")


class TestBoxReconstruction:
    SPEC = TaskSpec("grounding")  # the model writes Qwen2-VL's 0..1000 coordinates; answers are stored in pixels

    @staticmethod
    def judge(requests: Sequence[ReconstructionRequest]) -> list[str]:
        # Words to a box: "top left" is the top-left quarter, anything else the bottom-right one.
        return [
            "<answer>[0, 0, 500, 500]</answer>" if "top left" in r.cot else "<answer>[500, 500, 1000, 1000]</answer>"
            for r in requests
        ]

    def test_coordinates_in_the_reasoning_leak_and_words_reconstruct_the_box(self):
        reward = ReconstructionReward(self.SPEC, reconstruct=self.judge)
        completions_ = completions("The red square in the top left.", "The red square at (0, 0) in the top left.")
        rewards = reward(
            completions_,
            solution=["[0, 0, 32, 32]"] * 2,
            width=[64, 64],
            height=[64, 64],
            query=["the red square"] * 2,
            item_id=[1, 1],
        )
        assert rewards == [2.0, pytest.approx(1.1)]  # IoU 1 + format; the leaking one scaled by 0.1

"""bench/rollout_drift.py: per block of RISE-CoT steps, how often a mood rollout's description implies its trusted
label and how often the judge passed it, read off logged rollouts written from the scenes' exact captions."""

from __future__ import annotations

import json

from bench.learning_tasks import exact_reasoning, get_task
from bench.reasoning_use import mood_of_reasoning
from bench.rollout_drift import main, rollout_drift


def rollout(step: int, cot: str, label: str, accuracy: float) -> str:
    # the pipeline logs the trusted annotation as its JSON text
    return json.dumps({"step": step, "cot": cot, "answer": json.dumps(label), "accuracy": accuracy, "item_id": 0})


def a_wrong_label(cot: str) -> str:
    return next(label for label in get_task("mood").spec.labels if label != mood_of_reasoning(cot))


def test_blocks_count_descriptions_that_imply_the_label_and_judge_passes(tmp_path, capsys):
    task = get_task("mood")
    captions = [exact_reasoning(task.make_item(seed), "caption") for seed in range(8)]
    rows = [rollout(step, cot, mood_of_reasoning(cot), 1.0) for step, cot in enumerate(captions[:4])]  # steps 0-3
    # steps 4-7: two descriptions that now imply another label than the trusted one, one judge pass
    rows += [rollout(4 + i, cot, a_wrong_label(cot) if i < 2 else mood_of_reasoning(cot), float(i == 3))
             for i, cot in enumerate(captions[4:])]  # fmt: skip
    stage = tmp_path / "run" / "rise_cot" / "rollouts"
    stage.mkdir(parents=True)
    (stage / "rank-00000.jsonl").write_text("\n".join(rows) + "\n")

    blocks = rollout_drift(tmp_path / "run", block=4)

    counts = [(b.first_step, b.rollouts, b.implies_label, b.judge_passed) for b in blocks]
    assert counts == [(0, 4, 4, 4), (4, 4, 2, 1)]
    assert main([str(tmp_path / "run"), "--block", "4", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| 0–3 | 4 | 1.00 | 1.00 |" in printed and "| 4–7 | 4 | 0.50 | 0.25 |" in printed
    assert json.loads((tmp_path / "out" / "rollout_drift.json").read_text())[1]["implies_label"] == 2
    assert main([str(tmp_path / "nothing")]) == 2

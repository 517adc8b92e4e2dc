"""bench/judge_reading.py: how often RISE-CoT's judge passes rollouts whose working follows their own description,
against the rest, read off logged rollouts written with the mood rule's own working."""

from __future__ import annotations

import json

from bench.judge_reading import judge_reading, main
from bench.learning_tasks import exact_reasoning, get_task
from bench.reasoning_use import working_follows_description


def rollout(cot: str, accuracy: float) -> str:
    return json.dumps({"cot": cot, "accuracy": accuracy, "item_id": 0})


def test_the_rules_own_working_follows_and_a_wrong_step_does_not():
    item = get_task("mood").make_item(3)
    worked = exact_reasoning(item, "worked")
    assert working_follows_description(worked)
    flipped = (
        worked.replace(": warm one.", ": cool one.", 1)
        if ": warm one." in worked
        else (worked.replace(": cool one.", ": warm one.", 1))
    )
    assert flipped != worked and not working_follows_description(flipped)
    assert not working_follows_description(exact_reasoning(item, "caption"))  # a description alone has no working


def test_pass_rates_are_counted_apart(tmp_path, capsys):
    task = get_task("mood")
    workings = [exact_reasoning(task.make_item(seed), "worked") for seed in range(40)]
    workings = [w for w in workings if ": warm one." in w][:6]  # a warm object's step to get wrong
    rows = []
    for index, worked in enumerate(workings):
        wrong = worked.replace(": warm one.", ": cool one.", 1)
        rows += [rollout(worked, 1.0 if index < 4 else 0.0), rollout(wrong, 1.0 if index < 1 else 0.0)]
    stage = tmp_path / "run" / "rise_cot" / "rollouts"
    stage.mkdir(parents=True)
    (stage / "rank-00000.jsonl").write_text("\n".join(rows) + "\n")

    reading = judge_reading(tmp_path / "run")

    assert (reading.rollouts, reading.following, reading.following_passed, reading.others_passed) == (12, 6, 4, 1)
    assert main([str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    assert "| 12 | 6 | 0.67 | 0.17 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "judge_reading.json").read_text())[0]["following_passed"] == 4
    assert main([str(tmp_path / "nothing")]) == 2

"""bench/reasoning_use.py: what a reasoning implies (its description, its working) and what the answer follows,
read off predictions written with the mood rule's own working."""

from __future__ import annotations

import json

import pytest

from bench.learning_tasks import exact_reasoning, get_task
from bench.reasoning_use import main, mood_of_reasoning, read_working, reasoning_use
from rise.synthetic import caption, generate_scene, get_rule


def test_the_mood_read_off_an_exact_caption_is_the_rules_label():
    rule = get_rule("mood")
    for seed in range(40):
        scene = generate_scene(seed, rule.scene_config())
        assert mood_of_reasoning(caption(scene)) == rule.label(scene)


@pytest.mark.parametrize(
    ("reasoning", "mood"),
    [
        ("A small red square. A large blue circle. A large orange circle.", "sunny"),
        ("A small purple square. A large green circle.", "stormy"),
        ("A small yellow square. A large blue circle.", "balanced"),
        ("There are two objects.", None),
    ],
)
def test_a_reasonings_mood_counts_its_colour_words(reasoning, mood):
    assert mood_of_reasoning(reasoning) == mood


def test_the_rules_own_working_is_read_back_as_its_counts():
    task = get_task("mood")
    for seed in range(20):
        item = task.make_item(seed)
        warm, cool = read_working(exact_reasoning(item, "worked"))
        assert (warm > cool, cool > warm) == (item.answer == "sunny", item.answer == "stormy")
    assert read_working("There are two objects.") is None
    assert read_working("Warm many, cool one.") is None


def prediction(reasoning: str, answer: str, gold: str) -> str:
    raw = f"<think>{reasoning}</think><answer>{answer}</answer>"
    return json.dumps({"item_id": 0, "gold": gold, "answer": answer, "raw_text": raw})


def test_the_rules_own_steps_follow_its_description(tmp_path):
    task = get_task("mood")
    rows = []
    for seed in range(20):
        item = task.make_item(seed)
        rows.append(prediction(exact_reasoning(item, "worked"), item.answer, item.answer))
    path = tmp_path / "rule.predictions.jsonl"
    path.write_text("\n".join(rows) + "\n")

    use = reasoning_use(path)

    assert use.items == use.right == use.description_implies_gold == use.with_steps == 20
    assert use.steps_follow_description == use.working_matches_description == use.answer_follows_working == 20


def test_counts_say_which_part_of_the_reasoning_the_answer_follows(tmp_path, capsys):
    description = "There are three objects. A small red square at the top. A large blue circle on the left."
    steps = f"{description[:-1]}: warm one. A large orange circle on the right: warm two."
    rows = [
        # the model's own working: right, and the answer follows it
        prediction(f"{description} A large orange circle on the right. Warm two, cool one.", "sunny", "sunny"),
        # a working that miscounts its own description; the answer follows the working, not the description
        prediction(f"{description} A large orange circle on the right. Warm one, cool one.", "balanced", "sunny"),
        # no working: only the description can be followed, and the answer does not
        prediction(f"{description} A large orange circle on the right.", "stormy", "sunny"),
        # steps that give blue the warm family: they do not follow the description, whatever the totals say
        prediction(f"{steps} Warm two, cool no.", "sunny", "sunny"),
    ]
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "rise.predictions.jsonl").write_text("\n".join(rows) + "\n")

    use = reasoning_use(run)

    assert (use.items, use.right, use.with_working) == (4, 2, 3)
    assert (use.description_implies_gold, use.answer_follows_description) == (4, 2)
    assert (use.with_steps, use.steps_follow_description) == (1, 0)
    assert (use.working_matches_description, use.working_implies_gold, use.answer_follows_working) == (1, 2, 3)
    assert main([str(run), "--out", str(tmp_path / "out")]) == 0
    assert "| 4 | 2 | 4 | 2 | 1 | 0 | 3 | 1 | 2 | 3 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "reasoning_use.json").read_text())[0]["answer_follows_working"] == 3
    assert main([str(tmp_path / "nothing-here")]) == 2

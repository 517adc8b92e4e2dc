"""The odd-one-out reading (`bench/odd_one_out_use.py`): each count read off hand-written reasonings against a real
held-out scene, and the quick run through real evaluation on a tiny model."""

from __future__ import annotations

import json

import pytest

from bench.learning_tasks import get_task, item_seed
from bench.odd_one_out_use import OddOneOutUse, main
from rise.synthetic import ODD_ONE_OUT_QUERY, caption, naming_sentence, odd_one_out_working


def held_out_item(item_id: int = 200):
    item = get_task("odd-one-out").make_item(item_seed(item_id, held_out=True))
    (odd,) = [i for i, obj in enumerate(item.scene.objects) if obj.box == item.answer]
    return item, odd


def test_the_rules_own_working_and_the_right_box_count_everywhere():
    item, odd = held_out_item()
    use = OddOneOutUse(model="rule")
    use.add(odd_one_out_working(item.scene), item.answer, item.scene)
    others = len(item.scene.objects) - 1
    assert (use.right, use.description_exact, use.odd_seen, use.others_seen, use.others) == (1, 1, 1, others, others)
    assert (use.description_singles_it_out, use.with_steps, use.steps_follow_description) == (1, 1, 1)
    assert (use.names_one, use.named_right, use.naming_follows_description) == (1, 1, 1)
    assert (use.box_on_named, use.right_when_named_right) == (1, 1)


def test_a_caption_that_names_the_querys_object_counts_as_naming_it():
    item, odd = held_out_item()
    use = OddOneOutUse(model="names")
    named = f"{caption(item.scene)} {naming_sentence(item.scene.objects[odd], ODD_ONE_OUT_QUERY)}"
    use.add(named, item.answer, item.scene)
    assert (use.with_steps, use.names_one, use.named_right, use.naming_follows_description) == (0, 1, 1, 1)
    assert (use.right, use.right_when_named_right) == (1, 1)


def test_a_description_that_repeats_the_others_kind_misses_the_odd_one_and_its_box():
    item, odd = held_out_item()
    scene = item.scene
    twin = next(obj for i, obj in enumerate(scene.objects) if i != odd)
    # the odd object described as one more of the others; the steps follow that description and name nothing odd
    wrong = caption(scene).replace(
        f"{scene.objects[odd].colour} {scene.objects[odd].shape}", f"{twin.colour} {twin.shape}"
    )
    use = OddOneOutUse(model="repeats")
    use.add(wrong, twin.box, scene)
    assert (use.description_exact, use.odd_seen, use.description_singles_it_out) == (0, 0, 0)
    assert (use.with_steps, use.names_one, use.named_right, use.right, use.box_on_named) == (0, 0, 0, 0, 0)
    # a step whose count does not follow its sentence, and a name of the right kind with the box elsewhere
    steps = odd_one_out_working(scene).replace(" one.", " two.", 1)
    use.add(steps, twin.box, scene)
    assert (use.with_steps, use.steps_follow_description, use.named_right, use.right_when_named_right) == (1, 0, 1, 0)


def test_quick_run_annotates_held_out_items_and_writes_the_table(tmp_path, tiny_model_dir):
    out = tmp_path / "use"
    assert main(["--quick", str(tiny_model_dir), "--out", str(out)]) == 0
    (use,) = json.loads((out / "odd_one_out_use.json").read_text())
    assert use["items"] == 2 and use["model"] == str(tiny_model_dir)
    assert "| right when named right |" in (out / "odd_one_out_use.md").read_text()
    assert main([str(tmp_path), "--out", str(out)]) == 2  # not a model folder


def test_written_predictions_and_rise_cot_rollouts_are_read_without_a_model(tmp_path):
    item, _ = held_out_item()
    predictions = tmp_path / "rise.predictions.jsonl"
    raw = f"<think>{odd_one_out_working(item.scene)}</think><answer>[0, 0, 1, 1]</answer>"
    predictions.write_text(json.dumps({"item_id": 200, "raw_text": raw, "answer": item.answer}) + "\n")
    # RISE-CoT was given training item 0's box; one reasoning names the object there, one another object
    train = get_task("odd-one-out").make_item(item_seed(0, held_out=False))
    (odd,) = [obj for obj in train.scene.objects if list(obj.box) == list(train.answer)]
    other = next(obj for obj in train.scene.objects if (obj.colour, obj.shape) != (odd.colour, odd.shape))
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    rows = [
        {"item_id": 0, "cot": f"{caption(train.scene)} {naming_sentence(target, ODD_ONE_OUT_QUERY)}"}
        for target in (odd, other)
    ]
    (rollouts / "rank-00000.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "use"
    assert main(["--predictions", str(predictions), "--rollouts", str(rollouts), "--out", str(out)]) == 0
    written, sampled = json.loads((out / "odd_one_out_use.json").read_text())
    assert (written["items"], written["right"], written["named_right"], written["with_steps"]) == (1, 1, 1, 1)
    assert (sampled["items"], sampled["names_one"], sampled["named_right"]) == (2, 2, 1)
    assert sampled["model"].endswith("(RISE-CoT, box given)")
    with pytest.raises(SystemExit):
        main(["--out", str(out)])  # nothing to read

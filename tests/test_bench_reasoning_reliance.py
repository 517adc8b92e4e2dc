"""bench/reasoning_reliance.py: the swap test's bookkeeping on a real tiny model."""

from __future__ import annotations

import json

from bench.learning_tasks import get_task, item_seed, task_records
from bench.reasoning_reliance import main
from rise.training.records import write_snapshot


def test_swap_test_counts_every_held_out_item_with_a_reasoning(tmp_path, tiny_model_dir):
    task = get_task("mood")
    records = task_records(task, n_train=2, n_eval=8)
    data = write_snapshot(tmp_path / "data", task.spec, records)
    # A finished "RISE run": its SFT stage left the tiny model, and it predicted "sunny" for every item.
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "stage.json").write_text(json.dumps({"stage": "sft", "model": str(tiny_model_dir)}))
    (run / "evaluate").mkdir()
    held_out = [record for record in records if record.split == "eval"]
    rows = []
    for record in held_out:  # the held-out item's own exact caption as the reasoning (same seed as task_records)
        reasoning = task.make_item(item_seed(record.item_id, held_out=True)).caption
        rows.append({"item_id": record.item_id, "answer": "sunny", "raw_text": f"<think>{reasoning}</think>"})
    (run / "evaluate" / "rise.predictions.jsonl").write_text("\n".join(map(json.dumps, rows)))
    golds = [record.answer for record in held_out]
    assert len(set(golds)) > 1  # so every item has a reasoning of another mood to swap in

    assert main(["--data", str(data), "--runs", str(run), "--out", str(tmp_path / "out")]) == 0
    [result] = json.loads((tmp_path / "out" / "reasoning_reliance.json").read_text())["runs"]
    assert result["items"] == result["swapped"] == len(held_out)
    assert result["reasoning_implies_gold"] == len(held_out)  # exact captions imply the true mood
    assert result["generated_follows_reasoning"] == golds.count("sunny")
    assert 0 <= result["swapped_follows_swapped_reasoning"] + result["swapped_stays_with_gold"] <= len(held_out)
    assert 0 <= result["blank_image_follows"] <= len(held_out)
    assert "swapped: answer follows the swapped reasoning" in (tmp_path / "out" / "reasoning_reliance.md").read_text()


def test_a_snapshot_of_another_task_is_refused(tmp_path, capsys):
    task = get_task("shape")
    data = write_snapshot(tmp_path / "data", task.spec, task_records(task, n_train=1, n_eval=1))
    assert main(["--data", str(data), "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "not mood's" in capsys.readouterr().err

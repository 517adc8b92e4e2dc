"""The recall-learning benchmark (`bench/recall_learning.py`) in a short run: a fresh model of the demo model's size
trains on recall questions and is scored on held-out ones at each checkpoint. Scores are not checked (twenty steps
teach nothing); the committed results come from the full run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.recall_learning import answer_count, held_out_questions, main
from rise.demo_model.label_lists import is_held_out


def test_held_out_questions_use_held_out_names_and_a_lookup_chance_of_one_over_the_keys():
    lookups = held_out_questions("lookup", 30, seed=1)
    assert all(is_held_out(answer) for _, answer in lookups)
    assert {answer_count(prompt) for prompt, _ in lookups} == {2, 3, 4}
    assert lookups == held_out_questions("lookup", 30, seed=1) != held_out_questions("repeat", 30, seed=1)


def test_short_run_writes_a_curve_of_both_scores(tmp_path):
    out = tmp_path / "results"
    assert main(["--steps", "20", "--checkpoints", "2", "--items", "4", "--out", str(out)]) == 0
    result = json.loads((out / "recall_learning.json").read_text())
    assert [point["step"] for point in result["curve"]] == [0, 10, 20]
    assert all(0 <= point[kind] <= 1 for point in result["curve"] for kind in ("repeat", "lookup"))
    assert 1 / 4 <= result["lookup_chance"] <= 1 / 2 and np.isfinite(result["curve"][-1]["loss"])
    assert result["config"]["hidden_size"] == 128 and result["training"]["steps"] == 20
    table = (out / "recall_learning.md").read_text()
    assert "| 20 |" in table and "--steps 20" in table


def test_sizes_cannot_be_given_for_a_model_that_already_has_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--model", "assets/demo-model", "--layers", "2", "--out", str(tmp_path)])
    assert stopped.value.code == 2 and "--model keeps the sizes" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

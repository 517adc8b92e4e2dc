"""Held-out label-list metrics: does the model answer a classification prompt from the list it is given?

Every question uses label names from the held-out share of the pools (`rise.demo_model.label_lists.is_held_out`),
so no label set was seen in training:

- `attribute` / `defined` / `undefined`: the three kinds of `rise.demo_model.label_lists` (greedy): the share of
  answers that are one of the listed labels (`in_list`) and, where the image or the definitions fix it, `accuracy`;
  `defined` also per attribute the labels are defined by (`by_attribute`: colour, shape, size, position, count),
  since one lookup the model has not learnt hides in the mean;
- `mood`: the demo's mood project (sunny / stormy / balanced by colour family, a rule the model was never taught):
  `in_list`, `accuracy` and the share of the most frequent answer (`top_share`), greedy and sampled at temperature 1,
  which is how RISE's rollouts are drawn;
- `shape`: a lone object's shape with the labels circle / square / triangle / diamond, the detection prompt's own
  list: `in_list` and `accuracy`.

By default the answers are decoded as the app decodes them, from the listed labels only (`rise.label_constraint`);
`constrain_labels=False` measures what the model writes unaided.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from rise.annotate import GenerationSettings
from rise.demo_model.label_lists import ATTRIBUTES, KINDS, defined_attribute, label_list_task
from rise.demo_model.metrics import answer_questions
from rise.synthetic import Scene, SceneConfig, generate_scene_for_rule, get_rule
from rise.tasks import TaskSpec, TaskType


def _scores(answers: list[Any], questions: list[tuple[Scene, TaskSpec, str]]) -> dict[str, float]:
    in_list = [answer in spec.labels for answer, (_, spec, _) in zip(answers, questions, strict=True)]
    hits = [answer == truth for answer, (_, _, truth) in zip(answers, questions, strict=True)]
    counts = Counter(answer for answer in answers if answer is not None)
    return {
        "in_list": float(np.mean(in_list)),
        "accuracy": float(np.mean(hits)),
        "top_share": max(counts.values()) / len(answers) if counts else 0.0,
        "answers": dict(counts.most_common()),
    }


def _accuracy_by_attribute(answers: list[Any], questions: list[tuple[Scene, TaskSpec, str]]) -> dict[str, Any]:
    """Defined questions' accuracy per attribute their labels are defined by, with each attribute's question count."""
    hits: dict[str, list[bool]] = {attribute: [] for attribute in ATTRIBUTES}
    for answer, (_, spec, truth) in zip(answers, questions, strict=True):
        attribute = defined_attribute(spec)
        if attribute is not None:
            hits[attribute].append(answer == truth)
    return {a: {"accuracy": float(np.mean(h)), "items": len(h)} for a, h in hits.items() if h}


def _rule_questions(rule_name: str, n_items: int, seed: int) -> list[tuple[Scene, TaskSpec, str]]:
    rule = get_rule(rule_name)
    spec = TaskSpec(TaskType.classification, labels=rule.labels)
    scenes = [generate_scene_for_rule(rule, seed * 100_003 + i) for i in range(n_items)]
    return [(scene, spec, label) for scene, label in scenes]


def evaluate_label_lists(
    model: Any, processor: Any, *, n_items: int = 150, seed: int = 20_000, batch_size: int = 16,
    max_new_tokens: int = 160, constrain_labels: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The label-list metrics of the module docstring, `n_items` questions each."""
    started = time.perf_counter()
    fixed = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, constrain_labels=constrain_labels)
    greedy = GenerationSettings(**fixed, temperature=0.0)
    sampled = GenerationSettings(**fixed, temperature=1.0)

    def answers(questions: list[tuple[Scene, TaskSpec, str]], settings: GenerationSettings) -> list[Any]:
        parsed = answer_questions(model, processor, [(scene, spec) for scene, spec, _ in questions], settings)
        return [p.answer for p in parsed]

    def ask(questions: list[tuple[Scene, TaskSpec, str]], settings: GenerationSettings) -> dict[str, float]:
        return _scores(answers(questions, settings), questions)

    results: dict[str, Any] = {"items": n_items, "constrain_labels": constrain_labels}
    max_objects = SceneConfig().max_objects
    for index, kind in enumerate(KINDS):
        rng = np.random.default_rng([seed, index])
        questions = [label_list_task(rng, max_objects, kind, held_out=True) for _ in range(n_items)]
        given = answers(questions, greedy)
        results[kind] = _scores(given, questions)
        if kind == "defined":
            results[kind]["by_attribute"] = _accuracy_by_attribute(given, questions)
    mood = _rule_questions("mood", n_items, seed)
    torch.manual_seed(seed)  # the sampled answers can be repeated
    results["mood"] = {"greedy": ask(mood, greedy), "sampled": ask(mood, sampled)}
    results["shape"] = ask(_rule_questions("shape", n_items, seed), greedy)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results

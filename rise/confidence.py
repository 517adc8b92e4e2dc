"""Confidence of a prediction: how much k sampled answers to the same image agree.

With several samples, the answer kept is the medoid (the sample most similar to all the others) and its confidence
is its mean similarity to all k samples, counting itself, so 3 votes of 5 for one label give 0.6. Unparsed samples
are similar to nothing. The review queue shows the least confident predictions first.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from rise.boxes import box_iou
from rise.tasks import Answer, TaskSpec, TaskType


def answer_similarity(a: Answer | None, b: Answer | None, spec: TaskSpec) -> float:
    """Similarity of two answers in [0, 1]; 0 when either is missing.

    Single labels: 1 if equal. Distributions: 1 - total variation distance. Grounding: IoU. Detection: IoU of
    Hungarian-matched same-label boxes summed and divided by the larger box count (1 when both are empty).

    >>> spec = TaskSpec("grounding")
    >>> answer_similarity([0, 0, 10, 10], [5, 0, 15, 10], spec)
    0.3333333333333333
    """
    if a is None or b is None:
        return 0.0
    if spec.task_type is TaskType.classification:
        if isinstance(a, dict) and isinstance(b, dict):
            labels = set(a) | set(b)
            return max(0.0, 1.0 - 0.5 * sum(abs(float(a.get(k, 0.0)) - float(b.get(k, 0.0))) for k in labels))
        return 1.0 if a == b else 0.0
    if spec.task_type is TaskType.grounding:
        return box_iou(a, b)
    return _detection_similarity(a, b)


def _detection_similarity(a: list[dict], b: list[dict]) -> float:
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    iou = np.array([[box_iou(x["box"], y["box"]) if x.get("label") == y.get("label") else 0.0 for y in b] for x in a])
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return float(iou[rows, cols].sum()) / max(len(a), len(b))


def pick_consensus(answers: list[Answer | None], spec: TaskSpec) -> tuple[int, float]:
    """Index of the medoid answer and its agreement score in [0, 1].

    Ties go to the earliest sample; when nothing parsed, the first sample with score 0.

    >>> spec = TaskSpec("classification", labels=("circle", "square"))
    >>> pick_consensus(["square", "circle", "circle", None, "circle"], spec)
    (1, 0.6)
    """
    if not answers:
        raise ValueError("pick_consensus needs at least one sampled answer")
    k = len(answers)
    best_index, best_total = 0, -math.inf
    for i, candidate in enumerate(answers):
        if candidate is None:
            continue
        total = sum(1.0 if i == j else answer_similarity(candidate, other, spec) for j, other in enumerate(answers))
        if total > best_total:
            best_index, best_total = i, total
    if best_total == -math.inf:
        return 0, 0.0
    return best_index, best_total / k

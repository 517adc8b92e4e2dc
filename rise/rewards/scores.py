"""Accuracy of one answer against another, both already in the `rise.tasks` pixel shapes (docs/design.md §2).

These are plain scores in [0, 1]; the TRL reward functions in this package parse completions and call them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from rise.boxes import box_iou
from rise.tasks import Answer, TaskSpec, TaskType

# Probabilities are clamped away from zero so KL stays finite when the prediction gives a gold label no mass.
PROBABILITY_FLOOR = 1e-6


def label_score(predicted: str, gold: str) -> float:
    """1.0 for the same label, else 0.0.

    >>> label_score("circle", "circle"), label_score("circle", "square")
    (1.0, 0.0)
    """
    return 1.0 if predicted == gold else 0.0


def distribution_score(predicted: dict[str, float], gold: dict[str, float]) -> float:
    """exp(-0.5 KL(gold || predicted) - 0.5 MSE) over the union of labels; 1.0 for identical distributions.

    >>> distribution_score({"joy": 0.7, "fear": 0.3}, {"joy": 0.7, "fear": 0.3})
    1.0
    >>> round(distribution_score({"joy": 0.3, "fear": 0.7}, {"joy": 0.7, "fear": 0.3}), 4)
    0.7792
    """
    labels = sorted(set(predicted) | set(gold))
    p = np.array([max(predicted.get(label, 0.0), PROBABILITY_FLOOR) for label in labels])
    q = np.array([gold.get(label, 0.0) for label in labels])
    q_positive = q > 0
    kl = float(np.sum(q[q_positive] * np.log(q[q_positive] / p[q_positive])))
    mse = float(np.mean((np.array([predicted.get(label, 0.0) for label in labels]) - q) ** 2))
    return math.exp(-0.5 * max(kl, 0.0) - 0.5 * mse)


def matched_iou_score(
    predicted: list[dict], gold: list[dict], *, match_labels: bool = True, length_penalty: bool = False
) -> float:
    """Hungarian-matched IoU sum divided by max(#gold, #predicted): extra and missing boxes both cost.

    Args:
        predicted (`list[dict]`), gold (`list[dict]`): `[{"label": ..., "box": [x1, y1, x2, y2]}, ...]` in pixels.
        match_labels (`bool`): a pair only counts when the labels agree.
        length_penalty (`bool`): also multiply by min(1, #gold / #predicted), VLM-R1's `odLength` factor against
            padding the answer with boxes.

    >>> gold = [{"label": "circle", "box": [0, 0, 10, 10]}, {"label": "square", "box": [20, 20, 30, 30]}]
    >>> matched_iou_score([{"label": "circle", "box": [0, 0, 10, 10]}], gold)
    0.5
    >>> matched_iou_score(gold[::-1], gold)
    1.0
    """
    if not predicted and not gold:
        return 1.0  # nothing to find and nothing claimed
    if not predicted or not gold:
        return 0.0
    ious = np.zeros((len(predicted), len(gold)))
    for i, pred in enumerate(predicted):
        for j, truth in enumerate(gold):
            if not match_labels or pred["label"] == truth["label"]:
                ious[i, j] = box_iou(pred["box"], truth["box"])
    rows, cols = linear_sum_assignment(ious, maximize=True)
    score = float(ious[rows, cols].sum()) / max(len(predicted), len(gold))
    if length_penalty and len(predicted) > len(gold):
        score *= len(gold) / len(predicted)
    return score


def answer_accuracy(
    predicted: Answer, gold: Answer, spec: TaskSpec, *, match_labels: bool = True, length_penalty: bool = False
) -> float:
    """The task's accuracy of a predicted answer against the gold one (both normalised pixel answers).

    >>> answer_accuracy([0, 0, 10, 10], [5, 0, 15, 10], TaskSpec("grounding"))
    0.3333333333333333
    """
    if spec.task_type is TaskType.classification:
        return distribution_score(predicted, gold) if spec.distribution else label_score(predicted, gold)
    if spec.task_type is TaskType.grounding:
        return box_iou(predicted, gold)
    return matched_iou_score(predicted, gold, match_labels=match_labels, length_penalty=length_penalty)

"""Evaluation metrics over a held-out set: accuracy and distribution distance for labels, mean IoU and mAP@0.5 for
boxes. Inputs are normalised pixel answers (`rise.tasks` shapes); an unreadable prediction is `None` and scores as
wrong (no label, no boxes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rise.boxes import box_iou
from rise.rewards import answer_accuracy, distribution_score
from rise.rewards.scores import PROBABILITY_FLOOR
from rise.tasks import Answer, TaskSpec, TaskType


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve with precision made monotone (PASCAL VOC 2010+ all-point AP).

    >>> average_precision(np.array([0.5, 1.0]), np.array([1.0, 0.5]))
    0.75
    """
    recall = np.concatenate(([0.0], recall, [1.0]))
    precision = np.concatenate(([0.0], precision, [0.0]))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


def mean_average_precision(
    predictions: Sequence[list[dict[str, Any]] | None],
    scores: Sequence[float | None],
    golds: Sequence[list[dict[str, Any]]],
    labels: Sequence[str],
    iou_threshold: float = 0.5,
) -> tuple[float, dict[str, float]]:
    """mAP at `iou_threshold` over the labels that occur in the gold answers, and each label's AP.

    Boxes are ranked by their image's prediction score (models give one confidence per answer, not per box); each
    gold box matches at most one prediction, the highest-IoU unmatched one.

    >>> gold = [[{"label": "a", "box": [0, 0, 10, 10]}], [{"label": "a", "box": [0, 0, 10, 10]}]]
    >>> pred = [[{"label": "a", "box": [0, 0, 10, 10]}], [{"label": "a", "box": [20, 20, 30, 30]}]]
    >>> mean_average_precision(pred, [0.9, 0.8], gold, ["a"])
    (0.5, {'a': 0.5})
    """
    per_label: dict[str, float] = {}
    for label in labels:
        gold_boxes = [[g["box"] for g in gold if g["label"] == label] for gold in golds]
        total = sum(len(boxes) for boxes in gold_boxes)
        if total == 0:
            continue  # AP is undefined for a label the held-out set never contains
        ranked = []
        for image, (prediction, score) in enumerate(zip(predictions, scores, strict=True)):
            for order, entry in enumerate(prediction or []):
                if entry["label"] == label:
                    # Ties keep the model's own order within an image and the input order across images.
                    ranked.append((-(score if score is not None else 0.0), image, order, entry["box"]))
        ranked.sort(key=lambda r: (r[0], r[1], r[2]))
        matched = [[False] * len(boxes) for boxes in gold_boxes]
        hits = np.zeros(len(ranked))
        for rank, (_, image, _, box) in enumerate(ranked):
            ious = [box_iou(box, g) if not matched[image][j] else -1.0 for j, g in enumerate(gold_boxes[image])]
            if ious and max(ious) >= iou_threshold:
                matched[image][int(np.argmax(ious))] = True
                hits[rank] = 1.0
        true_positives = np.cumsum(hits)
        recall = true_positives / total
        precision = true_positives / np.arange(1, len(ranked) + 1) if len(ranked) else np.zeros(0)
        per_label[label] = average_precision(recall, precision) if len(ranked) else 0.0
    mean = float(np.mean(list(per_label.values()))) if per_label else 0.0
    return mean, per_label


def _kl(gold: dict[str, float], predicted: dict[str, float]) -> float:
    return float(
        sum(q * math.log(q / max(predicted.get(label, 0.0), PROBABILITY_FLOOR)) for label, q in gold.items() if q > 0)
    )


def _argmax(distribution: dict[str, float]) -> str:
    return max(distribution, key=lambda label: distribution[label])


def per_item_scores(
    spec: TaskSpec, predictions: Sequence[Answer | None], golds: Sequence[Answer], iou_threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Each item's contribution to the task's mean metrics (`task_metrics` averages them): `accuracy` for labels
    (and `distribution_score` for distributions), `mean_iou` and, for one box, `accuracy_at_iou`."""
    pairs = list(zip(predictions, golds, strict=True))
    accuracies = np.array([answer_accuracy(p, g, spec) if p is not None else 0.0 for p, g in pairs], dtype=float)
    if spec.distribution:
        return {
            "accuracy": np.array([p is not None and _argmax(p) == _argmax(g) for p, g in pairs], dtype=float),
            "distribution_score": np.array([distribution_score(p, g) if p else 0.0 for p, g in pairs], dtype=float),
        }
    if spec.task_type is TaskType.classification:
        return {"accuracy": accuracies}
    if spec.task_type is TaskType.detection:
        return {"mean_iou": accuracies}
    return {"mean_iou": accuracies, "accuracy_at_iou": (accuracies >= iou_threshold).astype(float)}


def _grounding_map(
    predictions: Sequence[Answer | None], scores: Sequence[float | None], golds: Sequence[Answer], iou_threshold: float
) -> float:
    """mAP of single-box answers, each wrapped as a one-object detection."""
    wrap = [[{"label": "target", "box": p}] if p is not None else [] for p in predictions]
    gold_wrap = [[{"label": "target", "box": g}] for g in golds]
    return mean_average_precision(wrap, scores, gold_wrap, ["target"], iou_threshold)[0]


def task_metrics(
    spec: TaskSpec,
    predictions: Sequence[Answer | None],
    golds: Sequence[Answer],
    scores: Sequence[float | None] | None = None,
    *,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """The task's metrics for predicted vs gold answers (both normalised pixels; `None` predictions are misses).

    | task | metrics |
    |---|---|
    | classification | `accuracy` |
    | distribution | `accuracy` (top label), `distribution_score` (exp(-0.5 KL - 0.5 MSE)), `kl_divergence` |
    | detection | `mean_iou` (matched IoU / max(#gold, #pred)), `map50` (mAP at `iou_threshold`), per-label AP |
    | grounding | `mean_iou`, `accuracy_at_iou` (IoU >= threshold), `map50` |

    Every task also reports `items` and `answered` (the fraction with a readable answer).
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answers")
    count = len(golds)
    scores = list(scores) if scores is not None else [None] * count
    answered = sum(p is not None for p in predictions)
    metrics: dict[str, Any] = {"items": count, "answered": answered / count if count else 0.0}
    if count == 0:
        return metrics
    for name, values in per_item_scores(spec, predictions, golds, iou_threshold).items():
        metrics[name] = float(np.mean(values))
    if spec.distribution:
        answered_pairs = [(p, g) for p, g in zip(predictions, golds, strict=True) if p is not None]
        metrics["kl_divergence"] = float(np.mean([_kl(g, p) for p, g in answered_pairs])) if answered_pairs else None
    elif spec.task_type is TaskType.detection:
        metrics["map50"], metrics["ap_per_label"] = mean_average_precision(
            predictions, scores, golds, spec.labels, iou_threshold
        )
    elif spec.has_boxes:
        metrics["map50"] = _grounding_map(predictions, scores, golds, iou_threshold)
    metrics["iou_threshold"] = iou_threshold if spec.has_boxes else None
    return metrics


def bootstrap_intervals(
    spec: TaskSpec,
    predictions: Sequence[Answer | None],
    golds: Sequence[Answer],
    scores: Sequence[float | None] | None = None,
    *,
    iou_threshold: float = 0.5,
    resamples: int = 1000,
    ap_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of `task_metrics`' headline metrics over the held-out items.

    The items are drawn with replacement `resamples` times and every metric recomputed on each draw, so the
    interval says how much a score could move on another slice of the same size: on 20 items an accuracy of 0.70
    spans roughly 0.50–0.90, which is why a small slice cannot promote a version on its own. The mean metrics
    resample the items' own scores (`per_item_scores`); average precision, which costs far more per draw, is
    recomputed on `ap_resamples` draws.

    >>> spec = TaskSpec("classification", labels=("a", "b"))
    >>> low, high = bootstrap_intervals(spec, ["a"] * 14 + ["b"] * 6, ["a"] * 20)["accuracy"]
    >>> 0.45 <= low < 0.7 < high <= 0.9
    True
    """
    count = len(golds)
    if count == 0:
        return {}
    scores = list(scores) if scores is not None else [None] * count
    rng = np.random.default_rng(seed)
    values = per_item_scores(spec, predictions, golds, iou_threshold)
    draws: dict[str, list[float]] = {name: [] for name in values}
    for _ in range(resamples):
        index = rng.integers(count, size=count)
        for name, per_item in values.items():
            draws[name].append(float(per_item[index].mean()))
    if spec.has_boxes:
        draws["map50"] = []
        for _ in range(ap_resamples):
            index = rng.integers(count, size=count)
            chosen = [predictions[i] for i in index], [scores[i] for i in index], [golds[i] for i in index]
            if spec.task_type is TaskType.detection:
                draws["map50"].append(mean_average_precision(*chosen, spec.labels, iou_threshold)[0])
            else:
                draws["map50"].append(_grounding_map(*chosen, iou_threshold))
    tail = (1 - confidence) / 2 * 100
    return {
        name: [round(float(np.percentile(values, tail)), 4), round(float(np.percentile(values, 100 - tail)), 4)]
        for name, values in draws.items()
    }

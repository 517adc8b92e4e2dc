"""Evaluation metrics: accuracy and distribution distance for labels, mean IoU and mAP@0.5 for boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rise.tasks import TaskSpec
from rise.training.metrics import (
    average_precision,
    bootstrap_intervals,
    mean_average_precision,
    per_item_scores,
    task_metrics,
)

BOX_A = [0, 0, 10, 10]
BOX_B = [20, 20, 30, 30]


def det(*pairs):
    return [{"label": label, "box": box} for label, box in pairs]


class TestAveragePrecision:
    def test_perfect_ranking_is_one(self):
        assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0

    def test_precision_is_made_monotone(self):
        # A false positive ranked first, then two hits: the envelope at recall 1 is 2/3.
        recall, precision = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 2 / 3])
        assert average_precision(recall, precision) == pytest.approx(2 / 3)


class TestMeanAveragePrecision:
    def test_each_gold_box_matches_once(self):
        gold = [det(("a", BOX_A))]
        twice = [det(("a", BOX_A), ("a", BOX_A))]  # the duplicate is a false positive
        mean, per_label = mean_average_precision(twice, [0.9], gold, ["a", "b"])
        assert mean == 1.0 and per_label == {"a": 1.0}  # "b" never occurs in the gold answers: no AP for it

    def test_confident_misses_ranked_first_lower_the_ap(self):
        gold = [det(("a", BOX_A)), det(("a", BOX_A))]
        preds = [det(("a", BOX_A)), det(("a", BOX_B))]
        confident_hit, _ = mean_average_precision(preds, [0.9, 0.1], gold, ["a"])
        confident_miss, _ = mean_average_precision(preds, [0.1, 0.9], gold, ["a"])
        assert confident_hit == 0.5 and confident_miss == pytest.approx(0.25)

    def test_wrong_label_is_no_hit(self):
        mean, _ = mean_average_precision([det(("b", BOX_A))], [1.0], [det(("a", BOX_A))], ["a", "b"])
        assert mean == 0.0


class TestTaskMetrics:
    def test_single_label_accuracy_counts_unreadable_answers_as_wrong(self):
        spec = TaskSpec("classification", labels=("circle", "square"))
        metrics = task_metrics(spec, ["circle", None, "square"], ["circle", "circle", "circle"])
        assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["answered"] == pytest.approx(2 / 3)

    def test_distribution_reports_top_label_and_distance(self):
        spec = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
        gold = [{"joy": 0.7, "fear": 0.3}]
        same = task_metrics(spec, gold, gold)
        assert same["accuracy"] == 1.0 and same["distribution_score"] == 1.0 and same["kl_divergence"] == 0.0
        flipped = task_metrics(spec, [{"joy": 0.3, "fear": 0.7}], gold)
        assert flipped["accuracy"] == 0.0
        expected_kl = 0.7 * math.log(0.7 / 0.3) + 0.3 * math.log(0.3 / 0.7)
        assert flipped["kl_divergence"] == pytest.approx(expected_kl)

    def test_detection_mean_iou_and_map(self):
        spec = TaskSpec("detection", labels=("a",), frame="pixels")
        metrics = task_metrics(spec, [det(("a", BOX_A)), None], [det(("a", BOX_A)), det(("a", BOX_B))], [0.9, None])
        assert metrics["mean_iou"] == 0.5 and metrics["map50"] == 0.5 and metrics["ap_per_label"] == {"a": 0.5}

    def test_grounding_iou_threshold(self):
        spec = TaskSpec("grounding", frame="pixels")
        half = [0, 0, 10, 5]  # IoU 0.5 with BOX_A
        metrics = task_metrics(spec, [BOX_A, half, [5, 5, 15, 15]], [BOX_A, BOX_A, BOX_A])
        assert metrics["accuracy_at_iou"] == pytest.approx(2 / 3)
        assert metrics["mean_iou"] == pytest.approx((1 + 0.5 + 25 / 175) / 3)
        assert task_metrics(spec, [half], [BOX_A], iou_threshold=0.75)["accuracy_at_iou"] == 0.0


class TestBootstrapIntervals:
    def test_intervals_surround_each_headline_score_and_narrow_with_more_items(self):
        spec = TaskSpec("grounding")
        golds = [[0, 0, 10, 10]] * 40
        predictions = [[0, 0, 10, 10] if i % 4 else [20, 20, 30, 30] for i in range(40)]
        point = task_metrics(spec, predictions, golds, [0.9] * 40)
        intervals = bootstrap_intervals(spec, predictions, golds, [0.9] * 40)
        assert set(intervals) == {"mean_iou", "accuracy_at_iou", "map50"}
        for name, (low, high) in intervals.items():
            assert low <= point[name] <= high
        low, high = intervals["accuracy_at_iou"]
        wide_low, wide_high = bootstrap_intervals(spec, predictions[:12], golds[:12])["accuracy_at_iou"]
        assert 0 < high - low < wide_high - wide_low

    def test_per_item_scores_average_to_the_task_metrics(self):
        spec = TaskSpec("classification", labels=("a", "b", "c"))
        predictions, golds = ["a", "b", None, "c"], ["a", "c", "b", "c"]
        per_item = per_item_scores(spec, predictions, golds)
        assert list(per_item["accuracy"]) == [1.0, 0.0, 0.0, 1.0]
        assert task_metrics(spec, predictions, golds)["accuracy"] == 0.5

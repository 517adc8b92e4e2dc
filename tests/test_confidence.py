"""Agreement among sampled answers: the similarity of two answers and the consensus pick."""

from __future__ import annotations

import pytest

from rise.confidence import answer_similarity, pick_consensus
from rise.tasks import TaskSpec

LABELS = TaskSpec("classification", labels=("circle", "square", "triangle"))
DISTRIBUTION = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
DETECTION = TaskSpec("detection", labels=("circle", "square"))
GROUNDING = TaskSpec("grounding")


class TestAnswerSimilarity:
    def test_labels_are_similar_only_when_equal(self):
        assert answer_similarity("circle", "circle", LABELS) == 1.0
        assert answer_similarity("circle", "square", LABELS) == 0.0

    def test_missing_answer_is_similar_to_nothing(self):
        assert answer_similarity(None, "circle", LABELS) == 0.0
        assert answer_similarity(None, None, LABELS) == 0.0  # two failures do not agree on anything

    def test_distributions_use_one_minus_total_variation(self):
        assert answer_similarity({"joy": 0.7, "fear": 0.3}, {"joy": 0.5, "fear": 0.5}, DISTRIBUTION) == pytest.approx(
            0.8
        )

    def test_grounding_uses_iou(self):
        assert answer_similarity([0, 0, 10, 10], [0, 0, 10, 5], GROUNDING) == pytest.approx(0.5)

    def test_detection_matches_boxes_of_the_same_label(self):
        a = [{"label": "circle", "box": [0, 0, 10, 10]}, {"label": "square", "box": [20, 20, 30, 30]}]
        same_boxes_in_other_order = [a[1], a[0]]
        assert answer_similarity(a, same_boxes_in_other_order, DETECTION) == pytest.approx(1.0)
        relabelled = [{"label": "square", "box": [0, 0, 10, 10]}]
        assert answer_similarity(a[:1], relabelled, DETECTION) == 0.0  # same place, other class
        assert answer_similarity(a, a[:1], DETECTION) == pytest.approx(0.5)  # one of two found

    def test_two_empty_detections_agree(self):
        assert answer_similarity([], [], DETECTION) == 1.0


class TestPickConsensus:
    def test_majority_label_wins_with_its_vote_share(self):
        assert pick_consensus(["square", "circle", "circle", None, "circle"], LABELS) == (1, 0.6)

    def test_unanimous_samples_score_one(self):
        assert pick_consensus(["circle"] * 4, LABELS) == (0, 1.0)

    def test_nothing_parsed_scores_zero(self):
        assert pick_consensus([None, None], LABELS) == (0, 0.0)

    def test_box_medoid_is_the_box_closest_to_the_others(self):
        boxes = [[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 9], [1, 0, 10, 10]]
        index, score = pick_consensus(boxes, GROUNDING)
        assert index in (0, 2, 3)
        assert 0.5 < score < 1.0

    def test_no_samples_is_an_error(self):
        with pytest.raises(ValueError, match="at least one"):
            pick_consensus([], LABELS)

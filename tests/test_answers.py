"""Stored and gold answers: validation into the canonical pixel shapes of rise/tasks.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rise.answers import MAX_BOXES, answer_labels, label_key, normalize_answer, normalize_label, parse_answer_text
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square"), synonyms={"ball": "circle", "Round Thing": "circle"})
EMOTIONS = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
DETECTION = TaskSpec("detection", labels=("circle", "square"))
GROUNDING = TaskSpec("grounding")


class TestAnswerLabels:
    @pytest.mark.parametrize(
        ("answer", "expected"),
        [
            ("circle", ["circle"]),  # one label
            ({"joy": 0.2, "fear": 0.8}, ["fear"]),  # a distribution names its most probable label
            ({"joy": True, "fear": "x"}, []),  # no probabilities: nothing named
            (
                [{"label": "square", "box": [0, 0, 2, 2]}, {"label": "circle", "box": [1, 1, 3, 3]}],
                ["circle", "square"],
            ),  # sorted
            ([{"label": "circle", "box": [0, 0, 4, 4]}, {"label": "circle", "box": [1, 1, 5, 5]}], ["circle"]),  # once
            ([1, 2, 3, 4], []),  # a grounding box names no label
            (None, []),  # no answer
        ],
    )
    def test_labels_an_answer_names(self, answer, expected):
        assert answer_labels(answer) == expected


class TestNormalizeLabel:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("circle", "circle"),  # exact
            ("SQUARE", "square"),  # case
            ("round   thing", "circle"),  # synonym with other case and spacing
            ("round_thing", "circle"),  # underscore for space
            ("circle!", "circle"),  # trailing punctuation
            ("hexagon", None),  # unknown
            ("", None),  # empty
        ],
    )
    def test_label_forms(self, text, expected):
        assert normalize_label(text, SHAPES) == expected

    def test_label_key(self):
        assert label_key(" Traffic__Light-Red ") == "traffic light red"


class TestNormalizeAnswer:
    @pytest.mark.parametrize(
        ("spec", "value", "expected"),
        [
            (SHAPES, "ball", "circle"),  # a gold label given as a synonym
            (SHAPES, '"square"', "square"),  # a JSON string
            (EMOTIONS, {"joy": 1, "fear": 3}, {"joy": 0.25, "fear": 0.75}),  # object, normalised
            (EMOTIONS, "fear", {"joy": 0.0, "fear": 1.0}),  # a bare label on a distribution task is one-hot
            (EMOTIONS, '{"joy": 0.5, "fear": 0.5}', {"joy": 0.5, "fear": 0.5}),  # JSON string
            (DETECTION, '[{"label": "circle", "box": [1, 2, 3, 4]}]', [{"label": "circle", "box": [1, 2, 3, 4]}]),
            (DETECTION, [], []),  # no objects is a valid detection answer
            (GROUNDING, "[10, 20, 30, 40]", [10, 20, 30, 40]),  # JSON string box
            (GROUNDING, {"box": [10, 20, 30, 40]}, [10, 20, 30, 40]),  # object with a box
        ],
    )
    def test_valid_answers_are_canonical(self, spec, value, expected):
        assert normalize_answer(value, spec) == expected

    def test_boxes_are_clipped_when_the_size_is_known(self):
        # why: imported ground truth sometimes overshoots the image by a pixel; stored boxes stay inside it
        assert normalize_answer([-1, 10, 65, 20], GROUNDING, 64, 64) == [0.0, 10.0, 64.0, 20.0]

    @pytest.mark.parametrize(
        ("spec", "value"),
        [
            (SHAPES, "hexagon"),  # not a label
            (SHAPES, 3),  # not text
            (EMOTIONS, {"joy": 0.5, "anger": 0.5}),  # unknown label
            (EMOTIONS, "not json at all"),  # neither JSON nor a label
            (DETECTION, [{"label": "circle", "box": [5, 5, 5, 10]}]),  # zero width
            (DETECTION, [{"label": "circle", "box": [-5, 0, 5, 10]}]),  # negative pixels without a size to clip to
            (GROUNDING, []),  # a grounding answer needs its box
            (GROUNDING, [[0, 0, 1, 1], [0, 0, 2, 2]]),  # two boxes
        ],
    )
    def test_invalid_answers_raise_with_reason(self, spec, value):
        with pytest.raises(ValueError):
            normalize_answer(value, spec)

    def test_an_answer_holds_at_most_max_boxes(self):
        box = {"label": "circle", "box": [1, 2, 3, 4]}
        assert len(normalize_answer([box] * MAX_BOXES, DETECTION)) == MAX_BOXES
        with pytest.raises(ValueError, match="50,000 boxes are more than the 1,000 one answer may hold"):
            normalize_answer([box] * 50_000, DETECTION)
        model_text = "circle(1,2),(3,4) " * (MAX_BOXES + 1)
        assert parse_answer_text(model_text, DETECTION, 100, 100) == (
            None,
            "1,001 boxes are more than the 1,000 one answer may hold",
        )


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), spec=st.sampled_from([SHAPES, EMOTIONS, DETECTION, GROUNDING]))
def test_parse_answer_text_never_raises(text, spec):
    answer, error = parse_answer_text(text, spec, 64, 48)
    assert (answer is None) != (error is None)

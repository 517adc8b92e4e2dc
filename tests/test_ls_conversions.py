"""Label Studio result conversions, checked against hand-computed values (percent of the image, top-left origin)."""

from __future__ import annotations

import pytest

from app.export import label_studio as ls
from rise.boxes import from_label_studio, to_label_studio


class TestBoxConversions:
    @pytest.mark.parametrize(
        ("box", "size", "percent"),
        [
            ([0, 0, 40, 20], (40, 20), (0.0, 0.0, 100.0, 100.0)),  # the whole image: every edge on the border
            ([10, 20, 60, 70], (200, 100), (5.0, 20.0, 25.0, 50.0)),  # wide image: x and y scale differently
            ([5, 25, 15, 50], (20, 50), (25.0, 50.0, 50.0, 50.0)),  # tall image, bottom edge on the border
            ([32, 8.5, 64, 17], (64, 17), (50.0, 50.0, 50.0, 50.0)),  # right and bottom edges on the border
            ([0, 0, 1, 1], (33, 33), (0.0, 0.0, 100 / 33, 100 / 33)),  # a one-pixel box in the corner
        ],
    )
    def test_pixel_box_becomes_hand_computed_percent(self, box, size, percent):
        assert to_label_studio(box, *size) == pytest.approx(percent)
        assert from_label_studio(*percent, width=size[0], height=size[1]) == pytest.approx(box)

    def test_percent_past_the_border_is_clipped_to_the_image(self):
        # Label Studio lets a box hang over the edge by rounding: 50 % + 50.0001 % of 64 px ends at 64 px.
        assert from_label_studio(50, 50, 50.0001, 50.0001, width=64, height=17) == pytest.approx([32, 8.5, 64, 17])

    def test_rectangle_result_has_original_size_and_no_rotation(self):
        result = ls.rectangle_result("cat", [32, 8.5, 64, 17], 64, 17, "r0")
        assert result["original_width"] == 64 and result["original_height"] == 17
        assert result["image_rotation"] == 0 and result["value"]["rotation"] == 0
        assert result["value"]["x"] == 50.0 and result["value"]["width"] == 50.0
        assert (result["from_name"], result["to_name"], result["type"]) == ("label", "image", "rectanglelabels")


class TestAnswerToResults:
    def test_detection_answer_becomes_one_region_per_box(self):
        answer = [{"label": "a", "box": [0, 0, 20, 50]}, {"label": "b", "box": [10, 25, 20, 50]}]
        results = ls.answer_to_results(answer, "detection", ["a", "b"], 20, 50, region_prefix="p7_")
        assert [r["id"] for r in results] == ["p7_0", "p7_1"]
        assert [r["value"]["rectanglelabels"] for r in results] == [["a"], ["b"]]
        value = dict(results[1]["value"])
        assert value.pop("rectanglelabels") == ["b"]
        assert value == pytest.approx({"x": 50.0, "y": 50.0, "width": 50.0, "height": 50.0, "rotation": 0})

    def test_grounding_box_takes_the_target_label_when_the_project_has_none(self):
        [result] = ls.answer_to_results([0, 0, 10, 10], "grounding", [], 20, 20)
        assert result["value"]["rectanglelabels"] == ["target"]

    def test_distribution_shows_its_top_label_and_keeps_the_whole_distribution(self):
        choice, text = ls.answer_to_results({"joy": 0.3, "fear": 0.7}, "classification", ["joy", "fear"], 1, 1)
        assert choice["value"] == {"choices": ["fear"]}
        assert (text["from_name"], text["value"]["text"]) == ("distribution", ['{"fear": 0.7, "joy": 0.3}'])

    @pytest.mark.parametrize(
        ("answer", "task_type"),
        [
            (["circle"], "classification"),  # a list is not one label
            ([0, 0, 10], "grounding"),  # three numbers are not a box
            ([{"label": "a"}], "detection"),  # no box
            ({"label": "a", "box": [0, 0, 1, 1]}, "detection"),  # not a list
        ],
    )
    def test_answer_of_the_wrong_shape_is_refused(self, answer, task_type):
        with pytest.raises(ValueError, match="expected"):
            ls.answer_to_results(answer, task_type, ["a", "circle", "square"], 10, 10)


class TestResultsToAnswer:
    def _box(self, label="a", x=10.0, y=20.0, w=30.0, h=40.0, rotation=0):
        value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}
        return {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": value}

    def test_boxes_and_chain_of_thought_come_back_in_pixels(self):
        results = [self._box(), ls.textarea_result("two edges")]
        read = ls.results_to_answer(results, "detection", ["a"], 200, 100)
        assert read.ok and read.cot == "two edges"
        assert read.answer == [{"label": "a", "box": pytest.approx([20.0, 20.0, 80.0, 60.0])}]

    def test_written_results_read_back_to_the_same_answer(self):
        answer = [{"label": "b", "box": [1.5, 2.25, 33.0, 16.5]}, {"label": "a", "box": [0.0, 0.0, 66.0, 33.0]}]
        results = ls.answer_to_results(answer, "detection", ["a", "b"], 66, 33) + [ls.textarea_result("why")]
        read = ls.results_to_answer(results, "detection", ["a", "b"], 66, 33)
        assert read.ok
        for got, expected in zip(read.answer, answer, strict=True):
            assert got["label"] == expected["label"] and got["box"] == pytest.approx(expected["box"], abs=1e-4)

    @pytest.mark.parametrize(
        ("results", "problem"),
        [
            ("not a list", "not a list of objects"),
            ([{"type": "rectanglelabels", "value": {"x": 1}}], "without numeric"),
            ([{"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": "w", "height": 1}}], "without numeric"),
            ([{"type": "choices", "value": {"choices": "a"}}], "malformed choices"),
        ],
    )
    def test_malformed_results_are_reported(self, results, problem):
        read = ls.results_to_answer(results, "detection", ["a"], 10, 10)
        assert not read.ok and problem in read.problems[0]

    def test_rotated_box_is_reported_not_guessed(self):
        read = ls.results_to_answer([self._box(rotation=30)], "detection", ["a"], 10, 10)
        assert read.answer is None and "rotated box (30 degrees)" in read.problems[0]

    def test_full_turn_counts_as_upright(self):
        assert ls.results_to_answer([self._box(rotation=360)], "detection", ["a"], 10, 10).ok

    def test_unknown_box_label_is_reported(self):
        read = ls.results_to_answer([self._box(label="dog")], "detection", ["a", "b"], 10, 10)
        assert "unknown label 'dog'" in read.problems[0]

    def test_box_outside_the_image_is_reported(self):
        read = ls.results_to_answer([self._box(x=120, w=10)], "detection", ["a"], 10, 10)
        assert "outside the image" in read.problems[0]

    def test_bare_rectangle_takes_the_only_label(self):
        result = {"type": "rectangle", "value": {"x": 0, "y": 0, "width": 50, "height": 50, "rotation": 0}}
        read = ls.results_to_answer([result], "detection", ["only"], 10, 10)
        assert read.answer == [{"label": "only", "box": [0.0, 0.0, 5.0, 5.0]}]

    def test_grounding_needs_exactly_one_box(self):
        read = ls.results_to_answer([self._box(), self._box()], "grounding", [], 10, 10)
        assert "one box; found 2" in read.problems[0]

    def test_empty_detection_means_no_objects(self):
        read = ls.results_to_answer([], "detection", ["a"], 10, 10)
        assert read.ok and read.answer == []

    def test_classification_reads_one_choice(self):
        read = ls.results_to_answer([ls.choices_result("b")], "classification", ["a", "b"], 10, 10)
        assert read.answer == "b"

    @pytest.mark.parametrize(
        ("choices", "problem"),
        [(["a", "b"], "expected one chosen label, found 2"), ([], "found 0"), (["zebra"], "unknown label 'zebra'")],
    )
    def test_classification_without_exactly_one_known_choice_is_reported(self, choices, problem):
        results = [{"type": "choices", "value": {"choices": choices}}]
        read = ls.results_to_answer(results, "classification", ["a", "b"], 10, 10)
        assert problem in read.problems[0]

    def test_distribution_is_read_from_its_text_area_and_normalised(self):
        results = [ls.choices_result("b"), ls.textarea_result('{"a": 1, "b": 3}', "distribution")]
        read = ls.results_to_answer(results, "classification", ["a", "b"], 1, 1, distribution=True)
        assert read.answer == {"a": 0.25, "b": 0.75}

    def test_distribution_project_without_the_text_area_gets_all_mass_on_the_choice(self):
        read = ls.results_to_answer([ls.choices_result("b")], "classification", ["a", "b"], 1, 1, distribution=True)
        assert read.answer == {"a": 0.0, "b": 1.0}

    @pytest.mark.parametrize("text", ["not json", '{"c": 1}', '{"a": -1}', '{"a": 0, "b": 0}'])
    def test_bad_distribution_text_is_reported(self, text):
        results = [ls.choices_result("a"), ls.textarea_result(text, "distribution")]
        read = ls.results_to_answer(results, "classification", ["a", "b"], 1, 1, distribution=True)
        assert read.answer is None and "distribution" in read.problems[0]

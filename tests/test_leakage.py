"""Leakage scrubbing of RISE-CoT reasoning: what is removed, what is kept, and the leak flag."""

from __future__ import annotations

import doctest
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rise.leakage
from rise.leakage import class_name_pattern, scrub_leakage
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square", "traffic_light", "glass"), synonyms={"ball": "circle"})
DETECTION = TaskSpec("detection", labels=("circle", "square"))
GROUNDING = TaskSpec("grounding")


class TestClassificationScrub:
    @pytest.mark.parametrize(
        ("cot", "expected"),
        [
            # the sentence naming the class goes, the evidence stays
            ("The edges are round. It is a circle. No corners.", "The edges are round. No corners."),
            ("It is a CIRCLE! Smooth outline.", "Smooth outline."),  # any case, "!" ends the sentence
            ("Looks like a ball? Smooth outline.", "Smooth outline."),  # a synonym is a class name too
            ("Two circles here. Smooth outline.", "Smooth outline."),  # plural
            ("Several glasses on it. Transparent.", "Transparent."),  # "-es" plural
            ("A traffic light, lit red.\nTall pole.", "Tall pole."),  # underscore label written with a space
            ("A Traffic-Light. Tall pole.", "Tall pole."),  # and with a hyphen
            ("<answer>circle</answer> Round edges.", "Round edges."),  # an answer block inside the reasoning
        ],
    )
    def test_leaking_sentences_are_dropped(self, cot, expected):
        assert scrub_leakage(cot, SHAPES) == (expected, True)

    @pytest.mark.parametrize(
        "cot",
        [
            "The edges are round and smooth.",  # no class name
            "The outline is circular, like a squared-off box.",  # "circular" and "squared" are other words
            "It has 4 equal sides of 0.5 units.",  # numbers are fine for classification
            "",  # nothing to scrub
        ],
    )
    def test_clean_reasoning_is_kept_whole(self, cot):
        assert scrub_leakage(cot, SHAPES) == (cot, False)

    def test_everything_leaking_leaves_nothing(self):
        # why: a CoT that only states the answer gives the reconstructor nothing, which is the point
        assert scrub_leakage("Circle. Definitely a circle.", SHAPES) == ("", True)

    def test_longest_name_wins(self):
        pattern = class_name_pattern(TaskSpec("classification", labels=("light", "traffic_light")))
        assert pattern.search("a traffic light").group(0) == "traffic light"


class TestBoxScrub:
    @pytest.mark.parametrize(
        ("cot", "expected"),
        [
            ("The object spans (120, 340) to (410, 700).", "The object spans to."),  # coordinate tuples
            ("Its box is [120, 340, 410, 700] exactly.", "Its box is exactly."),  # a box list
            ("About 40% from the left, x = 120.", "About from the left, x =."),  # percentages and bare numbers
            ("At <|box_start|>(1,2),(3,4)<|box_end|> there.", "At there."),  # Qwen box tokens with their contents
            ("A red circle, top left.", "A red circle, top left."),  # class names stay for boxes by default
        ],
    )
    def test_coordinates_and_numbers_are_stripped(self, cot, expected):
        text, _ = scrub_leakage(cot, DETECTION)
        assert text == expected

    def test_leak_flag_follows_removal(self):
        assert scrub_leakage("Near (3, 4).", GROUNDING).leaked  # a tuple was removed
        assert not scrub_leakage("Near the top left corner.", GROUNDING).leaked  # nothing removed

    def test_class_names_can_be_scrubbed_for_boxes_too(self):
        # why: the reasoning prompt asks for no class names in every task; a project may enforce that for boxes
        assert scrub_leakage("A red circle. Top left.", DETECTION, class_names=True) == ("Top left.", True)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "cot",
    [
        "(" + "1," * 40 + "x",  # unclosed tuple: exponential backtracking if "," were also a decimal mark
        "[" + "1, " * 40 + "x",  # unclosed list
        "<answer>" * 20_000,  # thousands of unclosed answer tags become a long run of spaces
        "word" + " " * 50_000 + "end",  # a long run of spaces: quadratic with a sentence split starting at \s*
    ],
)
@pytest.mark.parametrize("spec", [SHAPES, DETECTION])
def test_adversarial_reasoning_is_scrubbed_in_linear_time(cot, spec):
    started = time.perf_counter()
    scrub_leakage(cot, spec)
    assert time.perf_counter() - started < 1.0


@settings(max_examples=200, deadline=None)
@given(
    cot=st.one_of(
        st.text(max_size=300),
        st.lists(
            st.sampled_from(["circle", " ", ".", "\n", "(", ")", "[", "]", "1", ",", "<answer>", "</answer>", "%"]),
            max_size=60,
        ).map("".join),
    ),
    spec=st.sampled_from([SHAPES, DETECTION, GROUNDING]),
)
def test_scrub_never_raises_and_removes_every_class_name(cot, spec):
    text, leaked = scrub_leakage(cot, spec)
    pattern = class_name_pattern(SHAPES)
    if spec is SHAPES:
        assert not pattern.search(text)
        assert leaked or text == scrub_leakage(text, spec).text  # nothing removed means nothing left to remove


@pytest.mark.parametrize("module", [rise.leakage], ids=lambda module: module.__name__)
def test_docstring_examples_run(module):
    # why: the >>> examples are the documentation of record; they must stay true
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0

"""Completion parsing: tags, answers per task, frame conversion, the inverse writer, and no exception ever."""

from __future__ import annotations

import doctest
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rise.answers
import rise.parsing
from rise.parsing import (
    ParsedCompletion,
    extract_reasoning,
    format_answer,
    format_completion,
    parse_completion,
    strip_end_markers,
)
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square", "traffic_light"), synonyms={"ball": "circle"})
EMOTIONS = TaskSpec("classification", labels=("joy", "fear", "calm"), distribution=True)
DETECTION = TaskSpec("detection", labels=("circle", "square"))  # Qwen2-VL frame, 0..1000
GROUNDING = TaskSpec("grounding")
ALL_SPECS = [
    SHAPES,
    EMOTIONS,
    DETECTION,
    GROUNDING,
    TaskSpec("detection", labels=("circle", "square"), frame="qwen2_5_vl"),
    TaskSpec("grounding", frame="pixels"),
]


class TestFormat:
    @pytest.mark.parametrize(
        "text",
        [
            "<think>Round edges.</think><answer>circle</answer>",  # the canonical form
            "<think>\nRound edges.\n</think>\n<answer>\ncircle\n</answer>\n",  # Qwen's newlines around blocks
            "  <think>Round.</think> <answer>circle</answer>",  # leading whitespace before the first tag
            "<think>Round.</think><answer>circle</answer><|im_end|>",  # end-of-turn token left by the decoder
            "<think></think><answer>circle</answer>",  # empty reasoning is still the format
        ],
    )
    def test_well_formed_completion_yields_format_ok(self, text):
        parsed = parse_completion(text, SHAPES, 64, 64)
        assert parsed.format_ok
        assert parsed.answer == "circle"

    @pytest.mark.parametrize(
        "text",
        [
            "<answer>circle</answer>",  # no reasoning block
            "<think>Round.</think>",  # no answer block
            "Sure! <think>Round.</think><answer>circle</answer>",  # chatter before the first tag
            "<think>Round.</think><answer>circle</answer> Hope this helps.",  # chatter after the answer
            "<think>Write <think>reasoning</think></think><answer>circle</answer>",  # a think tag echoed inside
            "<think>a</think><think>b</think><answer>circle</answer>",  # two think blocks
            "<think>a</think><answer>square</answer><answer>circle</answer>",  # two answer blocks
            "<think>Round.<answer>square</answer></think><answer>circle</answer>",  # answer inside the reasoning
            "<think>Round.</think><answer>circle",  # answer never closed (cut off by max length)
            "<THINK>Round.</THINK><ANSWER>circle</ANSWER>",  # tags are case-sensitive, as the prompt writes them
        ],
    )
    def test_malformed_completion_yields_no_format(self, text):
        assert not parse_completion(text, SHAPES, 64, 64).format_ok

    def test_echoed_prompt_example_does_not_count_as_the_answer(self):
        # why: the model repeats the prompt's example answer and then gives its own; the last answer block counts
        text = "Example: <answer>circle</answer> <think>Four corners.</think><answer>square</answer>"
        parsed = parse_completion(text, SHAPES, 64, 64)
        assert (parsed.answer, parsed.cot, parsed.format_ok) == ("square", "Four corners.", False)

    def test_reconstruction_answer_alone_is_well_formed_without_think(self):
        assert parse_completion("<answer>circle</answer>", SHAPES, 64, 64, require_think=False).format_ok
        # why: a think block before the answer is tolerated in reconstructions
        assert parse_completion("<think>a</think><answer>circle</answer>", SHAPES, 0, 0, require_think=False).format_ok

    def test_bare_answer_is_read_but_not_well_formed(self):
        # why: an untuned base model often ignores the tags; the answer still counts for accuracy, not for format
        parsed = parse_completion("Circle", SHAPES, 64, 64)
        assert (parsed.answer, parsed.format_ok, parsed.error) == ("circle", False, None)

    def test_missing_answer_yields_reason(self):
        parsed = parse_completion("<think>Round edges.</think>", SHAPES, 64, 64)
        assert parsed == ParsedCompletion("Round edges.", None, "no <answer>…</answer> block", False)


class TestLabelAnswers:
    @pytest.mark.parametrize(
        ("answer_text", "expected"),
        [
            ("circle", "circle"),  # exact
            ("  Circle. ", "circle"),  # case, whitespace and a trailing full stop
            ('"square"', "square"),  # quoted
            ("**square**", "square"),  # markdown bold
            ("ball", "circle"),  # a synonym maps to its label
            ("BALL", "circle"),  # synonyms are case-insensitive too
            ("traffic light", "traffic_light"),  # space for underscore
            ("Traffic-Light", "traffic_light"),  # hyphen for underscore, any case
        ],
    )
    def test_label_variants_yield_canonical_label(self, answer_text, expected):
        assert parse_completion(f"<think>.</think><answer>{answer_text}</answer>", SHAPES, 0, 0).answer == expected

    @pytest.mark.parametrize(
        "answer_text",
        [
            "triangle",  # not in the label set
            "circle or square",  # hedging is not an answer
            "circles",  # plural is a different word; only listed labels and synonyms count
            "",  # empty answer
            '{"label": "circle"}',  # the single-label format is the bare label
        ],
    )
    def test_unknown_label_yields_reason(self, answer_text):
        parsed = parse_completion(f"<think>.</think><answer>{answer_text}</answer>", SHAPES, 0, 0)
        assert parsed.answer is None
        assert parsed.error

    def test_labels_differing_only_in_case_match_exactly_only(self):
        spec = TaskSpec("classification", labels=("Cat", "cat"))
        assert parse_completion("<answer>Cat</answer>", spec, 0, 0).answer == "Cat"  # exact spelling is unambiguous
        assert parse_completion("<answer>CAT</answer>", spec, 0, 0).answer is None  # which one? refuse to guess


class TestDistributionAnswers:
    def test_distribution_is_normalised_over_the_label_set(self):
        parsed = parse_completion('<think>.</think><answer>{"Joy": 3, "fear": 1}</answer>', EMOTIONS, 0, 0)
        assert parsed.answer == {"joy": 0.75, "fear": 0.25, "calm": 0.0}  # case folded, scaled, missing label = 0

    def test_percentages_and_single_quotes_are_read(self):
        # why: small models write Python dicts and percents; the shape of the distribution is what matters
        parsed = parse_completion("<answer>{'joy': 50, 'fear': 25, 'calm': 25}</answer>", EMOTIONS, 0, 0)
        assert parsed.answer == {"joy": 0.5, "fear": 0.25, "calm": 0.25}

    @pytest.mark.parametrize(
        "answer_text",
        [
            '{"joy": 0.5, "anger": 0.5}',  # unknown label is rejected, not dropped
            '{"joy": -0.5, "fear": 1.5}',  # negative probability
            '{"joy": 0, "fear": 0}',  # sums to zero: nothing to normalise
            '{"joy": NaN, "fear": 1}',  # NaN from json.loads
            '{"joy": true, "fear": 1}',  # booleans are not numbers
            '["joy", "fear"]',  # a list is not a distribution
            "joy: 0.7, fear: 0.3",  # not JSON
        ],
    )
    def test_invalid_distribution_yields_reason(self, answer_text):
        parsed = parse_completion(f"<answer>{answer_text}</answer>", EMOTIONS, 0, 0)
        assert parsed.answer is None
        assert parsed.error


class TestBoxAnswers:
    @pytest.mark.parametrize(
        ("answer_text", "expected"),
        [
            # 200x100 image in the Qwen2-VL frame: x pixels = v / 1000 * 200, y pixels = v / 1000 * 100
            ('[{"label": "circle", "box": [100, 200, 300, 400]}]', [("circle", [20.0, 20.0, 60.0, 40.0])]),
            # Qwen2.5-VL writes bbox_2d, often in a ```json fence
            (
                '```json\n[{"bbox_2d": [0, 0, 1000, 1000], "label": "square"}]\n```',
                [("square", [0.0, 0.0, 200.0, 100.0])],
            ),
            # one object without the list around it
            ('{"label": "circle", "box": [0, 0, 500, 500]}', [("circle", [0.0, 0.0, 100.0, 50.0])]),
            # Qwen's special tokens with an object reference
            (
                "<|object_ref_start|>circle<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>",
                [("circle", [20.0, 20.0, 60.0, 40.0])],
            ),
            # the same after skip_special_tokens=True removed the tokens, two objects
            (
                "circle(100,200),(300,400) square (0, 0), (500, 500)",
                [("circle", [20.0, 20.0, 60.0, 40.0]), ("square", [0.0, 0.0, 100.0, 50.0])],
            ),
            # corners in the wrong order are swapped
            ('[{"label": "circle", "box": [300, 400, 100, 200]}]', [("circle", [20.0, 20.0, 60.0, 40.0])]),
            # partly outside: clipped to the image
            ('[{"label": "circle", "box": [-100, 500, 1200, 1000]}]', [("circle", [0.0, 50.0, 200.0, 100.0])]),
            # nothing found
            ("[]", []),
        ],
    )
    def test_detection_forms_yield_pixel_boxes(self, answer_text, expected):
        parsed = parse_completion(f"<think>.</think><answer>{answer_text}</answer>", DETECTION, 200, 100)
        assert parsed.error is None
        assert [(item["label"], item["box"]) for item in parsed.answer] == expected

    @pytest.mark.parametrize(
        "answer_text",
        [
            '[{"label": "circle", "box": [1100, 0, 1200, 100]}]',  # entirely right of the image
            '[{"label": "circle", "box": [100, 100, 100, 300]}]',  # zero width
            '[{"label": "triangle", "box": [0, 0, 10, 10]}]',  # label outside the label set
            '[{"box": [0, 0, 10, 10]}]',  # no label with two labels to choose from
            '[{"label": "circle", "box": [0, 0, 10]}]',  # three numbers
            '[{"label": "circle", "box": ["0", "0", "10", "10"]}]',  # numbers as strings
            '[{"label": "circle", "box": [0, 0, 1e999, 10]}]',  # infinity
            '[{"label": "circle", "box": [0, 0, 10, 10]}',  # truncated JSON
            "a circle in the middle",  # prose
        ],
    )
    def test_invalid_detection_yields_reason(self, answer_text):
        parsed = parse_completion(f"<answer>{answer_text}</answer>", DETECTION, 200, 100)
        assert parsed.answer is None
        assert parsed.error

    def test_unlabelled_box_takes_the_only_label(self):
        # why: with a single class the label carries no information, and Qwen's grounding form often omits it
        spec = TaskSpec("detection", labels=("person",))
        assert parse_completion("<answer>[[0, 0, 1000, 1000]]</answer>", spec, 10, 10).answer == [
            {"label": "person", "box": [0.0, 0.0, 10.0, 10.0]}
        ]

    @pytest.mark.parametrize(
        ("answer_text", "expected"),
        [
            ("[250, 0, 750, 1000]", [50.0, 0.0, 150.0, 100.0]),  # plain list
            ('{"bbox_2d": [250, 0, 750, 1000]}', [50.0, 0.0, 150.0, 100.0]),  # Qwen2.5-VL object
            ('[{"bbox_2d": [250, 0, 750, 1000], "label": "the red one"}]', [50.0, 0.0, 150.0, 100.0]),  # list of one
            ("<|box_start|>(250,0),(750,1000)<|box_end|>", [50.0, 0.0, 150.0, 100.0]),  # Qwen2-VL tokens
        ],
    )
    def test_grounding_forms_yield_one_pixel_box(self, answer_text, expected):
        assert parse_completion(f"<answer>{answer_text}</answer>", GROUNDING, 200, 100).answer == expected

    @pytest.mark.parametrize(
        "answer_text",
        [
            "[[0, 0, 10, 10], [20, 20, 30, 30]]",  # two boxes for a one-box query
            "[]",  # no box
            "[2000, 2000, 3000, 3000]",  # entirely outside
        ],
    )
    def test_invalid_grounding_yields_reason(self, answer_text):
        parsed = parse_completion(f"<answer>{answer_text}</answer>", GROUNDING, 200, 100)
        assert parsed.answer is None
        assert parsed.error

    def test_box_without_image_size_yields_reason(self):
        # why: Qwen2-VL coordinates mean nothing without the image size; say so instead of guessing
        parsed = parse_completion("<answer>[0, 0, 10, 10]</answer>", GROUNDING, None, None)
        assert parsed.answer is None
        assert "image size" in parsed.error

    def test_qwen2_5_vl_frame_uses_the_resized_input(self):
        # 640x480 is resized to 644x476 (multiples of 28): x pixels = v * 640 / 644, y pixels = v * 480 / 476
        spec = TaskSpec("grounding", frame="qwen2_5_vl")
        parsed = parse_completion("<answer>[322, 238, 644, 476]</answer>", spec, 640, 480)
        assert parsed.answer == [320.0, 240.0, 640.0, 480.0]


class TestFormatAnswer:
    @pytest.mark.parametrize(
        ("spec", "answer", "width", "height", "expected"),
        [
            (SHAPES, "ball", 0, 0, "circle"),  # synonyms are written as the canonical label
            (EMOTIONS, {"joy": 0.5, "fear": 0.5}, 0, 0, '{"joy": 0.5, "fear": 0.5, "calm": 0.0}'),
            # 200x100 image: Qwen2-VL integers 0..1000 on each axis; touching the right and bottom borders
            (
                DETECTION,
                [{"label": "circle", "box": [100, 50, 200, 100]}],
                200,
                100,
                '[{"label": "circle", "box": [500, 500, 1000, 1000]}]',
            ),
            # rounding to the nearest integer: 1 px of 3 is 333.33 -> 333
            (GROUNDING, [1, 0, 3, 3], 3, 3, "[333, 0, 1000, 1000]"),
            # pixel frame keeps two decimals and drops ".0"
            (TaskSpec("grounding", frame="pixels"), [1.5, 0, 3, 3.25], 10, 10, "[1.5, 0, 3, 3.25]"),
        ],
    )
    def test_answer_is_written_in_the_model_frame(self, spec, answer, width, height, expected):
        assert format_answer(answer, spec, width, height) == expected

    @pytest.mark.parametrize(
        ("spec", "answer"),
        [
            (SHAPES, "triangle"),  # not a label
            (DETECTION, [{"label": "circle", "box": [300, 300, 400, 400]}]),  # outside the 200x100 image
            (GROUNDING, [{"label": "a", "box": [0, 0, 1, 1]}, {"label": "b", "box": [0, 0, 1, 1]}]),  # two boxes
        ],
    )
    def test_invalid_stored_answer_raises_clear_error(self, spec, answer):
        with pytest.raises(ValueError, match="answer|label"):
            format_answer(answer, spec, 200, 100)

    @pytest.mark.parametrize(
        ("spec", "answer", "width", "height"),
        [
            (SHAPES, "traffic_light", 0, 0),
            (EMOTIONS, {"joy": 0.25, "fear": 0.25, "calm": 0.5}, 0, 0),
            # 1000 px wide: the Qwen2-VL frame is exact, so the round trip is too
            (DETECTION, [{"label": "square", "box": [0.0, 0.0, 1000.0, 500.0]}], 1000, 500),
            (DETECTION, [], 64, 64),
            (TaskSpec("grounding", frame="pixels"), [3.25, 4.0, 60.5, 64.0], 64, 64),
        ],
    )
    def test_format_then_parse_round_trips(self, spec, answer, width, height):
        completion = format_completion("Because.", answer, spec, width, height)
        parsed = parse_completion(completion, spec, width, height)
        assert (parsed.cot, parsed.answer, parsed.format_ok) == ("Because.", answer, True)

    @given(data=st.data(), width=st.integers(1, 4000), height=st.integers(1, 4000))
    def test_qwen_frame_round_trip_is_within_one_unit(self, data, width, height):
        # why: Qwen2-VL rounds to integers 0..1000, so pixels come back within half a frame unit, or one unit when
        # a box thinner than a unit is widened to stay readable; writing them again gives the same text
        x1, x2 = sorted(data.draw(st.lists(st.integers(0, width), min_size=2, max_size=2, unique=True)))
        y1, y2 = sorted(data.draw(st.lists(st.integers(0, height), min_size=2, max_size=2, unique=True)))
        text = format_answer([x1, y1, x2, y2], GROUNDING, width, height)
        parsed = parse_completion(f"<answer>{text}</answer>", GROUNDING, width, height)
        tolerance = [width / 1000 + 0.01, height / 1000 + 0.01] * 2
        assert all(abs(a - b) <= t for a, b, t in zip(parsed.answer, [x1, y1, x2, y2], tolerance, strict=True))
        assert format_answer(parsed.answer, GROUNDING, width, height) == text

    def test_box_thinner_than_a_frame_unit_is_written_one_unit_wide(self):
        # 4000 px wide: 1 px is 0.25 units, so [0, 0, 1, 4000] would round to [0, 0, 0, 1000]: no area
        assert format_answer([0, 0, 1, 4000], GROUNDING, 4000, 4000) == "[0, 0, 1, 1000]"
        assert format_answer([3999, 0, 4000, 4000], GROUNDING, 4000, 4000) == "[999, 0, 1000, 1000]"


class TestExtractReasoning:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("<think>Four sides.</think>", "Four sides."),  # the asked-for form
            ("<think>Four sides.</think><answer>square</answer>", "Four sides."),  # an answer after it is dropped
            ("<think>draft</think> <think>Four sides.</think>", "Four sides."),  # the last block is the final one
            ("Four sides.", "Four sides."),  # no tags: the whole text
            ("<think>Four sides.<|im_end|>", "Four sides."),  # unclosed tag removed, end token removed
        ],
    )
    def test_reasoning_text_is_extracted(self, text, expected):
        assert extract_reasoning(text) == expected


def test_strip_end_markers_removes_repeated_tokens():
    assert strip_end_markers("<answer>a</answer><|im_end|><|endoftext|>\n") == "<answer>a</answer>"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "<answer>" * 20_000,  # thousands of unclosed answer tags
        "<think>" * 20_000 + "</think>",  # thousands of unclosed think tags
        "<think>" + " " * 50_000 + "</think><answer>" + " " * 50_000,  # long whitespace, answer never closed
        "(1,2)," * 20_000,  # a huge run of coordinate pairs
        "[" * 5_000 + "]" * 5_000,  # deep nesting for json and literal_eval
        "9" * 100_000,  # an integer beyond Python's conversion limit
    ],
)
@pytest.mark.parametrize("spec", ALL_SPECS[:4])
def test_adversarial_completion_parses_quickly(text, spec):
    started = time.perf_counter()
    for completion in (text, f"<answer>{text}</answer>"):
        parsed = parse_completion(completion, spec, 64, 64)
        assert parsed.answer is None or parsed.error is None
    extract_reasoning(text)
    assert time.perf_counter() - started < 2.0


# Property-based: arbitrary text, biased towards the pieces parsers look for, never raises.

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<|box_start|>", "<|box_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|im_end|>", "```json", "```", "[", "]", "{", "}", "(", ")", ",", ":", '"', "'",
    '"label"', '"box"', '"bbox_2d"', "circle", "square", "joy", "0", "-5", "1000", "3.5", "1e999", "NaN", "9" * 400,
    "9" * 5000, "true", "null", "\n", " ", ".",
]  # fmt: skip
completion_texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
        max_leaves=20,
    ).map(lambda value: f"<think>x</think><answer>{json.dumps(value)}</answer>"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=completion_texts, spec=st.sampled_from(ALL_SPECS), size=st.sampled_from([(64, 64), (200, 100), (1, 1)]))
def test_parse_completion_never_raises(text, spec, size):
    parsed = parse_completion(text, spec, *size)
    assert (parsed.answer is None) != (parsed.error is None)  # exactly one of answer or reason
    assert not (parsed.error or "").startswith("internal parser error")  # the safety net was never needed
    extract_reasoning(text)


@pytest.mark.parametrize("module", [rise.parsing, rise.answers], ids=lambda module: module.__name__)
def test_docstring_examples_run(module):
    # why: the >>> examples are the documentation of record; they must stay true
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0

"""Prompts per task and stage: message shape, exact answer formats, overrides and their errors."""

from __future__ import annotations

import doctest
import json
import re

import pytest

import rise.prompt_fields
import rise.prompts
from rise.parsing import format_answer, parse_completion
from rise.prompts import annotation_messages, answer_format, reasoning_messages, reconstruction_messages
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square", "triangle"))
EMOTIONS = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
DETECTION = TaskSpec("detection", labels=("circle", "square"))
GROUNDING = TaskSpec("grounding")
ALL_SPECS = [SHAPES, EMOTIONS, DETECTION, GROUNDING, TaskSpec("grounding", frame="qwen2_5_vl")]
EXAMPLE_RE = re.compile(r"Example: (<answer>.*</answer>)")


def prompt_text(messages: list[dict]) -> str:
    return "".join(part["text"] for part in messages[0]["content"] if part["type"] == "text")


def query_for(spec: TaskSpec) -> str | None:
    return "the red shape" if spec.task_type == "grounding" else None


class TestMessages:
    @pytest.mark.parametrize("spec", ALL_SPECS)
    def test_annotation_messages_hold_one_image_and_the_prompt(self, spec):
        messages = annotation_messages(spec, query_for(spec))
        assert [message["role"] for message in messages] == ["user"]
        assert [part["type"] for part in messages[0]["content"]] == ["image", "text"]

    def test_reconstruction_without_image_is_text_only(self):
        # why: the text-only form tests whether the reasoning alone carries the answer (docs/design.md §1)
        with_image = reconstruction_messages(SHAPES, "Round edges, no corners.")
        without = reconstruction_messages(SHAPES, "Round edges, no corners.", with_image=False)
        assert [part["type"] for part in with_image[0]["content"]] == ["image", "text"]
        assert [part["type"] for part in without[0]["content"]] == ["text"]
        assert prompt_text(with_image) == prompt_text(without)

    def test_grounding_prompt_names_the_query(self):
        assert '"the person about to fall"' in prompt_text(annotation_messages(GROUNDING, "the person about to fall"))

    def test_grounding_without_query_raises(self):
        with pytest.raises(ValueError, match="query"):
            annotation_messages(GROUNDING)


class TestAnswerFormat:
    @pytest.mark.parametrize("spec", ALL_SPECS)
    def test_annotation_prompt_states_tags_and_labels(self, spec):
        text = prompt_text(annotation_messages(spec, query_for(spec)))
        assert "<think>" in text and "<answer>" in text
        assert all(label in text for label in spec.labels)

    @pytest.mark.parametrize("spec", ALL_SPECS)
    def test_prompt_example_parses_as_a_valid_answer(self, spec):
        # why: the example in the prompt is the format spec the model copies; it must be what the parser reads
        example = EXAMPLE_RE.search(answer_format(spec)).group(1)
        parsed = parse_completion(f"<think>.</think>{example}", spec, 1000, 1000)
        assert parsed.error is None and parsed.format_ok

    def test_qwen2_vl_prompt_states_the_0_to_1000_frame(self):
        assert "0 to 1000" in answer_format(DETECTION)

    def test_reconstruction_asks_for_the_answer_alone(self):
        text = prompt_text(reconstruction_messages(SHAPES, "Round edges."))
        assert "Write only the answer" in text and "<think>" not in text


class TestReasoningPrompt:
    def test_reasoning_prompt_shows_the_trusted_answer_and_forbids_naming_it(self):
        text = prompt_text(reasoning_messages(SHAPES, "circle"))
        assert "annotated with the label: circle" in text
        assert "never write any of the labels (circle, square, triangle)" in text

    def test_box_reasoning_prompt_shows_boxes_in_the_model_frame_and_forbids_numbers(self):
        answer = format_answer([{"label": "circle", "box": [0, 0, 32, 32]}], DETECTION, 64, 64)
        text = prompt_text(reasoning_messages(DETECTION, answer))
        assert json.loads(answer) == [{"label": "circle", "box": [0, 0, 500, 500]}]
        assert answer in text and "no coordinates, no numbers" in text


class TestOverrides:
    def test_override_replaces_the_default_and_fills_fields(self):
        spec = TaskSpec(
            "classification",
            labels=("cat", "dog"),
            prompt_overrides={"annotate": "Pet photo. Options: {labels}. {answer_format}"},
        )
        text = prompt_text(annotation_messages(spec))
        assert text.startswith("Pet photo. Options: cat, dog. First write")

    def test_override_without_answer_format_gets_it_appended(self):
        # why: a project template that forgets the format would silently produce unparseable answers
        spec = TaskSpec("classification", labels=("cat", "dog"), prompt_overrides={"annotate": "Cat or dog?"})
        assert prompt_text(annotation_messages(spec)) == f"Cat or dog?\n{answer_format(spec)}"

    def test_literal_braces_are_kept(self):
        spec = TaskSpec(
            "classification",
            labels=("cat", "dog"),
            prompt_overrides={"reconstruct": "Notes {{verbatim}}: {cot}"},
        )
        assert prompt_text(reconstruction_messages(spec, "Whiskers.")).startswith("Notes {verbatim}: Whiskers.")

    def test_values_with_braces_are_not_reinterpreted(self):
        # why: a CoT is model text; `{labels}` inside it must reach the prompt verbatim
        assert "{labels}" in prompt_text(reconstruction_messages(SHAPES, "I saw {labels} here."))

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"annotate": "Label: {label}"}, r"unknown field \{label\}; allowed fields: \{labels\}"),  # typo
            ({"reasoning": "Explain {cot}"}, r"unknown field \{cot\}"),  # a field of another stage
            ({"reasoning": "Explain the image."}, r"must use \{answer\}"),  # the stage's essential field missing
            ({"reconstruct": "Guess."}, r"must use \{cot\}"),  # idem
            ({"annotate": "Label {labels!r}"}, r"plain fields"),  # conversions are not allowed
            ({"annotate": "Label {labels.__class__}"}, r"plain fields"),  # attribute access is not allowed
            ({"annotate": "Label {labels"}, r"not a valid format string"),  # unbalanced brace
            ({"annotate": "Label {}"}, r"plain fields"),  # positional field
            ({"annotte": "Label {labels}"}, r"prompt_overrides keys are annotate, reasoning, reconstruct"),  # key typo
            ({"annotate": "  "}, r"non-empty"),  # blank template
        ],
    )
    def test_bad_override_fails_when_the_spec_is_built(self, overrides, message):
        with pytest.raises(ValueError, match=message):
            TaskSpec("classification", labels=("cat", "dog"), prompt_overrides=overrides)

    def test_grounding_override_must_use_the_query(self):
        with pytest.raises(ValueError, match=r"must use \{query\}"):
            TaskSpec("grounding", prompt_overrides={"annotate": "Find it. {answer_format}"})


@pytest.mark.parametrize("module", [rise.prompts, rise.prompt_fields], ids=lambda module: module.__name__)
def test_docstring_examples_run(module):
    # why: the >>> examples are the documentation of record; they must stay true
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0

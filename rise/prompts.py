"""Prompts for each task and each stage, as Hugging Face chat messages.

| stage | sees | asked for |
|---|---|---|
| `annotate` | image | `<think>evidence</think><answer>annotation</answer>` |
| `reasoning` (RISE-CoT) | image + the trusted annotation | the evidence for it, without stating it, in `<think>` |
| `reconstruct` | image (or nothing) + the scrubbed reasoning | `<answer>annotation</answer>` |

A project replaces any stage's template through `TaskSpec.prompt_overrides` (keys `annotate`, `reasoning`,
`reconstruct`). Templates are `str.format` strings with plain named fields; `rise.prompt_fields.PROMPT_FIELDS` lists
the fields each stage allows. Write literal braces as `{{` and `}}`. The answer format is never left to chance: an
`annotate` or `reconstruct` template without `{answer_format}` gets the format instruction appended.
"""

from __future__ import annotations

import json
from typing import Any

from rise.prompt_fields import PROMPT_FIELDS, check_prompt_template, template_fields
from rise.tasks import CoordinateFrame, TaskSpec, TaskType

_CORNERS = "(x1, y1) is the top-left and (x2, y2) the bottom-right corner"
COORDINATES: dict[CoordinateFrame, str] = {
    CoordinateFrame.qwen2_vl: f"{_CORNERS}, as integers from 0 to 1000 relative to the image width and height "
    "(0 is the left or top edge, 1000 the right or bottom edge)",
    CoordinateFrame.qwen2_5_vl: f"{_CORNERS}, in integer pixels of the image as you see it",
    CoordinateFrame.pixels: f"{_CORNERS}, in pixels of the image",
    CoordinateFrame.label_studio: "(x, y) is the top-left corner and width, height the size, all in percent of the "
    "image size",
}
BOX_SHAPE = {CoordinateFrame.label_studio: "[x, y, width, height]"}  # every other frame writes corners
EXAMPLE_BOX = {
    CoordinateFrame.qwen2_vl: "[120, 340, 410, 700]",
    CoordinateFrame.label_studio: "[12.5, 30, 25, 40]",
}  # pixel frames: a box that fits even a small image
PIXEL_EXAMPLE_BOX = "[12, 34, 41, 60]"

THINK_THEN_ANSWER = (
    "First write the visual evidence you see inside <think> </think>, then the answer inside <answer> </answer>."
)
ANSWER_ONLY = "Write only the answer, inside <answer> </answer>."

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "annotate": {
        "classification": "Which label fits this image? The labels are: {labels}.\n{answer_format}",
        "distribution": "How strongly does this image express each of these labels: {labels}?\n{answer_format}",
        "detection": "Find every object of these classes in the image: {labels}.\n{answer_format}",
        "grounding": 'Find the one region of the image that this description refers to: "{query}".\n{answer_format}',
    },
    "reasoning": {
        "classification": "This image is annotated with the label: {answer}.\n"
        "Describe the visual evidence in the image that supports this annotation, so that someone who reads only "
        "your description could tell which label it is. Do not state the annotation: never write any of the labels "
        "({labels}) or another word for them. Write only the description, inside <think> </think>.",
        "distribution": "This image is annotated with this distribution over the labels ({labels}): {answer}.\n"
        "Describe the visual evidence in the image that supports this annotation, so that someone who reads only "
        "your description could tell which labels it expresses and how strongly. Do not state the annotation: never "
        "write any of the labels or another word for them, and no numbers. Write only the description, inside "
        "<think> </think>.",
        "detection": "The objects in this image are annotated as {answer} (each box [x1, y1, x2, y2], where "
        "{coordinates}).\n"
        "Describe the visual evidence for each object: what it looks like and where it is, in words (for example "
        '"near the top left corner", "about a third of the image wide"). Do not state the annotation: no class '
        "names ({labels}), no coordinates, no numbers. Write only the description, inside <think> </think>.",
        "grounding": 'The region of this image that "{query}" refers to is the box {answer} ([x1, y1, x2, y2], where '
        "{coordinates}).\n"
        "Describe the visual evidence that singles out this region: what is there and where it is, in words (for "
        'example "the second person from the left, close to the bottom edge"). Do not write coordinates or numbers. '
        "Write only the description, inside <think> </think>.",
    },
    "reconstruct": {
        "classification": 'Here is a description of the visual evidence in the image:\n"""{cot}"""\n'
        "Based on it, which label fits the image? The labels are: {labels}.\n{answer_format}",
        "distribution": 'Here is a description of the visual evidence in the image:\n"""{cot}"""\n'
        "Based on it, how strongly does the image express each of these labels: {labels}?\n{answer_format}",
        "detection": 'Here is a description of the objects in the image:\n"""{cot}"""\n'
        "Based on it, give the box of every object of these classes: {labels}.\n{answer_format}",
        "grounding": 'Here is a description of the image:\n"""{cot}"""\n'
        'Based on it, give the one region of the image that "{query}" refers to.\n{answer_format}',
    },
}


def _template_kind(spec: TaskSpec) -> str:
    return "distribution" if spec.distribution else spec.task_type.value


def answer_format(spec: TaskSpec, *, with_reasoning: bool = True) -> str:
    """The exact answer format instruction for the spec's task and frame (`{answer_format}` in templates).

    >>> print(answer_format(TaskSpec("classification", labels=("circle", "square"))))
    First write the visual evidence you see inside <think> </think>, then the answer inside <answer> </answer>. \
The answer is exactly one label from this list, written as listed: circle, square. Example: <answer>circle</answer>
    """
    tags = THINK_THEN_ANSWER if with_reasoning else ANSWER_ONLY
    labels = ", ".join(spec.labels)
    example_label = spec.labels[0] if spec.labels else "object"
    if spec.task_type is TaskType.classification and not spec.distribution:
        shape = f"The answer is exactly one label from this list, written as listed: {labels}."
        example = example_label
    elif spec.distribution:
        shares = [0.8, 0.2] + [0.0] * (len(spec.labels) - 2)
        example = json.dumps(dict(zip(spec.labels, shares, strict=True)))
        shape = (
            f"The answer is a JSON object giving the probability of every label ({labels}); the probabilities sum "
            "to 1."
        )
    else:
        box_shape = BOX_SHAPE.get(spec.frame, "[x1, y1, x2, y2]")
        example_box = EXAMPLE_BOX.get(spec.frame, PIXEL_EXAMPLE_BOX)
        coordinates = COORDINATES[spec.frame]
        if spec.task_type is TaskType.detection:
            shape = (
                f'The answer is a JSON list with one entry per object, [{{"label": ..., "box": {box_shape}}}, ...], '
                f"where each label is one of: {labels}; {coordinates}. Write [] when there is no such object."
            )
            example = f'[{{"label": {json.dumps(example_label)}, "box": {example_box}}}]'
        else:
            shape = f"The answer is one box {box_shape} as a JSON list, where {coordinates}."
            example = example_box
    return f"{tags} {shape} Example: <answer>{example}</answer>"


def render_prompt(spec: TaskSpec, stage: str, **values: Any) -> str:
    """The prompt text for `stage`: the project's override or the default template, with its fields filled in.

    Raises:
        `ValueError`: an invalid override, or a grounding prompt without a query.
    """
    template = spec.prompt_overrides.get(stage) or DEFAULT_TEMPLATES[stage][_template_kind(spec)]
    check_prompt_template(stage, template, spec.task_type)
    query = values.pop("query", None)
    if spec.task_type is TaskType.grounding and not (query and str(query).strip()):
        raise ValueError("A grounding prompt needs the query, the free text naming what to find; pass query=...")
    fields = {
        "labels": ", ".join(spec.labels),
        "query": "" if query is None else str(query).strip(),
        "coordinates": COORDINATES[spec.frame],
        **values,
    }
    uses = template_fields(template)
    text = template.format(**{name: fields.get(name, "") for name in uses})
    if "answer_format" in PROMPT_FIELDS[stage] and "answer_format" not in uses:
        text = f"{text.rstrip()}\n{fields['answer_format']}"
    return text


def _user_message(text: str, *, with_image: bool) -> list[dict]:
    content: list[dict[str, Any]] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def annotation_messages(spec: TaskSpec, query: str | None = None) -> list[dict]:
    """Chat messages asking the model to annotate an image: `<think>…</think><answer>…</answer>`.

    >>> messages = annotation_messages(TaskSpec("detection", labels=("circle", "square")))
    >>> messages[0]["role"], [part["type"] for part in messages[0]["content"]]
    ('user', ['image', 'text'])
    """
    return _user_message(
        render_prompt(spec, "annotate", query=query, answer_format=answer_format(spec)), with_image=True
    )


def reasoning_messages(spec: TaskSpec, answer_text: str, query: str | None = None) -> list[dict]:
    """RISE-CoT stage 1: the image and its trusted annotation (`rise.parsing.format_answer` text) in; the evidence
    for it, without naming it, out.

    >>> text = reasoning_messages(TaskSpec("classification", labels=("circle", "square")), "circle")[0]["content"][1]
    >>> "annotated with the label: circle" in text["text"]
    True
    """
    return _user_message(render_prompt(spec, "reasoning", query=query, answer=answer_text), with_image=True)


def reconstruction_messages(spec: TaskSpec, cot: str, query: str | None = None, with_image: bool = True) -> list[dict]:
    """RISE-CoT reconstruction: the scrubbed reasoning (and the image unless `with_image=False`) in, the answer out.

    Without the image the reasoning must carry all the information; with it, an empty reasoning can still score
    (docs/design.md §1, "The image can make the reasoning unnecessary").

    >>> messages = reconstruction_messages(TaskSpec("grounding"), "A red shape at the far left.", "the red shape",
    ...                                    with_image=False)
    >>> [part["type"] for part in messages[0]["content"]]
    ['text']
    """
    text = render_prompt(
        spec, "reconstruct", query=query, cot=cot, answer_format=answer_format(spec, with_reasoning=False)
    )
    return _user_message(text, with_image=with_image)

"""The fields each stage's prompt template may use, and the check of a project's template overrides.

A `TaskSpec` checks its `prompt_overrides` here when it is built, so a bad template fails when the project is
defined rather than hours later in the middle of training; `rise.prompts` fills the same fields when it renders a
prompt. This module imports nothing from `rise`, so both can use it.
"""

from __future__ import annotations

import string

PROMPT_STAGES = ("annotate", "reasoning", "reconstruct")
PROMPT_FIELDS: dict[str, tuple[str, ...]] = {
    "annotate": ("labels", "query", "coordinates", "answer_format"),
    "reasoning": ("labels", "query", "coordinates", "answer"),
    "reconstruct": ("labels", "query", "coordinates", "cot", "answer_format"),
}
# A reasoning prompt without the annotation, or a reconstruction prompt without the reasoning, defeats its stage.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {"annotate": (), "reasoning": ("answer",), "reconstruct": ("cot",)}


def template_fields(template: str) -> set[str]:
    """The field names a template uses; `ValueError` if it is not a valid format string of plain `{name}` fields.

    >>> sorted(template_fields("Labels: {labels}. {{not a field}}"))
    ['labels']
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"Prompt template is not a valid format string ({error}); write literal braces as {{{{ and }}}}."
        ) from error
    fields = set()
    for _, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier() or format_spec or conversion:
            raise ValueError(
                f"Prompt template field {{{field_name}{'!' + conversion if conversion else ''}"
                f"{':' + format_spec if format_spec else ''}}} is not allowed: use plain fields like {{labels}}."
            )
        fields.add(field_name)
    return fields


def check_prompt_template(stage: str, template: str, task_type: str) -> None:
    """Raise a `ValueError` naming the allowed fields if `template` cannot serve as the `stage` prompt.

    >>> check_prompt_template("reasoning", "Why is this {answer}?", "classification")
    >>> check_prompt_template("annotate", "Label it: {label}", "classification")
    Traceback (most recent call last):
    ...
    ValueError: The 'annotate' prompt template uses unknown field {label}; allowed fields: {labels}, {query}, {coordinates}, {answer_format}.
    """  # noqa: E501
    if stage not in PROMPT_FIELDS:
        raise ValueError(f"Unknown prompt stage {stage!r}; prompt_overrides keys are {', '.join(PROMPT_STAGES)}.")
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"The {stage!r} prompt template must be non-empty text.")
    fields = template_fields(template)
    allowed = PROMPT_FIELDS[stage]
    allowed_text = ", ".join(f"{{{name}}}" for name in allowed)
    unknown = sorted(fields - set(allowed))
    if unknown:
        names = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"The {stage!r} prompt template uses unknown field {names}; allowed fields: {allowed_text}.")
    required = list(REQUIRED_FIELDS[stage])
    if task_type == "grounding":  # a `TaskType` is a str
        required.append("query")  # the query is what a grounding model has to find
    missing = [name for name in required if name not in fields]
    if missing:
        names = ", ".join(f"{{{name}}}" for name in missing)
        raise ValueError(f"The {stage!r} prompt template must use {names}; allowed fields: {allowed_text}.")


def check_prompt_overrides(overrides: dict[str, str], task_type: str) -> None:
    """Validate a project's `prompt_overrides`; raises `ValueError` naming the allowed keys or fields."""
    if not isinstance(overrides, dict):
        raise ValueError(f"prompt_overrides must be a dict of stage -> template, got {type(overrides).__name__}.")
    for stage, template in overrides.items():
        check_prompt_template(stage, template, task_type)

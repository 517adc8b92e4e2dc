"""Leakage: a RISE-CoT chain of thought must justify the annotation without stating it (docs/design.md §1, stage 1).

The reconstruction reward only measures the reasoning if the reconstructor cannot copy the answer out of it, so the
CoT is scrubbed before reconstruction and a leak is recorded (the reward is then scaled down):

- classification: every sentence naming a class (a label or a synonym, whole word, any case, plural allowed) is
  dropped;
- detection and grounding: box tokens, coordinate tuples and lists, and every other number are removed.

In every task an `<answer>…</answer>` block inside the reasoning is removed and counts as a leak.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from rise.tasks import TaskSpec, TaskType

ANSWER_BLOCK_RE = re.compile(r"<answer>(?:(?!</?answer>).)*(?:</answer>|$)", re.DOTALL)
TAG_RE = re.compile(r"</?(?:think|answer)>")
# A sentence ends at . ! or ? followed by whitespace, or at a line break (lines are split first, without a regex:
# a pattern starting with `\s*` rescans long runs of spaces from every position, which is quadratic).
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
# Only "." as the decimal mark: with "," too, "1,2,3" splits into numbers in exponentially many ways and an unclosed
# tuple backtracks for minutes.
NUMBER = r"[-+]?\d+(?:\.\d+)?%?"
COORDINATE_PATTERNS = (
    # Qwen's box and reference tokens, with whatever sits between them.
    re.compile(r"<\|box_start\|>.*?<\|box_end\|>|<\|quad_start\|>.*?<\|quad_end\|>", re.DOTALL),
    re.compile(r"<\|(?:box_start|box_end|object_ref_start|object_ref_end|quad_start|quad_end)\|>"),
    # (x, y) tuples and [x1, y1, x2, y2] lists, whole, so no stray brackets are left behind.
    re.compile(rf"\(\s*{NUMBER}(?:\s*[,;]\s*{NUMBER})+\s*\)"),
    re.compile(rf"\[\s*{NUMBER}(?:\s*[,;]\s*{NUMBER})+\s*\]"),
    # Any number left: "x = 120", "120 px", "40%".
    re.compile(NUMBER),
)
SPACE_BEFORE_PUNCTUATION_RE = re.compile(r"\s+([.,;:!?])")
SPACES_RE = re.compile(r"[ \t]{2,}")


class ScrubResult(NamedTuple):
    """The reasoning as the reconstructor may see it, and whether anything had to be removed."""

    text: str
    leaked: bool


def class_name_pattern(spec: TaskSpec) -> re.Pattern[str] | None:
    """One case-insensitive, whole-word pattern for every label and synonym (plural forms included).

    Spaces, underscores and hyphens inside a name match each other, so `traffic_light` catches "traffic light".

    >>> pattern = class_name_pattern(TaskSpec("classification", labels=("circle", "traffic_light")))
    >>> bool(pattern.search("Two Circles.")), bool(pattern.search("a traffic-light")), bool(pattern.search("circular"))
    (True, True, False)
    """
    names = {name.strip() for name in (*spec.labels, *spec.synonyms) if name.strip()}
    if not names:
        return None
    alternatives = sorted(
        (r"[\s_\-]+".join(re.escape(part) for part in re.split(r"[\s_\-]+", name)) for name in names),
        key=len,
        reverse=True,  # longest first, so "traffic light" wins over "light"
    )
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?:e?s)?(?!\w)", re.IGNORECASE)


def _tidy(text: str) -> str:
    text = SPACES_RE.sub(" ", text)
    return SPACE_BEFORE_PUNCTUATION_RE.sub(r"\1", text).strip()


def scrub_leakage(
    cot: str, spec: TaskSpec, *, class_names: bool | None = None, coordinates: bool | None = None
) -> ScrubResult:
    """Remove what would give the annotation away from a chain of thought.

    Args:
        cot (`str`): the reasoning (see `rise.parsing.extract_reasoning`).
        spec (`TaskSpec`): the task; its labels and synonyms are the class names.
        class_names (`bool | None`): drop sentences naming a class; defaults to `True` for classification only.
        coordinates (`bool | None`): strip numbers and coordinates; defaults to `True` for detection and grounding.

    Returns:
        `ScrubResult`: `(text, leaked)`, the scrubbed reasoning and whether anything was removed.

    Example:
    >>> spec = TaskSpec("classification", labels=("circle", "square"))
    >>> scrub_leakage("The edges are round. So it is a Circle! No corners at all.", spec)
    ScrubResult(text='The edges are round. No corners at all.', leaked=True)
    >>> scrub_leakage("The object sits at (120, 340) near 40% width.", TaskSpec("grounding"))
    ScrubResult(text='The object sits at near width.', leaked=True)
    """
    if not isinstance(cot, str):
        return ScrubResult("", False)
    if class_names is None:
        class_names = spec.task_type is TaskType.classification
    if coordinates is None:
        coordinates = spec.has_boxes
    text, answer_blocks = ANSWER_BLOCK_RE.subn(" ", cot)
    leaked = answer_blocks > 0
    text = TAG_RE.sub(" ", text)
    if coordinates:
        for pattern in COORDINATE_PATTERNS:
            text, removed = pattern.subn(" ", text)
            leaked = leaked or removed > 0
    pattern = class_name_pattern(spec) if class_names else None
    if pattern is not None:
        kept = []
        sentences = (sentence for line in text.splitlines() for sentence in SENTENCE_END_RE.split(line))
        for sentence in sentences:
            if pattern.search(sentence):
                leaked = True
            elif sentence.strip():
                kept.append(sentence.strip())
        text = " ".join(kept)
    return ScrubResult(_tidy(text), leaked)

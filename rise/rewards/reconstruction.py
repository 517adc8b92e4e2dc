"""The RISE-CoT reward (docs/design.md §1, stage 1, step 4):
r = acc(ŷ, y) × (leak_factor if the CoT leaked) + format(ŷ).

This is the pure part. Producing ŷ (prompting the model with the scrubbed CoT and generating) belongs to the
training code, which calls `score_reconstruction` on the text it got back and logs the parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rise.answers import normalize_answer
from rise.parsing import parse_completion
from rise.rewards.scores import answer_accuracy
from rise.tasks import Answer, TaskSpec

DEFAULT_LEAK_FACTOR = 0.1  # the authors' code scales the accuracy of a leaking CoT by 0.1


@dataclass(frozen=True)
class ReconstructionScore:
    """The reward of one CoT and its parts, for the rollout log.

    Args:
        reward (`float`): accuracy × (leak_factor if leaked else 1) + format.
        accuracy (`float`): acc(ŷ, y), 0.0 when no answer could be read.
        format (`float`): 1.0 when the reconstruction is well formed and its answer readable.
        leaked (`bool`): the CoT gave the answer away (see `rise.leakage.scrub_leakage`).
        answer (`Answer | None`): ŷ in original pixels.
        error (`str | None`): why ŷ could not be read.
    """

    reward: float
    accuracy: float
    format: float
    leaked: bool
    answer: Answer | None
    error: str | None


def score_reconstruction(
    reconstruction: str,
    gold: Any,
    leaked: bool,
    spec: TaskSpec,
    width: int | None = None,
    height: int | None = None,
    *,
    leak_factor: float = DEFAULT_LEAK_FACTOR,
    require_think: bool = False,
    match_labels: bool = True,
) -> ReconstructionScore:
    """Score a reconstruction ŷ against the trusted annotation y; never raises on the reconstruction text.

    Args:
        reconstruction (`str`): what the model wrote when shown the scrubbed CoT.
        gold (`Any`): the trusted annotation y, `rise.tasks` JSON in pixels (string or object).
        leaked (`bool`): whether scrubbing found a leak in the CoT.
        spec (`TaskSpec`): the task; boxes in `reconstruction` are read in `spec.frame`.
        width (`int | None`), height (`int | None`): the original image size (needed for boxes).
        leak_factor (`float`, *optional*, defaults to `0.1`): multiplies the accuracy of a leaking CoT.
        require_think (`bool`, *optional*, defaults to `False`): the reconstruction prompt asks for the answer
            alone, so a think block is not required for the format part.
        match_labels (`bool`, *optional*, defaults to `True`): detection pairs only count when labels agree.

    Returns:
        `ReconstructionScore`: the reward and its parts.

    Raises:
        `ValueError`: `gold` is not a valid answer for the task (trusted data must be), or `leak_factor` is outside
            [0, 1].

    Example:
    >>> spec = TaskSpec("classification", labels=("circle", "square"))
    >>> score_reconstruction("<answer>circle</answer>", "circle", False, spec).reward
    2.0
    >>> score_reconstruction("<answer>circle</answer>", "circle", True, spec).reward
    1.1
    """
    if not 0.0 <= leak_factor <= 1.0:
        raise ValueError(f"leak_factor {leak_factor} should be within [0, 1]; the authors' code uses 0.1")
    gold_answer = normalize_answer(gold, spec, width, height)
    parsed = parse_completion(reconstruction, spec, width, height, require_think=require_think)
    accuracy = 0.0
    if parsed.answer is not None:
        accuracy = answer_accuracy(parsed.answer, gold_answer, spec, match_labels=match_labels)
    format_score = 1.0 if parsed.format_ok and parsed.answer is not None else 0.0
    reward = accuracy * (leak_factor if leaked else 1.0) + format_score
    return ReconstructionScore(reward, accuracy, format_score, bool(leaked), parsed.answer, parsed.error)

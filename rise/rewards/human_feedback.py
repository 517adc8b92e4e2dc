"""The human-feedback reward (docs/design.md §3): agree with what reviewers trusted, avoid what they rejected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rise.rewards.inputs import load_gold, load_gold_list, parse_completions
from rise.rewards.scores import answer_accuracy
from rise.tasks import TaskSpec


def get_human_feedback_reward(
    spec: TaskSpec,
    *,
    agreement_weight: float = 1.0,
    rejection_penalty: float = -1.0,
    match_threshold: float = 0.75,
    match_labels: bool = True,
) -> Callable:
    r"""
    Reward from reviewer verdicts, read from two dataset columns:

    - `trusted_answer`: the accepted or corrected answer for the image (or `None`); the reward adds
      `agreement_weight × accuracy(answer, trusted_answer)`;
    - `rejected_answers`: the answers a reviewer rejected for that image (a list, or a JSON list string; may be
      empty); the reward adds `rejection_penalty` once when the answer matches any of them, that is when its
      accuracy against the rejected answer reaches `match_threshold` (for single labels: the same label).

    An unreadable completion earns 0.0; an example with neither column set gets `None`, which TRL skips.

    Args:
        spec (`TaskSpec`): the task.
        agreement_weight (`float`, *optional*, defaults to `1.0`): weight of the agreement term. Must be >= 0.
        rejection_penalty (`float`, *optional*, defaults to `-1.0`): added when the answer repeats a rejected one.
            Must be non-positive.
        match_threshold (`float`, *optional*, defaults to `0.75`): accuracy at which an answer counts as the same
            as a rejected one (0.75 IoU is also the default RISE-R1 filter threshold for boxes).
        match_labels (`bool`, *optional*, defaults to `True`): detection pairs only count when labels agree.

    Returns:
        `Callable`: `reward(completions, trusted_answer=..., rejected_answers=..., **kwargs) -> list[float | None]`.

    Example:
    >>> reward = get_human_feedback_reward(TaskSpec("classification", labels=("circle", "square", "star")))
    >>> reward(
    ...     ["<answer>square</answer>", "<answer>circle</answer>", "<answer>star</answer>"],
    ...     trusted_answer=["square", "square", None],
    ...     rejected_answers=['["circle"]', '["circle"]', ["circle"]],
    ... )
    [1.0, -1.0, 0.0]
    """
    if agreement_weight < 0:
        raise ValueError(f"agreement_weight {agreement_weight} should not be negative")
    if rejection_penalty > 0:
        raise ValueError(f"rejection_penalty {rejection_penalty} should not be positive")
    if not 0.0 < match_threshold <= 1.0:
        raise ValueError(f"match_threshold {match_threshold} should be within (0, 1]")
    return _HumanFeedbackReward(spec, agreement_weight, rejection_penalty, match_threshold, match_labels)


class _HumanFeedbackReward:
    # Callable class rather than a closure so the reward stays picklable.
    __name__ = "human_feedback_reward"

    def __init__(
        self,
        spec: TaskSpec,
        agreement_weight: float,
        rejection_penalty: float,
        match_threshold: float,
        match_labels: bool,
    ):
        self.spec = spec
        self.agreement_weight = agreement_weight
        self.rejection_penalty = rejection_penalty
        self.match_threshold = match_threshold
        self.match_labels = match_labels

    def __call__(
        self,
        completions: list[Any],
        trusted_answer: list[Any] | None = None,
        rejected_answers: list[Any] | None = None,
        **kwargs,
    ) -> list[float | None]:
        parsed, sizes = parse_completions(self.spec, completions, kwargs)
        trusted_column = trusted_answer if trusted_answer is not None else [None] * len(parsed)
        rejected_column = rejected_answers if rejected_answers is not None else [None] * len(parsed)
        rewards: list[float | None] = []
        for completion, trusted_value, rejected_value, size in zip(
            parsed, trusted_column, rejected_column, sizes, strict=True
        ):
            trusted = load_gold(trusted_value, self.spec, size)
            rejected = load_gold_list(rejected_value, self.spec, size)
            if trusted is None and not rejected:
                rewards.append(None)
                continue
            if completion.answer is None:
                rewards.append(0.0)
                continue
            reward = 0.0
            if trusted is not None:
                reward += self.agreement_weight * self._accuracy(completion.answer, trusted)
            if any(self._accuracy(completion.answer, answer) >= self.match_threshold for answer in rejected):
                reward += self.rejection_penalty
            rewards.append(reward)
        return rewards

    def _accuracy(self, answer: Any, gold: Any) -> float:
        return answer_accuracy(answer, gold, self.spec, match_labels=self.match_labels)

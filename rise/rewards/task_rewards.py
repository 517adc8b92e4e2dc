"""Task rewards in TRL's form: format, accuracy per task, and a penalty for padding detections with extra boxes.

Each `get_*` factory checks its arguments and returns a small callable class with a `__name__` rather than a
closure, so the reward stays picklable (TRL's async rollout workers pickle reward functions). Rewards take
`completions` (conversational `list[list[dict]]` or plain `list[str]`) and dataset columns as keyword arguments:
`solution` (the gold answer, `rise.tasks` JSON in pixels, as a string or object) and the image size (`width` and
`height` columns, or the `image`/`images` column TRL passes on). Unknown keyword arguments are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rise.rewards.inputs import load_gold, parse_completions
from rise.rewards.scores import answer_accuracy
from rise.tasks import TaskSpec, TaskType


def get_format_reward(spec: TaskSpec, *, require_think: bool = True) -> Callable:
    r"""
    Reward 1.0 for a completion that is exactly `<think>…</think><answer>…</answer>` with an answer that reads as a
    valid answer for the task (a known label, a distribution over the labels, boxes in the model's frame), else 0.0.

    Tags around an unreadable answer earn nothing: a small model otherwise learns the tags and nothing else.

    Args:
        spec (`TaskSpec`): the task the answers must fit.
        require_think (`bool`, *optional*, defaults to `True`): `False` accepts a bare `<answer>…</answer>`
            (reconstruction answers).

    Returns:
        `Callable`: `reward(completions, **kwargs) -> list[float]`.

    Example:
    >>> format_reward = get_format_reward(TaskSpec("classification", labels=("circle", "square")))
    >>> format_reward([
    ...     [{"content": "<think>Round.</think><answer>circle</answer>"}],
    ...     [{"content": "<think>Round.</think><answer>oval</answer>"}],
    ...     [{"content": "circle"}],
    ... ])
    [1.0, 0.0, 0.0]
    """
    return _FormatReward(spec, require_think)


class _FormatReward:
    # Callable class rather than a closure so the reward stays picklable.
    __name__ = "format_reward"

    def __init__(self, spec: TaskSpec, require_think: bool):
        self.spec = spec
        self.require_think = require_think

    def __call__(self, completions: list[Any], **kwargs) -> list[float]:
        parsed, _ = parse_completions(self.spec, completions, kwargs, require_think=self.require_think)
        return [1.0 if p.format_ok and p.answer is not None else 0.0 for p in parsed]


def get_accuracy_reward(spec: TaskSpec, *, match_labels: bool = True, length_penalty: bool = False) -> Callable:
    r"""
    The task's accuracy reward (docs/design.md §2), chosen from the spec:

    | task | reward |
    |---|---|
    | classification, one label | 1.0 for the gold label (synonyms and case normalised), else 0.0 |
    | classification, distribution | exp(-0.5 KL(gold ‖ predicted) - 0.5 MSE) |
    | detection | Hungarian-matched IoU sum / max(#gold, #predicted) |
    | grounding | IoU with the gold box |

    A completion without a readable answer scores 0.0; an example whose gold answer is missing or invalid gets
    `None`, which TRL skips.

    Args:
        spec (`TaskSpec`): the task; boxes are read in `spec.frame` and compared in original pixels.
        match_labels (`bool`, *optional*, defaults to `True`): detection pairs only count when labels agree.
        length_penalty (`bool`, *optional*, defaults to `False`): detection scores are also multiplied by
            min(1, #gold / #predicted), VLM-R1's `odLength` factor.

    Returns:
        `Callable`: `reward(completions, solution, **kwargs) -> list[float | None]`.

    Example:
    >>> accuracy = get_accuracy_reward(TaskSpec("grounding"))  # the model writes Qwen2-VL 0..1000 coordinates
    >>> accuracy(
    ...     ["<think>Left half.</think><answer>[0, 0, 500, 1000]</answer>", "<answer>[500, 0, 1000, 1000]</answer>"],
    ...     solution=["[0, 0, 32, 64]", "[0, 0, 32, 64]"], width=[64, 64], height=[64, 64],
    ... )
    [1.0, 0.0]
    """
    if spec.task_type is TaskType.classification:
        return _AccuracyReward(spec, "distribution_reward" if spec.distribution else "label_accuracy_reward")
    if spec.task_type is TaskType.grounding:
        return _AccuracyReward(spec, "grounding_iou_reward")
    return _AccuracyReward(spec, "detection_iou_reward", match_labels=match_labels, length_penalty=length_penalty)


def _require(spec: TaskSpec, condition: bool, wanted: str, instead: str) -> None:
    if not condition:
        raise ValueError(f"This reward scores {wanted}, but the spec is {spec.task_type.value}; use {instead}.")


def get_label_accuracy_reward(spec: TaskSpec) -> Callable:
    """Single-label accuracy: 1.0 when the answer names the gold label, else 0.0 (see `get_accuracy_reward`).

    >>> reward = get_label_accuracy_reward(TaskSpec("classification", labels=("circle", "square")))
    >>> reward(["<think>.</think><answer>Square</answer>", "<answer>circle</answer>"], solution=["square", "square"])
    [1.0, 0.0]
    """
    single = spec.task_type is TaskType.classification and not spec.distribution
    _require(spec, single, "single-label classification", "get_accuracy_reward(spec)")
    return get_accuracy_reward(spec)


def get_distribution_reward(spec: TaskSpec) -> Callable:
    """Distribution accuracy exp(-0.5 KL - 0.5 MSE) (see `get_accuracy_reward`).

    >>> spec = TaskSpec("classification", labels=("joy", "fear"), distribution=True)
    >>> reward = get_distribution_reward(spec)
    >>> reward(['<answer>{"joy": 0.7, "fear": 0.3}</answer>'], solution=['{"joy": 0.7, "fear": 0.3}'])
    [1.0]
    """
    _require(spec, spec.distribution, "label distributions", "TaskSpec(..., distribution=True)")
    return get_accuracy_reward(spec)


def get_detection_iou_reward(spec: TaskSpec, *, match_labels: bool = True, length_penalty: bool = False) -> Callable:
    """Hungarian-matched IoU sum / max(#gold, #predicted) (see `get_accuracy_reward`).

    >>> reward = get_detection_iou_reward(TaskSpec("detection", labels=("circle",), frame="pixels"))
    >>> reward(['<answer>[{"label": "circle", "box": [0, 0, 10, 10]}]</answer>'],
    ...        solution=['[{"label": "circle", "box": [0, 0, 10, 10]}, {"label": "circle", "box": [20, 0, 30, 10]}]'],
    ...        width=[64], height=[64])
    [0.5]
    """
    _require(spec, spec.task_type is TaskType.detection, "detection", "get_accuracy_reward(spec)")
    return get_accuracy_reward(spec, match_labels=match_labels, length_penalty=length_penalty)


def get_grounding_iou_reward(spec: TaskSpec) -> Callable:
    """IoU of the one predicted box with the gold box (see `get_accuracy_reward`)."""
    _require(spec, spec.task_type is TaskType.grounding, "grounding", "get_accuracy_reward(spec)")
    return get_accuracy_reward(spec)


def _score_against_gold(
    spec: TaskSpec,
    completions: list[Any],
    solution: list[Any],
    kwargs: dict[str, Any],
    score: Callable[[Any, Any], float],
) -> list[float | None]:
    """`score(answer, gold)` for each completion with a readable answer, 0.0 for one without, and `None` (which TRL
    skips) for an example whose gold answer is missing or invalid."""
    parsed, sizes = parse_completions(spec, completions, kwargs)
    rewards: list[float | None] = []
    for completion, gold_value, size in zip(parsed, solution, sizes, strict=True):
        gold = load_gold(gold_value, spec, size)
        if gold is None:
            rewards.append(None)
        elif completion.answer is None:
            rewards.append(0.0)
        else:
            rewards.append(score(completion.answer, gold))
    return rewards


class _AccuracyReward:
    # Callable class rather than a closure so the reward stays picklable; the name says which accuracy it is.
    def __init__(self, spec: TaskSpec, name: str, *, match_labels: bool = True, length_penalty: bool = False):
        self.spec = spec
        self.__name__ = name
        self.match_labels = match_labels
        self.length_penalty = length_penalty

    def __call__(self, completions: list[Any], solution: list[Any], **kwargs) -> list[float | None]:
        return _score_against_gold(self.spec, completions, solution, kwargs, self._score)

    def _score(self, answer: Any, gold: Any) -> float:
        return answer_accuracy(
            answer, gold, self.spec, match_labels=self.match_labels, length_penalty=self.length_penalty
        )


def get_box_count_penalty(spec: TaskSpec, *, max_penalty: float = -1.0) -> Callable:
    r"""
    Penalty for padding a detection answer with more boxes than the gold answer has, as an additive reward:
    `max_penalty * (1 - #gold / #predicted)` when the prediction has more boxes, else 0.0 (the multiplicative form
    of VLM-R1's `odLength` is `get_detection_iou_reward(spec, length_penalty=True)`).

    Args:
        spec (`TaskSpec`): a detection task.
        max_penalty (`float`, *optional*, defaults to `-1.0`): the limit approached as boxes are added. Must be
            non-positive.

    Returns:
        `Callable`: `reward(completions, solution, **kwargs) -> list[float | None]`.

    Example:
    >>> penalty = get_box_count_penalty(TaskSpec("detection", labels=("circle",), frame="pixels"), max_penalty=-1.0)
    >>> box = '{"label": "circle", "box": [0, 0, 10, 10]}'
    >>> penalty([f"<answer>[{box}, {box}, {box}, {box}]</answer>", f"<answer>[{box}]</answer>"],
    ...         solution=[f"[{box}]", f"[{box}]"], width=[64, 64], height=[64, 64])
    [-0.75, 0.0]
    """
    _require(spec, spec.task_type is TaskType.detection, "detection", "a detection TaskSpec")
    if max_penalty > 0:
        raise ValueError(f"max_penalty {max_penalty} should not be positive")
    return _BoxCountPenalty(spec, max_penalty)


class _BoxCountPenalty:
    # Callable class rather than a closure so the reward stays picklable.
    __name__ = "box_count_penalty_reward"

    def __init__(self, spec: TaskSpec, max_penalty: float):
        self.spec = spec
        self.max_penalty = max_penalty

    def __call__(self, completions: list[Any], solution: list[Any], **kwargs) -> list[float | None]:
        # Unreadable answers score 0.0 here: they are the format reward's business.
        return _score_against_gold(self.spec, completions, solution, kwargs, self._penalty)

    def _penalty(self, answer: Any, gold: Any) -> float:
        if len(answer) <= len(gold):
            return 0.0
        return self.max_penalty * (1.0 - len(gold) / len(answer))

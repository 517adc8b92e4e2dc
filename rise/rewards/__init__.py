"""Rewards for GRPO in TRL's form (`reward(completions, **dataset_columns) -> list[float | None]`) and the pure
scores behind them. See `task_rewards` (format, accuracy, box count), `reconstruction` (RISE-CoT) and
`human_feedback` (reviewer verdicts)."""

from rise.rewards.human_feedback import get_human_feedback_reward
from rise.rewards.inputs import completion_text, image_sizes, load_gold
from rise.rewards.reconstruction import DEFAULT_LEAK_FACTOR, ReconstructionScore, score_reconstruction
from rise.rewards.scores import answer_accuracy, distribution_score, label_score, matched_iou_score
from rise.rewards.task_rewards import (
    get_accuracy_reward,
    get_box_count_penalty,
    get_detection_iou_reward,
    get_distribution_reward,
    get_format_reward,
    get_grounding_iou_reward,
    get_label_accuracy_reward,
)

__all__ = [
    "DEFAULT_LEAK_FACTOR",
    "ReconstructionScore",
    "answer_accuracy",
    "completion_text",
    "distribution_score",
    "get_accuracy_reward",
    "get_box_count_penalty",
    "get_detection_iou_reward",
    "get_distribution_reward",
    "get_format_reward",
    "get_grounding_iou_reward",
    "get_human_feedback_reward",
    "get_label_accuracy_reward",
    "image_sizes",
    "label_score",
    "load_gold",
    "matched_iou_score",
    "score_reconstruction",
]

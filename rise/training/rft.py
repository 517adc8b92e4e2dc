"""Stage 2, RFT: GRPO on the annotation prompt with the task rewards and the human-feedback reward
(docs/design.md §1, RISE-R1), from the SFT stage's model; from the base model with format + accuracy only, it is the
Visual-RFT baseline.

Rewards (each weighted by its config field; a weight of 0 leaves the reward out):

| reward | from |
|---|---|
| format: `<think>…</think><answer>valid answer</answer>` | `rise.rewards.get_format_reward` |
| accuracy against the trusted answer | `rise.rewards.get_accuracy_reward` |
| length: extra detection boxes (VLM-R1 `odLength`) | `rise.rewards.get_box_count_penalty` |
| length: completions running into the length limit (DAPO) | `trl.rewards.get_soft_overlong_punishment` |
| human feedback: agree with trusted answers, avoid rejected ones | `rise.rewards.get_human_feedback_reward` |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from rise.label_constraint import constrained_labels
from rise.prompts import annotation_messages
from rise.rewards import get_accuracy_reward, get_box_count_penalty, get_format_reward, get_human_feedback_reward
from rise.tasks import TaskSpec, TaskType
from rise.training.config import RFTStageConfig
from rise.training.constrained_grpo import label_constrained_trainer
from rise.training.records import Snapshot
from rise.training.trainer_setup import (
    TRAINER_DIR,
    as_content_parts,
    grpo_arguments,
    load_policy,
    lora_config,
    time_limit_callbacks,
    train_and_save,
)


def rft_dataset(snapshot: Snapshot, *, with_rejections_only: bool = True) -> Dataset:
    """Annotation prompts for GRPO: `prompt`, `image`, `solution` and `trusted_answer` (the answer JSON or null),
    `rejected_answers`, `width`, `height`, `item_id`, `query`.

    Items that only have rejected answers are kept when `with_rejections_only` (the human-feedback reward scores
    them); the Visual-RFT baseline has no use for them.
    """
    spec = snapshot.spec

    def useful(answer: str | None, rejected: str) -> bool:
        return answer is not None or (with_rejections_only and rejected not in ("", "[]"))

    rows = snapshot.train.filter(useful, input_columns=["answer", "rejected_answers"], keep_in_memory=True)

    def to_prompt(answer: str | None, query: str | None) -> dict[str, Any]:
        return {
            "prompt": as_content_parts(annotation_messages(spec, query)),
            "solution": answer,
            "trusted_answer": answer,
        }

    return rows.map(
        to_prompt,
        input_columns=["answer", "query"],
        remove_columns=["answer", "answer_source", "cot"],
        keep_in_memory=True,
    )


def rft_rewards(spec: TaskSpec, config: RFTStageConfig) -> tuple[list[Any], list[float]]:
    """The reward functions and their weights for the config (rewards with weight 0 are left out)."""
    from trl.rewards import get_soft_overlong_punishment

    rewards: list[tuple[Any, float]] = [
        (get_format_reward(spec), config.format_weight),
        (get_accuracy_reward(spec), config.accuracy_weight),
    ]
    if spec.task_type is TaskType.detection:
        rewards.append((get_box_count_penalty(spec), config.length_weight))
    if config.overlong_buffer > 0:
        punishment = get_soft_overlong_punishment(config.max_completion_length, config.overlong_buffer)
        rewards.append((punishment, config.length_weight))
    rewards.append(
        (get_human_feedback_reward(spec, rejection_penalty=config.rejection_penalty), config.human_feedback_weight)
    )
    kept = [(reward, weight) for reward, weight in rewards if weight > 0]
    return [reward for reward, _ in kept], [weight for _, weight in kept]


def train_rft(
    model: str, snapshot: Snapshot, config: RFTStageConfig, stage_dir: Path, *, adapter: str | None = None
) -> dict[str, Any]:
    """GRPO from `model` (plus `adapter`, continued, when the SFT stage trained a LoRA adapter); saves the result to
    `stage_dir/final`.

    Args:
        model (`str`): the starting model: the base model, or the SFT stage's folder after a full fine-tune.
        adapter (`str`, *optional*): the SFT stage's LoRA adapter, trained further here.
    """
    dataset = rft_dataset(snapshot, with_rejections_only=config.human_feedback_weight > 0)
    if len(dataset) == 0:
        raise ValueError(
            "RFT has no data: no training item has a trusted answer or a rejected one. Import ground truth or "
            "review some predictions, then snapshot again."
        )
    reward_funcs, weights = rft_rewards(snapshot.spec, config)
    policy, processor = load_policy(model, config, adapter=adapter)
    args = grpo_arguments(config, stage_dir / TRAINER_DIR, reward_weights=weights)
    callbacks = time_limit_callbacks(config)
    trainer_class = label_constrained_trainer(constrained_labels(snapshot.spec))
    trainer = trainer_class(
        model=policy,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        # An adapter from SFT is continued as it is; otherwise a new one is created (or every weight trains).
        peft_config=None if adapter else lora_config(config),
        callbacks=callbacks,
    )
    summary, final = train_and_save(trainer, processor, callbacks, stage_dir)
    return {
        **summary,
        "items": len(dataset),
        "rewards": [getattr(f, "__name__", type(f).__name__) for f in reward_funcs],
        "reward_weights": weights,
        "final": str(final),
    }

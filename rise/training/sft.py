"""Stage 2, SFT: image + task prompt -> `<think>reasoning</think><answer>y</answer>` (docs/design.md §1, RISE-R1),
from the base model. With `answers_only` the target is `<answer>y</answer>` alone: the SFT baseline.

The prompt is the annotation prompt the app uses (`rise.prompts.annotation_messages`) in both cases, so every model
version is asked the same question at annotation and evaluation time; the baseline simply learns to skip the
reasoning, which the parser accepts (its format check fails, its answer still counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from rise.parsing import format_answer, format_completion
from rise.prompts import annotation_messages
from rise.training.config import SFTStageConfig
from rise.training.cot_filter import SelectedCoT
from rise.training.reading_rows import with_reading_rows
from rise.training.records import Snapshot, load_answer
from rise.training.trainer_setup import (
    TRAINER_DIR,
    as_content_parts,
    load_policy,
    lora_config,
    time_limit_callbacks,
    train_and_save,
    trl_arguments,
)


def sft_dataset(snapshot: Snapshot, selected: list[SelectedCoT] | None, *, answers_only: bool = False) -> Dataset:
    """Prompt-completion rows (`prompt`, `completion`, `image`, `item_id`).

    Args:
        snapshot (`Snapshot`): the training data (answers, images, queries).
        selected (`list[SelectedCoT] | None`): the filter's reasonings; one row per selected item. Ignored with
            `answers_only`, where every training item with a trusted answer is a row.
        answers_only (`bool`): the target is the answer alone.
    """
    spec = snapshot.spec
    cot_of = {s.item_id: s.cot for s in selected or []}
    if not answers_only:
        rows = snapshot.train.filter(lambda item_id: item_id in cot_of, input_columns=["item_id"], keep_in_memory=True)
    else:
        rows = snapshot.train.filter(lambda answer: answer is not None, input_columns=["answer"], keep_in_memory=True)

    def to_example(item_id: int, answer: str, width: int, height: int, query: str | None) -> dict[str, Any]:
        value = load_answer(answer)
        if answers_only:
            target = f"<answer>{format_answer(value, spec, width, height)}</answer>"
        else:
            target = format_completion(cot_of[item_id], value, spec, width, height)
        return {
            "prompt": as_content_parts(annotation_messages(spec, query)),
            "completion": as_content_parts([{"role": "assistant", "content": target}]),
        }

    return rows.map(
        to_example,
        input_columns=["item_id", "answer", "width", "height", "query"],
        remove_columns=["answer", "answer_source", "cot", "rejected_answers", "width", "height", "query"],
        keep_in_memory=True,
    )


def reading_dataset(dataset: Dataset, processor: Any, *, share: float, seed: int) -> Dataset:
    """`dataset` as chat-templated text rows plus reading rows for a `share` of its reasoning rows
    (`rise.training.reading_rows`)."""
    rows = [
        {"prompt": row["prompt"], "target": row["completion"][0]["content"][0]["text"], "image": row["image"],
         "item_id": row["item_id"]}
        for row in dataset
    ]  # fmt: skip
    return Dataset.from_list(with_reading_rows(rows, processor, share=share, seed=seed))


def train_sft(
    model: str, snapshot: Snapshot, config: SFTStageConfig, stage_dir: Path, selected: list[SelectedCoT] | None
) -> dict[str, Any]:
    """Fine-tune `model` on the SFT rows; save the adapter (or whole model) and processor to `stage_dir/final`."""
    from trl import SFTConfig, SFTTrainer

    dataset = sft_dataset(snapshot, selected, answers_only=config.answers_only)
    if len(dataset) == 0:
        what = "training items with a trusted answer" if config.answers_only else "reasonings that passed the filter"
        raise ValueError(
            f"SFT has no data: there are no {what}. Lower the filter's tau, set filter.min_selected (unverified "
            "rationales for a model that does not know the labels yet), review more predictions (accepted "
            "reasonings count), or run RISE-CoT for more steps."
        )
    policy, processor = load_policy(model, config)
    if config.reading_share > 0 and not config.answers_only:
        dataset = reading_dataset(dataset, processor, share=config.reading_share, seed=config.seed)
    args = trl_arguments(
        SFTConfig,
        config,
        stage_dir / TRAINER_DIR,
        max_length=config.max_length,
        completion_only_loss=True,  # learn the answer (and reasoning), not the prompt
    )
    callbacks = time_limit_callbacks(config)
    trainer = SFTTrainer(
        model=policy,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    summary, final = train_and_save(trainer, processor, callbacks, stage_dir)
    return {
        **summary,
        "examples": len(dataset),
        "answers_only": config.answers_only,
        "reading_share": config.reading_share,
        "final": str(final),
    }

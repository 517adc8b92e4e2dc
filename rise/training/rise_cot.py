"""Stage 1, RISE-CoT: GRPO where the completion is the reasoning for (image, trusted annotation) and the reward is
how well the annotation can be reconstructed from the scrubbed reasoning (docs/design.md §1).

    snapshot = load_snapshot("runs/x/data")
    result = train_rise_cot("Qwen/Qwen2-VL-2B-Instruct", snapshot, RiseCoTConfig(), Path("runs/x/rise_cot"))

Every rollout is logged to `<stage_dir>/rollouts/*.jsonl` (item, reasoning, scrubbed reasoning, reconstruction,
reward parts); the filter stage picks the SFT data from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from rise.parsing import format_answer
from rise.prompts import reasoning_messages
from rise.training.config import RiseCoTConfig
from rise.training.reconstruction import PolicyReconstructor, Reconstruct, ReconstructionReward, RolloutLog
from rise.training.records import Snapshot, load_answer
from rise.training.trainer_setup import (
    TRAINER_DIR,
    as_content_parts,
    grpo_arguments,
    load_policy,
    lora_config,
    time_limit_callbacks,
    train_and_save,
)

ROLLOUTS_DIR = "rollouts"


def reasoning_dataset(snapshot: Snapshot) -> Dataset:
    """The RISE-CoT prompts: image + trusted annotation in, reasoning out; one row per training item with an answer.

    Columns: `prompt` (conversational, with one image placeholder), `image`, `solution` (the answer JSON the reward
    scores against), `item_id`, `width`, `height`, `query`.
    """
    spec = snapshot.spec
    # keep_in_memory: the snapshot folder stays read-only (no cache files beside it, none raced by several processes)
    with_answer = snapshot.train.filter(
        lambda answer: answer is not None, input_columns=["answer"], keep_in_memory=True
    )

    def to_prompt(answer: str, width: int, height: int, query: str | None) -> dict[str, Any]:
        answer_text = format_answer(load_answer(answer), spec, width, height)
        return {"prompt": as_content_parts(reasoning_messages(spec, answer_text, query)), "solution": answer}

    return with_answer.map(
        to_prompt,
        input_columns=["answer", "width", "height", "query"],
        remove_columns=["answer", "answer_source", "cot", "rejected_answers"],
        keep_in_memory=True,
    )


def train_rise_cot(
    model: str,
    snapshot: Snapshot,
    config: RiseCoTConfig,
    stage_dir: Path,
    *,
    reconstruct: Reconstruct | None = None,
) -> dict[str, Any]:
    """Train the reasoning policy with the reconstruction reward; save it to `stage_dir/final`.

    Args:
        model (`str`): the starting model (Hub id or folder).
        snapshot (`Snapshot`): the training data; only training items with a trusted answer are used.
        config (`RiseCoTConfig`): the stage's settings.
        stage_dir (`Path`): where the rollouts, the trainer's files and the final model go.
        reconstruct (`Reconstruct`, *optional*): a judge in place of the model (`PolicyReconstructor` by default).

    Returns:
        `dict`: a summary (steps, time, the rollout folder, the final folder, the last logged metrics).
    """
    from trl import GRPOTrainer

    dataset = reasoning_dataset(snapshot)
    if len(dataset) == 0:
        raise ValueError(
            "RISE-CoT needs training items with a trusted annotation (imported, accepted or corrected), and the "
            "snapshot has none. Import ground truth or review some predictions, then snapshot again."
        )
    rollouts = stage_dir / ROLLOUTS_DIR
    policy, processor = load_policy(model, config)
    judge = reconstruct or PolicyReconstructor(
        snapshot.spec,
        processor,
        judge=config.judge,
        frozen_model=model if config.judge == "frozen" else None,
        batch_size=config.reconstruction_batch_size,
        max_new_tokens=config.reconstruction_max_new_tokens,
    )
    args = grpo_arguments(config, stage_dir / TRAINER_DIR)
    # Each process logs to its own file. A restarted stage must not mix its rollouts with a failed run's: this
    # process's old file goes here, the whole folder before the stage starts (`rise.training.pipeline`).
    log_file = rollouts / f"rank-{args.process_index:05d}.jsonl"
    log_file.unlink(missing_ok=True)
    reward = ReconstructionReward(
        snapshot.spec,
        reconstruct=judge,
        reconstruction_input=config.reconstruction_input,
        leak_factor=config.leak_factor,
        rollout_log=RolloutLog(log_file),
    )
    callbacks = time_limit_callbacks(config)
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    if isinstance(judge, PolicyReconstructor):
        judge.trainer = trainer  # the live policy only exists once the trainer has wrapped it
    summary, final = train_and_save(trainer, processor, callbacks, stage_dir)
    return {**summary, "items": len(dataset), "rollouts": str(rollouts), "final": str(final)}

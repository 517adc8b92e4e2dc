"""Stage 1, RISE-CoT: GRPO where the completion is the reasoning for (image, trusted annotation) and the reward is
how well the annotation can be reconstructed from the scrubbed reasoning (docs/design.md §1); or, as the authors'
code trains it (`grpo_completion="reconstruction"`, `rise.training.reconstruction_grpo`), where the reasonings are
sampled without gradient and the completion is the policy's own reconstruction from each.

    snapshot = load_snapshot("runs/x/data")
    result = train_rise_cot("Qwen/Qwen2-VL-2B-Instruct", snapshot, RiseCoTConfig(), Path("runs/x/rise_cot"))

Every rollout is logged to `<stage_dir>/rollouts/*.jsonl` (item, reasoning, scrubbed reasoning, reconstruction,
reward parts); the filter stage picks the SFT data from them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset

from rise.annotate import GenerationSettings
from rise.leakage import scrub_leakage
from rise.parsing import format_answer
from rise.prompts import reasoning_messages, reconstruction_messages
from rise.tasks import TaskSpec
from rise.training.config import RiseCoTConfig
from rise.training.reconstruction import PolicyReconstructor, Reconstruct, ReconstructionReward, RolloutLog
from rise.training.reconstruction_grpo import READS_IMAGE, ReconstructionAnswerReward, reconstructing_trainer
from rise.training.records import WRITTEN_SOURCE, Snapshot, load_answer
from rise.training.trainer_setup import (
    TRAINER_DIR,
    as_content_parts,
    grpo_arguments,
    load_policy,
    lora_config,
    save_final,
    time_limit_callbacks,
    train_and_save,
    trl_arguments,
)

ROLLOUTS_DIR = "rollouts"
WRITTEN_DIR = "written"  # `written/final`: the model that learnt the reviewers' written reasonings, where GRPO starts


def reasoning_dataset(snapshot: Snapshot) -> Dataset:
    """The RISE-CoT prompts: image + trusted annotation in, reasoning out; one row per training item with an answer.

    Columns: `prompt` (conversational, with one image placeholder), `image`, `solution` (the answer JSON the reward
    scores against), `item_id`, `width`, `height`, `query`.
    """
    # keep_in_memory: the snapshot folder stays read-only (no cache files beside it, none raced by several processes)
    with_answer = snapshot.train.filter(
        lambda answer: answer is not None, input_columns=["answer"], keep_in_memory=True
    )
    return with_answer.map(
        _reasoning_prompt(snapshot),
        input_columns=["answer", "width", "height", "query"],
        remove_columns=["answer", "answer_source", "cot", "rejected_answers"],
        keep_in_memory=True,
    )


def written_reasoning_dataset(snapshot: Snapshot, *, judge_rows: bool = False) -> Dataset:
    """The RISE-CoT prompts of the items whose reasoning a reviewer wrote, each with that reasoning as the target:
    columns `prompt`, `completion` (`<think>reasoning</think>`), `image`, `item_id`.

    `judge_rows`: also one reconstruction row per item, the reasoning scrubbed as the reward scrubs it (and the
    image) in, the reviewer's answer out, so the model that learns to write the reviewers' form learns to read it
    too. It is the `base` judge (the policy with its adapter off), and a judge that reads the steps lets a rollout
    qualify only where its steps lead to its label: one that never learnt the rule passes wrong steps as readily.
    """
    written = snapshot.train.filter(
        lambda answer, source, cot: answer is not None and source == WRITTEN_SOURCE and bool((cot or "").strip()),
        input_columns=["answer", "answer_source", "cot"],
        keep_in_memory=True,
    )
    spec, to_prompt = snapshot.spec, _reasoning_prompt(snapshot)

    def to_examples(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {"prompt": [], "completion": [], "image": [], "item_id": []}
        for answer, width, height, query, cot, image, item_id in zip(
            *(batch[name] for name in ("answer", "width", "height", "query", "cot", "image", "item_id")), strict=True
        ):
            reasoning = as_content_parts([{"role": "assistant", "content": f"<think>{cot.strip()}</think>"}])
            pairs = [(to_prompt(answer, width, height, query)["prompt"], reasoning)]
            if judge_rows:
                answer_text = format_answer(load_answer(answer), spec, width, height)
                prompt = reconstruction_messages(spec, scrub_leakage(cot.strip(), spec).text, query)
                reconstruction = [{"role": "assistant", "content": f"<answer>{answer_text}</answer>"}]
                pairs.append((as_content_parts(prompt), as_content_parts(reconstruction)))
            for prompt, completion in pairs:
                rows["prompt"].append(prompt)
                rows["completion"].append(completion)
                rows["image"].append(image)
                rows["item_id"].append(item_id)
        return rows

    return written.map(to_examples, batched=True, remove_columns=written.column_names, keep_in_memory=True)


def _reasoning_prompt(snapshot: Snapshot) -> Callable[[str, int, int, str | None], dict[str, Any]]:
    """Maps a row's answer, size and query to its RISE-CoT `prompt` and the `solution` the reward scores against."""
    spec = snapshot.spec

    def to_prompt(answer: str, width: int, height: int, query: str | None) -> dict[str, Any]:
        answer_text = format_answer(load_answer(answer), spec, width, height)
        return {"prompt": as_content_parts(reasoning_messages(spec, answer_text, query)), "solution": answer}

    return to_prompt


def imitate_written_reasonings(model: str, written: Dataset, config: RiseCoTConfig, out: Path) -> Path:
    """`config.written_reasoning_steps` supervised steps of every weight of `model` on the reasonings reviewers wrote
    (`written_reasoning_dataset`); the trained model and its processor are saved to `out/final`, which is returned.

    Every weight, because an adapter on the layers cannot make a small model write a token it never wrote before:
    the demo model, taught "cool" (" c", "oo", "l") through LoRA, kept sampling a random token for "oo".
    """
    from trl import SFTConfig, SFTTrainer

    policy, processor = load_policy(model, config)  # as it starts, before any adapter
    args = trl_arguments(
        SFTConfig,
        config,
        out,
        learning_rate=config.written_reasoning_learning_rate,
        max_steps=config.written_reasoning_steps,
        per_device_train_batch_size=min(8, len(written)),
        save_strategy="no",
        completion_only_loss=True,
    )
    trainer = SFTTrainer(model=policy, args=args, train_dataset=written, processing_class=processor)
    trainer.train()
    return save_final(trainer, processor, out)


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
        `dict`: a summary (steps, time, the rollout folder, the final folder, the last logged metrics, the model
        GRPO started from: `model`, or the model that learnt the reviewers' written reasonings, and whether the judge
        learnt to read them).
    """
    dataset = reasoning_dataset(snapshot)
    if len(dataset) == 0:
        raise ValueError(
            "RISE-CoT needs training items with a trusted annotation (imported, accepted or corrected), and the "
            "snapshot has none. Import ground truth or review some predictions, then snapshot again."
        )
    rollouts = stage_dir / ROLLOUTS_DIR
    start, imitated, judge_rows = model, 0, False
    if config.written_reasoning_steps:
        # Only the base judge, or a policy that reconstructs itself, is the model these steps train; a cot_only
        # judge reads no image, and a batch of prompts with and without one is not what the trainer's collator takes.
        trained_judge = config.judge == "base" or config.grpo_completion == "reconstruction"
        judge_rows = config.written_reasoning_judge and trained_judge and config.reconstruction_input != "cot_only"
        written = written_reasoning_dataset(snapshot, judge_rows=judge_rows)
        imitated = len(set(written["item_id"])) if len(written) else 0  # an empty map has no columns
        if imitated:
            start = str(imitate_written_reasonings(model, written, config, stage_dir / WRITTEN_DIR))
    policy, processor = load_policy(start, config)
    args = grpo_arguments(config, stage_dir / TRAINER_DIR, **_completion_sampling(config))
    # Each process logs to its own file. A restarted stage must not mix its rollouts with a failed run's: this
    # process's old file goes here, the whole folder before the stage starts (`rise.training.pipeline`).
    log_file = rollouts / f"rank-{args.process_index:05d}.jsonl"
    log_file.unlink(missing_ok=True)
    trainer_class, reward, judge = _trainer_and_reward(snapshot.spec, processor, config, model, log_file, reconstruct)
    callbacks = time_limit_callbacks(config)
    trainer = trainer_class(
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
    return {
        **summary, "items": len(dataset), "written_reasonings": imitated,
        "judge_read_written": judge_rows and imitated > 0, "started_from": start,
        "grpo_completion": config.grpo_completion, "rollouts": str(rollouts), "final": str(final),
    }  # fmt: skip


def _completion_sampling(config: RiseCoTConfig) -> dict[str, Any]:
    """TRL's sampling settings where its completions are reconstructions: the reasoning's are the config's own."""
    if config.grpo_completion == "reasoning":
        return {}
    return {
        "temperature": config.reconstruction_temperature,
        "max_completion_length": config.reconstruction_max_new_tokens,
    }


def _trainer_and_reward(
    spec: TaskSpec,
    processor: Any,
    config: RiseCoTConfig,
    model: str,
    log_file: Path,
    reconstruct: Reconstruct | None,
) -> tuple[type, Any, Reconstruct | None]:
    """The GRPO trainer class, its reward and the judge (None where the policy itself learns to reconstruct)."""
    if config.grpo_completion == "reconstruction":
        if reconstruct is not None:
            raise ValueError(
                "grpo_completion='reconstruction' trains the policy to reconstruct; a separate judge has no part in "
                "it. Leave reconstruct unset, or use grpo_completion='reasoning'."
            )
        reasoning = GenerationSettings(
            batch_size=config.reconstruction_batch_size,
            max_new_tokens=config.max_completion_length,
            temperature=config.temperature,
            seed=None,
        )
        with_image = READS_IMAGE[config.reconstruction_input]
        trainer_class = reconstructing_trainer(spec, reasoning=reasoning, with_image=with_image)
        answer_reward = ReconstructionAnswerReward(
            spec,
            reconstruction_input=config.reconstruction_input,
            leak_factor=config.leak_factor,
            rollout_log=RolloutLog(log_file),
        )
        return trainer_class, answer_reward, None
    from trl import GRPOTrainer

    judge = reconstruct or PolicyReconstructor(
        spec,
        processor,
        judge=config.judge,
        frozen_model=model if config.judge == "frozen" else None,
        batch_size=config.reconstruction_batch_size,
        max_new_tokens=config.reconstruction_max_new_tokens,
    )
    reward = ReconstructionReward(
        spec,
        reconstruct=judge,
        reconstruction_input=config.reconstruction_input,
        leak_factor=config.leak_factor,
        rollout_log=RolloutLog(log_file),
    )
    return GRPOTrainer, reward, judge

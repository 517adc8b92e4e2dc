"""The RISE-CoT reward: scrub the reasoning, reconstruct the annotation from it, score the reconstruction.

    reconstructor = PolicyReconstructor(spec, processor, judge="base")
    reward = ReconstructionReward(spec, reconstruct=reconstructor, rollout_log=RolloutLog(path))
    trainer = GRPOTrainer(model, reward_funcs=[reward], ...)
    reconstructor.trainer = trainer          # the live policy is reached through the trainer, once it exists

The reward takes any `reconstruct` callable (requests in, reconstruction texts out), so a test or a benchmark can
put a deterministic judge in place of the model without touching TRL. `PolicyReconstructor` is the real one: it
generates greedily with the live policy, the policy with its LoRA adapter disabled, or a frozen copy of the starting
model (docs/design.md §1, "The judge drifts").
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from rise.annotate import Completion, GenerationSettings, generate_completions
from rise.label_constraint import constrained_labels
from rise.leakage import scrub_leakage
from rise.parsing import extract_reasoning
from rise.prompts import reconstruction_messages
from rise.rewards import (
    DEFAULT_LEAK_FACTOR,
    ReconstructionScore,
    completion_text,
    image_sizes,
    score_reconstruction,
)
from rise.tasks import TaskSpec
from rise.training.config import JUDGES, RECONSTRUCTION_INPUTS


@dataclass(frozen=True)
class ReconstructionRequest:
    """One reconstruction to make: the (scrubbed) reasoning, the image unless the judge reads the reasoning alone,
    and the grounding query."""

    cot: str
    image: Image.Image | None = None
    query: str | None = None


Reconstruct = Callable[[Sequence[ReconstructionRequest]], list[str]]


class PolicyReconstructor:
    """Reconstructs annotations with the model being trained (or a frozen copy), greedily and without gradients.

    TRL calls reward functions with gradients enabled and the model in train mode: generation here runs under
    `torch.inference_mode` (inside `generate_completions`) with the model switched to `eval()`, and `train()` is
    restored in a `finally`. `use_cache=True` is passed to `generate`, since training configs often switch the KV
    cache off.

    Args:
        spec (`TaskSpec`): the task; its reconstruction prompt comes from `rise.prompts.reconstruction_messages`.
        processor: the model's processor (left padding).
        judge (`str`): "base" (the policy with its LoRA adapter disabled), "policy" (the live policy) or "frozen"
            (a copy of the starting model loaded from `frozen_model`, never trained).
        frozen_model (`str`, *optional*): model id or folder of the frozen judge; required for `judge="frozen"`.
        batch_size (`int`): reconstructions per `generate` call.
        max_new_tokens (`int`): longest reconstruction.
        trainer: the TRL trainer, set after it is constructed; the live policy is its model, unwrapped
            (`trl.models.unwrap_model_for_generation`, i.e. `trainer.accelerator.unwrap_model` plus ZeRO-3 gathering).
    """

    def __init__(
        self,
        spec: TaskSpec,
        processor: Any,
        *,
        judge: str = "base",
        frozen_model: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 128,
    ):
        if judge not in JUDGES:
            raise ValueError(f"Unknown judge {judge!r}; choose one of {', '.join(JUDGES)}.")
        if judge == "frozen" and not frozen_model:
            raise ValueError("judge='frozen' needs frozen_model, the model id or folder to copy, e.g. the base model.")
        self.spec = spec
        self.processor = processor
        self.judge = judge
        self.frozen_model = frozen_model
        # Greedy: the judge must score the reasoning, not its own sampling luck.
        self.settings = GenerationSettings(
            batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=0.0, seed=None
        )
        self.trainer: Any = None
        self._frozen: Any = None
        # A classification judge answers from the labels (rise.label_constraint), as the annotating model does.
        self._labels = constrained_labels(spec)

    def __call__(self, requests: Sequence[ReconstructionRequest]) -> list[str]:
        if not requests:
            return []
        conversations = [
            reconstruction_messages(self.spec, r.cot, r.query, with_image=r.image is not None) for r in requests
        ]
        with self._judge_model() as model:
            completions = generate_in_eval_mode(
                model, self.processor, conversations, [r.image for r in requests], self.settings,
                [self._labels] * len(requests), answer_first=True,
            )  # fmt: skip
        return [samples[0].text for samples in completions]

    @contextlib.contextmanager
    def _judge_model(self) -> Iterator[Any]:
        if self.trainer is None:
            raise RuntimeError(
                "PolicyReconstructor.trainer is not set: assign the GRPOTrainer to it after constructing the trainer."
            )
        accelerator = self.trainer.accelerator
        if self.judge == "frozen":
            yield self._frozen_judge(accelerator.device)
            return
        with unwrapped_policy(self.trainer) as policy:
            if self.judge == "policy":
                yield policy
                return
            if not hasattr(policy, "disable_adapter"):
                raise ValueError(
                    "judge='base' needs a LoRA-trained policy (it reconstructs with the adapter disabled), but the "
                    "policy has no adapter. Set judge='frozen' or train with use_lora=True."
                )
            with policy.disable_adapter():
                yield policy

    def _frozen_judge(self, device: Any) -> Any:
        if self._frozen is None:
            from rise.modeling import load_model_and_processor

            policy = self.trainer.accelerator.unwrap_model(self.trainer.model)
            dtype = next(policy.parameters()).dtype
            self._frozen, _ = load_model_and_processor(self.frozen_model, device=str(device), dtype=dtype)
            self._frozen.requires_grad_(False)
        return self._frozen


def generate_in_eval_mode(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    images: Sequence[Image.Image | None],
    settings: GenerationSettings,
    answer_labels: Sequence[Sequence[str] | None] | None = None,
    *,
    answer_first: bool = False,
) -> list[list[Completion]]:
    """`rise.annotate.generate_completions` over `settings.batch_size` conversations at a time, inside a training
    step: TRL trains (and calls rewards) with the model in train mode, so it is switched to `eval()` for the
    generation and back to `train()` afterwards."""
    was_training = model.training
    model.eval()
    try:
        completions: list[list[Completion]] = []
        for start in range(0, len(conversations), settings.batch_size):
            end = start + settings.batch_size
            labels = answer_labels[start:end] if answer_labels is not None else None
            completions += generate_completions(
                model, processor, conversations[start:end], images[start:end], settings, labels,
                answer_first=answer_first,
            )  # fmt: skip
        return completions
    finally:
        if was_training:
            model.train()


@contextlib.contextmanager
def unwrapped_policy(trainer: Any) -> Iterator[Any]:
    """The trainer's live policy, ready to generate: TRL's own helper unwraps DDP, gathers ZeRO-3 shards and pauses
    gradient checkpointing (which would switch the KV cache off) for the duration."""
    from trl.models import unwrap_model_for_generation

    checkpointing = getattr(getattr(trainer, "args", None), "gradient_checkpointing_kwargs", None)
    with unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gradient_checkpointing_kwargs=checkpointing
    ) as model:
        yield model


class RolloutLog:
    """Appends one JSON line per rollout; stage 2's filter reads them back (`read_rollouts`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def read_rollouts(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Every rollout logged under `folder` (one JSONL file per training process); a torn last line is skipped."""
    for path in sorted(Path(folder).glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a run killed mid-write leaves half a line; the rest of the log is still good


def _column(kwargs: dict[str, Any], name: str, count: int) -> list[Any]:
    values = kwargs.get(name)
    return list(values) if values is not None else [None] * count


def _first_image(value: Any) -> Image.Image | None:
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


class ReconstructionReward:
    r"""
    The RISE-CoT reward of each reasoning: r = acc(ŷ, y) × (leak_factor if the reasoning leaked) + format(ŷ).

    Each completion is read as reasoning (`rise.parsing.extract_reasoning`), scrubbed of what would give the
    annotation away (`rise.leakage.scrub_leakage`), and handed to `reconstruct`; the reconstruction ŷ is scored
    against the trusted annotation y (the `solution` column). With `reconstruction_input="information_gain"` the
    accuracy term becomes acc(image + reasoning) − acc(image + empty reasoning), the empty reasoning reconstructed
    once per image.

    Reward parts go to TRL's logs through `log_metric` (`rise/leak_rate`, `rise/reconstruction_accuracy`,
    `rise/reconstruction_format`, and `rise/empty_cot_accuracy` for the information gain), and every rollout to the
    `rollout_log`.

    Args:
        spec (`TaskSpec`): the task.
        reconstruct (`Reconstruct`): requests in, reconstruction texts out (`PolicyReconstructor`, or any callable).
        reconstruction_input (`str`): "image_and_cot" (the paper), "cot_only" or "information_gain".
        leak_factor (`float`): multiplies the accuracy of a leaking reasoning.
        rollout_log (`RolloutLog`, *optional*): where every rollout is written.

    Returns from a call:
        `list[float | None]`: one reward per completion; `None` (skipped by TRL) where the gold answer is invalid.
    """

    __name__ = "reconstruction_reward"

    def __init__(
        self,
        spec: TaskSpec,
        *,
        reconstruct: Reconstruct,
        reconstruction_input: str = "image_and_cot",
        leak_factor: float = DEFAULT_LEAK_FACTOR,
        rollout_log: RolloutLog | None = None,
    ):
        if reconstruction_input not in RECONSTRUCTION_INPUTS:
            choices = ", ".join(RECONSTRUCTION_INPUTS)
            raise ValueError(f"Unknown reconstruction_input {reconstruction_input!r}; choose one of {choices}.")
        if not 0.0 <= leak_factor <= 1.0:
            raise ValueError(f"leak_factor {leak_factor} should be within [0, 1]; the authors' code uses 0.1")
        self.spec = spec
        self.reconstruct = reconstruct
        self.reconstruction_input = reconstruction_input
        self.leak_factor = leak_factor
        self.rollout_log = rollout_log

    def __call__(self, completions: list[Any], solution: list[Any], **kwargs: Any) -> list[float | None]:
        count = len(completions)
        texts = [completion_text(c) for c in completions]
        cots = [extract_reasoning(text) for text in texts]
        scrubbed = [scrub_leakage(cot, self.spec) for cot in cots]
        sizes = image_sizes(count, self.spec, kwargs)
        images = [_first_image(v) for v in _column(kwargs, "image", count)]
        if not any(images):
            images = [_first_image(v) for v in _column(kwargs, "images", count)]
        queries = _column(kwargs, "query", count)
        item_ids = _column(kwargs, "item_id", count)

        with_image = self.reconstruction_input != "cot_only"
        requests = [
            ReconstructionRequest(cot=s.text, image=image if with_image else None, query=query)
            for s, image, query in zip(scrubbed, images, queries, strict=True)
        ]
        reconstructions = self.reconstruct(requests)
        if len(reconstructions) != count:
            raise ValueError(f"reconstruct returned {len(reconstructions)} texts for {count} requests")
        baselines = self._empty_cot_accuracies(solution, images, queries, item_ids, sizes)

        rewards: list[float | None] = []
        rows: list[dict[str, Any]] = []
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        for i in range(count):
            width, height = sizes[i] or (None, None)
            try:
                score = score_reconstruction(
                    reconstructions[i], solution[i], scrubbed[i].leaked, self.spec, width, height,
                    leak_factor=self.leak_factor,
                )  # fmt: skip
            except ValueError:
                rewards.append(None)  # an invalid trusted answer is a data problem, not this reasoning's fault
                continue
            reward = score.reward
            baseline = baselines[i] if baselines is not None else None
            if baseline is not None:
                factor = self.leak_factor if score.leaked else 1.0
                reward = (score.accuracy - baseline) * factor + score.format
            rewards.append(reward)
            rows.append(
                rollout_row(
                    step, item_ids[i], texts[i], cots[i], scrubbed[i].text, reconstructions[i], score, reward,
                    solution[i], self.reconstruction_input, empty_cot_accuracy=baseline,
                )
            )  # fmt: skip
        log_rollouts(rows, self.rollout_log, kwargs.get("log_metric"))
        return rewards

    def _empty_cot_accuracies(
        self,
        solution: list[Any],
        images: list[Image.Image | None],
        queries: list[str | None],
        item_ids: list[Any],
        sizes: list[tuple[int, int] | None],
    ) -> list[float | None] | None:
        """acc(image + empty reasoning) per completion, reconstructed once per distinct item (information gain)."""
        if self.reconstruction_input != "information_gain":
            return None
        # Rows of the same item share one baseline; rows without an id are their own item.
        keys = [item_id if item_id is not None else f"row-{i}" for i, item_id in enumerate(item_ids)]
        first_of: dict[Any, int] = {}
        for i, key in enumerate(keys):
            first_of.setdefault(key, i)
        unique = list(first_of)
        requests = [ReconstructionRequest("", images[first_of[k]], queries[first_of[k]]) for k in unique]
        accuracy_of: dict[Any, float | None] = {}
        for key, text in zip(unique, self.reconstruct(requests), strict=True):
            i = first_of[key]
            width, height = sizes[i] or (None, None)
            try:
                accuracy_of[key] = score_reconstruction(text, solution[i], False, self.spec, width, height).accuracy
            except ValueError:
                accuracy_of[key] = None
        return [accuracy_of[key] for key in keys]


def rollout_row(
    step: int | None,
    item_id: Any,
    completion: str,
    cot: str,
    scrubbed_cot: str,
    reconstruction: str,
    score: ReconstructionScore,
    reward: float,
    answer: Any,
    reconstruction_input: str,
    *,
    empty_cot_accuracy: float | None = None,
) -> dict[str, Any]:
    """One rollout as the log keeps it and the filter reads it: the reasoning (`completion`, its `cot` and the
    scrubbed text the judge read), the reconstruction and its score, the reward and the trusted `answer`."""
    return {
        "step": step,
        "item_id": item_id,
        "completion": completion,
        "cot": cot,
        "scrubbed_cot": scrubbed_cot,
        "leaked": score.leaked,
        "reconstruction": reconstruction,
        "reconstructed_answer": score.answer,
        "reconstruction_error": score.error,
        "accuracy": score.accuracy,
        "format": score.format,
        "empty_cot_accuracy": empty_cot_accuracy,
        "reward": reward,
        "answer": answer,
        "reconstruction_input": reconstruction_input,
    }


def log_rollouts(
    rows: list[dict[str, Any]], rollout_log: RolloutLog | None, log_metric: Callable[[str, float], None] | None
) -> None:
    """Write `rows` to the rollout log and their reward parts to TRL's logs (`rise/leak_rate`,
    `rise/reconstruction_accuracy`, `rise/reconstruction_format`, `rise/empty_cot_accuracy`)."""
    if rollout_log is not None and rows:
        rollout_log.write(rows)
    if log_metric is None or not rows:
        return
    log_metric("rise/leak_rate", sum(r["leaked"] for r in rows) / len(rows))
    log_metric("rise/reconstruction_accuracy", sum(r["accuracy"] for r in rows) / len(rows))
    log_metric("rise/reconstruction_format", sum(r["format"] for r in rows) / len(rows))
    empties = [r["empty_cot_accuracy"] for r in rows if r["empty_cot_accuracy"] is not None]
    if empties:
        log_metric("rise/empty_cot_accuracy", sum(empties) / len(empties))

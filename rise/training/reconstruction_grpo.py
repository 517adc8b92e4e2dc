"""RISE-CoT as the authors' code trains it (`rise_cot.grpo_completion="reconstruction"`, docs/design.md §1): the
policy samples its reasonings for (image, trusted annotation) without gradient, and GRPO's completion is the policy's
reconstruction of the annotation from each scrubbed reasoning.

A group is the G reconstructions of one image, each from a different reasoning, so the group's rewards still rank the
reasonings by whether the annotation can be read back from them, and the filter still picks the best one per item.
What the gradient teaches is the reading: the policy is the judge, and it learns from the trusted annotations what a
reasoning implies, where the reasoning-completion form's judge never learns and scores at chance on a rule it does
not know. The reasonings themselves move only through the weights the two prompts share.

Every rollout is logged in the reasoning-completion form's schema (`rise.training.reconstruction.rollout_row`), so
the filter reads either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rise.annotate import GenerationSettings
from rise.label_constraint import constrained_labels
from rise.leakage import scrub_leakage
from rise.parsing import extract_reasoning
from rise.prompts import reconstruction_messages
from rise.rewards import DEFAULT_LEAK_FACTOR, completion_text, image_sizes, score_reconstruction
from rise.tasks import TaskSpec
from rise.training.constrained_grpo import label_constrained_trainer
from rise.training.reconstruction import (
    RolloutLog,
    generate_in_eval_mode,
    log_rollouts,
    rollout_row,
    unwrapped_policy,
)
from rise.training.trainer_setup import as_content_parts

READS_IMAGE = {"image_and_cot": True, "cot_only": False}  # the reconstruction inputs this form can train


def reconstructing_trainer(spec: TaskSpec, *, reasoning: GenerationSettings, with_image: bool) -> type:
    """A GRPO trainer class whose rows go in as RISE-CoT reasoning prompts and are trained as reconstructions.

    Before TRL generates, each row's reasoning is sampled from the live policy (`reasoning`: its batch size, length
    and temperature), scrubbed (`rise.leakage.scrub_leakage`), and the row's prompt replaced by the reconstruction
    prompt (`rise.prompts.reconstruction_messages`, with the image unless `with_image` is False). The reasoning, its
    scrubbed text and whether it leaked ride along as columns, which TRL hands to the reward
    (`ReconstructionAnswerReward`).
    A classification answer is decoded from the labels, as the annotating model's is.
    """
    base = label_constrained_trainer(constrained_labels(spec), answer_first=True)

    class ReconstructingGRPOTrainer(base):  # type: ignore[misc, valid-type]
        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            return super()._generate_and_score_completions(self._reconstruction_rows(inputs))

        def _reconstruction_rows(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            with unwrapped_policy(self) as policy:
                samples = generate_in_eval_mode(
                    policy, self.processing_class, [row["prompt"] for row in inputs],
                    [row.get("image") for row in inputs], reasoning,
                )  # fmt: skip
            rows = []
            for row, (sample,) in zip(inputs, samples, strict=True):
                cot = extract_reasoning(sample.text)
                scrubbed = scrub_leakage(cot, spec)
                prompt = reconstruction_messages(spec, scrubbed.text, row.get("query"), with_image=with_image)
                rebuilt = {
                    **row, "prompt": as_content_parts(prompt), "reasoning_completion": sample.text, "cot": cot,
                    "scrubbed_cot": scrubbed.text, "leaked": scrubbed.leaked,
                }  # fmt: skip
                if not with_image:
                    rebuilt.pop("image", None)  # TRL would put the image back into a prompt that reads none
                rows.append(rebuilt)
            return rows

    return ReconstructingGRPOTrainer


class ReconstructionAnswerReward:
    r"""
    The reward of a reconstruction GRPO trains: r = acc(ŷ, y) × (leak_factor if its reasoning leaked) + format(ŷ),
    the completion ŷ scored against the trusted annotation y (the `solution` column), as the reasoning-completion
    form scores its judge's reconstruction (`rise.rewards.score_reconstruction`).

    Reward parts go to TRL's logs and every rollout, with the reasoning it was read from, to `rollout_log`.

    Returns from a call:
        `list[float | None]`: one reward per completion; `None` (skipped by TRL) where the gold answer is invalid.
    """

    __name__ = "reconstruction_reward"

    def __init__(
        self,
        spec: TaskSpec,
        *,
        reconstruction_input: str = "image_and_cot",
        leak_factor: float = DEFAULT_LEAK_FACTOR,
        rollout_log: RolloutLog | None = None,
    ):
        if reconstruction_input not in READS_IMAGE:
            raise ValueError(
                f"A trained reconstruction reads {' or '.join(READS_IMAGE)}, not {reconstruction_input!r}."
            )
        self.spec = spec
        self.reconstruction_input = reconstruction_input
        self.leak_factor = leak_factor
        self.rollout_log = rollout_log

    def __call__(
        self,
        completions: list[Any],
        solution: list[Any],
        reasoning_completion: Sequence[str],
        cot: Sequence[str],
        scrubbed_cot: Sequence[str],
        leaked: Sequence[bool],
        **kwargs: Any,
    ) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        sizes = image_sizes(len(texts), self.spec, kwargs)
        item_ids = kwargs.get("item_id") or [None] * len(texts)
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        rewards: list[float | None] = []
        rows: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            width, height = sizes[i] or (None, None)
            try:
                score = score_reconstruction(
                    text, solution[i], leaked[i], self.spec, width, height, leak_factor=self.leak_factor
                )
            except ValueError:
                rewards.append(None)  # an invalid trusted answer is a data problem, not this reasoning's fault
                continue
            rewards.append(score.reward)
            rows.append(
                rollout_row(
                    step, item_ids[i], reasoning_completion[i], cot[i], scrubbed_cot[i], text, score, score.reward,
                    solution[i], self.reconstruction_input,
                )
            )  # fmt: skip
        log_rollouts(rows, self.rollout_log, kwargs.get("log_metric"))
        return rewards

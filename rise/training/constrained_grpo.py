"""GRPO whose rollouts answer from the task's labels, as the annotating model does (`rise.label_constraint`).

A policy that answers outside its label list earns the same zero accuracy on every rollout of a group, so GRPO's
advantages are all zero and nothing is learnt. Decoding each rollout's answer from the labels gives the group a
spread to learn from, and trains the policy under the same decoding it will annotate with. The loss still uses the
policy's own, unconstrained log-probabilities, so the gradient also raises the listed labels' probability.

The annotation-shaped stage (RFT) is constrained, and RISE-CoT where its completions are reconstructions
(`rise.training.reconstruction_grpo`); where RISE-CoT's completions are reasoning, which must not state the label,
its judge restricts its own answers (`rise.training.reconstruction.PolicyReconstructor`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from transformers import LogitsProcessorList

from rise.label_constraint import LabelAnswerConstraint


def label_constrained_trainer(labels: Sequence[str] | None, *, answer_first: bool = False) -> type:
    """TRL's `GRPOTrainer`, or a subclass whose rollouts answer from `labels` when there are any; `answer_first`:
    the rollouts are the answer alone (a reconstruction), constrained from their first token."""
    from trl import GRPOTrainer

    if not labels:
        return GRPOTrainer
    answer_labels = tuple(labels)

    class LabelConstrainedGRPOTrainer(GRPOTrainer):
        def _generate_single_turn(self, prompt_ids: list, *args: Any, **kwargs: Any) -> Any:
            policy = self.accelerator.unwrap_model(self.model_wrapped)
            constraint = LabelAnswerConstraint(
                self._tokenizer,
                [answer_labels] * len(prompt_ids),
                end_ids=self.eos_token_ids,
                answer_first=answer_first,
            )
            with _generate_with(policy, constraint):
                return super()._generate_single_turn(prompt_ids, *args, **kwargs)

    return LabelConstrainedGRPOTrainer


@contextlib.contextmanager
def _generate_with(model: Any, constraint: LabelAnswerConstraint) -> Iterator[None]:
    """`model.generate` with the constraint added, for the length of one rollout batch. TRL calls `generate` itself
    and has no hook for logits processors, so the bound method is wrapped on this instance and then removed."""
    model.generate = functools.partial(model.generate, logits_processor=LogitsProcessorList([constraint]))
    try:
        yield
    finally:
        del model.generate

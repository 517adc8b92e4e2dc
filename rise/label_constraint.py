"""Classification answers decoded from the task's label list only.

A small or freshly adapted model often reasons well and then answers with a word that is not a label ("small" for
a square, a made-up string for a new project's class). Such an answer is lost to the reviewer, and to GRPO it is a
reward of zero on every rollout, so the group has no spread to learn from. `LabelAnswerConstraint` lets the model
reason freely; once it closes `</think>` (or opens `<answer>`), it may only write `<answer>`, one of the labels,
`</answer>` and an end token.

    constraint = LabelAnswerConstraint(tokenizer, [("sunny", "stormy", "balanced")], end_ids={2})
    model.generate(**inputs, logits_processor=LogitsProcessorList([constraint]))

The constraint works on text, not on one tokenisation of each label: byte-level BPE merges across the tag
(`">sunny"` is one token of the demo model, `"><"` another), so every token whose text continues some allowed answer
is allowed, and the model spells the label the way it prefers. It still chooses among the labels by its own
probabilities; the constraint only removes the answers that could never be right. It is on by default for
single-label classification (`rise.annotate.GenerationSettings.constrain_labels`) and in GRPO's rollouts
(`rise.training.constrained_grpo`).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from rise.tasks import TaskSpec, TaskType

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
# The reasoning's closing tag without its ">": the constraint starts there, since a small model sometimes writes
# "</think" and goes straight on to its answer. Every allowed continuation therefore starts with that ">".
THINK_CLOSE_STEM = "</think"
# Generated tokens decoded to look for a marker: enough for "</think>" spelled one character per token.
_MARKER_WINDOW = 12
_TOKEN_TEXTS: weakref.WeakKeyDictionary[Any, tuple[dict[str, list[int]], int]] = weakref.WeakKeyDictionary()


def constrained_labels(spec: TaskSpec) -> tuple[str, ...] | None:
    """The labels an answer is restricted to: a single-label classification task's labels, else None."""
    if spec.task_type is TaskType.classification and not spec.distribution and spec.labels:
        return tuple(spec.labels)
    return None


def _token_texts(tokenizer: Any) -> tuple[dict[str, list[int]], int]:
    """The ids of each token text (several ids can decode alike) and the longest text; computed once a tokenizer."""
    cached = _TOKEN_TEXTS.get(tokenizer)
    if cached is None:
        special = set(tokenizer.all_special_ids)
        ids_by_text: dict[str, list[int]] = defaultdict(list)
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        for token_id, text in enumerate(texts):
            if text and token_id not in special and "\ufffd" not in text:  # partial UTF-8 never matches
                ids_by_text[text].append(token_id)
        cached = (dict(ids_by_text), max(map(len, ids_by_text), default=1))
        _TOKEN_TEXTS[tokenizer] = cached
    return cached


def _listed_answers(labels: Sequence[str]) -> tuple[str, ...]:
    """Each label's whole answer as the constraint spells it: from the reasoning's closing ">" to `</answer>`."""
    return tuple(f">{ANSWER_OPEN}{label}{ANSWER_CLOSE}" for label in labels)


def _answer_start(tokenizer: Any, generated: Sequence[int]) -> str | None:
    """The answer text already written when the newest of the `generated` tokens close the reasoning or open the
    answer; None before that."""
    if len(generated) == 0:
        return None
    tail = tokenizer.decode(list(generated[-_MARKER_WINDOW:]), skip_special_tokens=True)
    opened, closed = tail.rfind(ANSWER_OPEN), tail.rfind(THINK_CLOSE_STEM)
    if opened >= 0 and opened > closed:
        return f">{tail[opened:]}"
    if closed >= 0:
        return tail[closed + len(THINK_CLOSE_STEM) :]
    return None


def _allowed(
    written: str, answers: tuple[str, ...], ids_by_text: dict[str, list[int]], longest: int, end_ids: Sequence[int]
) -> list[int]:
    """Every token that continues `written` towards one of the `answers`, or ends it where it is one."""
    allowed: set[int] = set()
    for answer in answers:
        if answer == written:
            allowed.update(end_ids)
        elif answer.startswith(written):
            rest = answer[len(written) :]
            for length in range(1, min(len(rest), longest) + 1):
                allowed.update(ids_by_text.get(rest[:length], ()))
    return sorted(allowed)


def allowed_tokens_per_position(
    tokenizer: Any,
    labels: Sequence[str],
    completion_ids: Sequence[int],
    *,
    end_ids: Collection[int],
    answer_first: bool = False,
) -> list[list[int] | None]:
    """For each token of a completion, the tokens `LabelAnswerConstraint` would allow in its place had the model
    written the completion's earlier tokens; None where the answer is free (the reasoning) or the text has left
    every listed answer. Training on the logits restricted to these sets fits the distribution the app decodes
    answers from: the choice among the labels, not the spelling of a label the model has never seen."""
    ids_by_text, longest = _token_texts(tokenizer)
    answers, ends = _listed_answers(labels), sorted(end_ids)
    written: str | bool | None = ">" if answer_first else None
    result: list[list[int] | None] = []
    for position, token in enumerate(completion_ids):
        if written is None:
            written = _answer_start(tokenizer, completion_ids[:position])
        allowed = _allowed(written, answers, ids_by_text, longest, ends) if isinstance(written, str) else []
        if not allowed or token not in allowed:
            written = False if isinstance(written, str) else written
            result.append(None)
            continue
        result.append(allowed)
        written = False if token in ends else f"{written}{tokenizer.decode([token])}"
    return result


class LabelAnswerConstraint(LogitsProcessor):
    """A `transformers` logits processor for one `generate` call: after the reasoning, only a listed answer.

    Args:
        tokenizer: the model's tokenizer.
        labels_per_prompt: each prompt's labels, or None where its answer is free. Rows of the batch are the
            prompts in order, each repeated `samples_per_prompt` times (`num_return_sequences`).
        end_ids: the tokens that end a completion; one of them must follow `</answer>`.
        answer_first: the completion is the answer alone (a reconstruction prompt), so it is constrained from its
            first token.
    """

    def __init__(
        self,
        tokenizer: Any,
        labels_per_prompt: Sequence[Sequence[str] | None],
        *,
        end_ids: Collection[int],
        samples_per_prompt: int = 1,
        answer_first: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self._ids_by_text, self._longest = _token_texts(tokenizer)
        self._answers = [
            None if labels is None else _listed_answers(labels)
            for labels in labels_per_prompt
            for _ in range(samples_per_prompt)
        ]
        self._end_ids = sorted(end_ids)
        self._prompt_length: int | None = None  # the padded prompt: the width of the first call's input ids
        # Per row: None before the answer; then what was written since "</think" (">" stands in for the tag when the
        # answer comes first or is opened without it); then False once the row is free or done.
        self._written: list[str | bool | None] = [
            ">" if answer_first and answers else None for answers in self._answers
        ]
        self._masked = [False] * len(self._answers)  # whether the row's last token was picked under the mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != len(self._answers):
            raise ValueError(
                f"LabelAnswerConstraint was built for {len(self._answers)} rows, got {input_ids.shape[0]}"
            )
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        for row, answers in enumerate(self._answers):
            written = self._written[row]
            if answers is None or written is False:
                continue
            if self._masked[row]:  # the last token was picked under this constraint: it extends the answer
                last = int(input_ids[row, -1])
                if last in self._end_ids:
                    self._written[row] = False
                    continue
                written = f"{written}{self.tokenizer.decode([last])}"
            elif written is None:
                written = _answer_start(self.tokenizer, input_ids[row, self._prompt_length :].tolist())
                if written is None:
                    continue
            allowed = _allowed(written, answers, self._ids_by_text, self._longest, self._end_ids)
            if not allowed:  # text no answer continues (e.g. "<answer>[" in one token): leave the row free
                self._written[row], self._masked[row] = False, False
                continue
            self._written[row], self._masked[row] = written, True
            keep = scores[row, allowed].clone()
            scores[row, :] = float("-inf")
            scores[row, allowed] = keep
        return scores

"""Text-only recall questions over made-up names: the two skills a label defined in the prompt needs, alone.

Answering "the object is red: zorpa. the object is blue: kelmi." for a red object means finding the definition
that holds and writing the label that goes with it: a lookup in a table the prompt gives, then a copy of a name the
model has never seen. The demo model's tokenizer spells such names a letter or two per token, so both are multi-token
operations for a small decoder. These questions ask for them with nothing else in the way:

| kind | prompt | completion |
|---|---|---|
| repeat | "Write these words again: kelmi, lantern, zorpa." | "kelmi, lantern, zorpa" |
| lookup | "kelmi: zorpa.\\npepper: fuvik.\\npepper:" | "fuvik" |

Names come from `rise.demo_model.label_lists` (training share or held-out share), 2–8 per question. A repeat can be
answered by position alone (the k-th name comes k names after the colon); a lookup cannot: it needs the key matched by
content, which is what a definition needs.
"""

from __future__ import annotations

import numpy as np

from rise.demo_model.label_lists import MAX_LABELS, MIN_LABELS, random_labels

RECALL_KINDS: tuple[str, ...] = ("repeat", "lookup")


def recall_messages(prompt: str) -> list[dict]:
    """The chat messages that ask a recall question: one user turn, text only."""
    return [{"role": "user", "content": [{"type": "text", "text": prompt}]}]


def repeat_question(rng: np.random.Generator, count: int, *, held_out: bool = False) -> tuple[str, str]:
    """A prompt asking for `count` names again, and the answer."""
    names = random_labels(rng, count, held_out=held_out)
    return f"Write these words again: {', '.join(names)}.", ", ".join(names)


def lookup_question(rng: np.random.Generator, count: int, *, held_out: bool = False) -> tuple[str, str]:
    """A table of `count` `key: value.` lines ending with one of its keys, and that key's value.

    >>> prompt, answer = lookup_question(np.random.default_rng(0), 3)
    >>> key = prompt.splitlines()[-1]
    >>> [line for line in prompt.splitlines()[:-1] if line.startswith(key)] == [f"{key} {answer}."]
    True
    """
    names = random_labels(rng, 2 * count, held_out=held_out)
    keys, values = names[:count], names[count:]
    asked = int(rng.integers(count))
    lines = [f"{key}: {value}." for key, value in zip(keys, values, strict=True)]
    return "\n".join([*lines, f"{keys[asked]}:"]), values[asked]


def recall_question(
    rng: np.random.Generator, kind: str | None = None, count: int | None = None, *, held_out: bool = False
) -> tuple[str, str]:
    """A recall question of `kind` (default: either at random) over `count` names (default: 2–8 at random)."""
    kind = kind or RECALL_KINDS[int(rng.integers(len(RECALL_KINDS)))]
    count = count or int(rng.integers(MIN_LABELS, MAX_LABELS + 1))
    question = {"repeat": repeat_question, "lookup": lookup_question}[kind]
    return question(rng, count, held_out=held_out)

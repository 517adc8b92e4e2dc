"""SFT rows that make the answer read the reasoning.

SFT on image + prompt -> `<think>reasoning</think><answer>y</answer>` lets the answer be learned straight from the
image: the reasoning is in view but never needed, and a small model takes the shortcut (on mood its answers ignore
a swapped-in reasoning of another mood most of the time). A *reading row* repeats a reasoning row with the image
replaced by a blank one of the same size and the reasoning moved into the prompt, so the only thing that predicts
its target, the answer, is the reasoning. Mixed with the ordinary rows, the answer leans on the reasoning more. Off
by default: on mood it made the answer read its reasoning more without raising accuracy (README, the feedback loop).

Reading rows need the prompt to end inside the assistant's turn, which TRL's conversational rows cannot express, so
with reading rows every row is written as chat-templated text (the same text TRL would build from the messages).
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image

THINK_CLOSE = "</think>"  # as rise.parsing.format_completion writes it
BLANK_GREY = (128, 128, 128)


def templated_prompt_and_completion(processor: Any, prompt: list[dict], completion: str) -> tuple[str, str]:
    """The chat-templated prompt (with the generation prompt) and the completion text after it, end of turn
    included: the split TRL makes for a conversational prompt-completion row."""
    prompt_text = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    reply = {"role": "assistant", "content": [{"type": "text", "text": completion}]}
    full_text = processor.apply_chat_template([*prompt, reply], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("The chat template does not render the prompt as a prefix of prompt + reply.")
    return prompt_text, full_text[len(prompt_text) :]


def split_after_reasoning(processor: Any, completion_text: str) -> tuple[str, str]:
    """(reasoning part, answer part) of a templated completion, split at a token boundary.

    The cut falls at the start of the token that holds the last character of `</think>`: tokenizers merge across
    that tag (Qwen2's makes one token of `><` in `</think><answer>`), so cutting right after it would tokenize the
    answer differently from how the model reads and writes it.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    end = completion_text.index(THINK_CLOSE) + len(THINK_CLOSE)
    offsets = tokenizer(completion_text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut = next(start for start, stop in offsets if stop >= end)
    return completion_text[:cut], completion_text[cut:]


def blank_like(image: Image.Image) -> Image.Image:
    """A uniform grey image of the same size: the same number of image tokens, no information."""
    return Image.new("RGB", image.size, BLANK_GREY)


def with_reading_rows(rows: list[dict[str, Any]], processor: Any, *, share: float, seed: int) -> list[dict[str, Any]]:
    """Text-form rows: every row in `rows`, plus a reading row for a `share` of those with reasoning.

    Args:
        rows (`list[dict]`): conversational rows with `prompt` (messages), `target` (completion text), `image`,
            `item_id`.
        processor: the model's processor (chat template and tokenizer).
        share (`float`): the fraction of reasoning rows that also get a reading row, drawn with `seed`.
    """
    text_rows = []
    for row in rows:
        prompt, completion = templated_prompt_and_completion(processor, row["prompt"], row["target"])
        text_rows.append(
            {"prompt": prompt, "completion": completion, "image": row["image"], "item_id": row["item_id"]}
        )
    reasoned = [row for row in text_rows if THINK_CLOSE in row["completion"]]
    reading_rows = []
    for row in random.Random(seed).sample(reasoned, round(share * len(reasoned))):
        reasoning, answer = split_after_reasoning(processor, row["completion"])
        reading_rows.append(
            {**row, "prompt": row["prompt"] + reasoning, "completion": answer, "image": blank_like(row["image"])}
        )
    return text_rows + reading_rows

"""Turn perception examples into padded training batches for a Qwen2-VL model, fast enough for CPU training.

The processor's own `__call__` costs more per example than a training step of the small model, so the pieces are
done here directly: the chat template and tokenizer for the text, the image processor on the whole batch of images,
and the multimodal rotary positions computed per example (Qwen2-VL's `get_rope_index` loops in Python per row on
every forward; passing `position_ids` skips it). Tests check both against the processor and the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rise.demo_model.examples import PerceptionExample
from rise.label_constraint import allowed_tokens_per_position, constrained_labels

IMAGE_PAD = "<|image_pad|>"
END_OF_TURN = "<|im_end|>"
IGNORE_INDEX = -100  # label value the loss skips: prompt and padding tokens
# The example kinds whose answer the app decodes from the task's labels: an annotation after its reasoning, and a
# reconstruction, which is the answer alone.
# kind -> the answer comes first
LABEL_ANSWER_KINDS = {"classification": False, "defined": False, "defined-shape": False, "reconstruction": True}


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    position_ids: torch.Tensor  # (3, length)
    image_index: int | None  # position of its image in the batch's image list
    # Label positions of a listed answer's tokens, each with the tokens the app's label constraint allows there.
    answer_choices: dict[int, list[int]]


def rope_positions(
    input_ids: list[int], image_token_id: int, grid_thw: tuple[int, int, int] | None, merge_size: int
) -> torch.Tensor:
    """Qwen2-VL's 3D rotary positions (temporal, height, width) for one unpadded sequence with at most one image.

    Text counts up by one on all three axes; the image's tokens sit at the position where it starts, offset by their
    row and column in the merged grid; text after the image continues from the start plus the grid's larger side
    (matching `Qwen2VLModel.get_rope_index`).
    """
    length = len(input_ids)
    positions = torch.arange(length).view(1, -1).expand(3, -1).clone()
    if grid_thw is None:
        return positions
    image_positions = [i for i, token in enumerate(input_ids) if token == image_token_id]
    if not image_positions:
        return positions
    start, count = image_positions[0], len(image_positions)
    t, h, w = grid_thw
    rows, cols = h // merge_size, w // merge_size
    if count != t * rows * cols or image_positions[-1] != start + count - 1:
        raise ValueError(f"Expected one run of {t * rows * cols} image tokens, found {count}")
    grid_t = torch.arange(t).view(-1, 1, 1).expand(t, rows, cols).reshape(-1)
    grid_h = torch.arange(rows).view(1, -1, 1).expand(t, rows, cols).reshape(-1)
    grid_w = torch.arange(cols).view(1, 1, -1).expand(t, rows, cols).reshape(-1)
    positions[:, start : start + count] = torch.stack([grid_t, grid_h, grid_w]) + start
    after = start + max(rows, cols)  # as Qwen2-VL: the larger side of the merged grid, whatever the time steps
    positions[:, start + count :] = torch.arange(length - start - count).view(1, -1) + after
    return positions


class BatchEncoder:
    """Encodes `PerceptionExample`s with a model's processor into the tensors a forward pass with labels takes.

    Args:
        processor: the model's processor (tokenizer, image processor and chat template).
        max_length (`int`): longer examples are cut at the end (their completion loses its tail); the synthetic
            examples are well under the default.
        answer_choices (`bool`): also give, for each token of a classification answer, the tokens the app's label
            constraint would allow there (`answer_choices` in the batch), so the loss can fit the choice among the
            labels as the app decodes it.
    """

    def __init__(self, processor: Any, max_length: int = 1024, answer_choices: bool = False):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.pad_id = self.tokenizer.pad_token_id
        self.merge_size = int(self.image_processor.merge_size)
        self.max_length = max_length
        self.answer_choices = answer_choices
        self.end_of_turn_id = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)

    def _answer_choices(
        self, example: PerceptionExample, completion_ids: list[int], start: int
    ) -> dict[int, list[int]]:
        """Where the app would decode `example`'s completion from a label list: label position -> allowed tokens."""
        wanted = self.answer_choices and example.kind in LABEL_ANSWER_KINDS
        if not wanted or example.spec is None:
            return {}
        labels = constrained_labels(example.spec)
        if labels is None:
            return {}
        allowed = allowed_tokens_per_position(
            self.tokenizer, labels, completion_ids, end_ids={self.end_of_turn_id},
            answer_first=LABEL_ANSWER_KINDS[example.kind],
        )  # fmt: skip
        return {start + i: ids for i, ids in enumerate(allowed) if ids is not None and start + i < self.max_length}

    def _prompt_text(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _prompt_ids(self, text: str, elide: str | None) -> tuple[list[int], int, int]:
        """The prompt's token ids, leaving out `elide` if given; with where its tokens would start and how many
        positions they would take, so the tokens after it keep the positions they have in the full prompt."""
        tokenize = self.tokenizer
        if not elide or elide not in text:
            ids = tokenize(text, add_special_tokens=False)["input_ids"]
            return ids, len(ids), 0
        cut = text.index(elide)
        before = tokenize(text[:cut], add_special_tokens=False)["input_ids"]
        after = tokenize(text[cut + len(elide) :], add_special_tokens=False)["input_ids"]
        gap = len(tokenize(elide, add_special_tokens=False)["input_ids"])
        return before + after, len(before), gap

    def encode(self, examples: list[PerceptionExample]) -> dict[str, Any]:
        """A right-padded batch: input_ids, attention_mask, labels, position_ids, mm_token_type_ids, with
        `answer_choices` the list of (row, label position, allowed token ids) and, when any example has an image,
        pixel_values and image_grid_thw."""
        images = [e.image for e in examples if e.image is not None]
        vision: dict[str, torch.Tensor] = {}
        if images:
            vision = dict(self.image_processor(images=images, return_tensors="pt"))
        grids = [tuple(int(v) for v in row) for row in vision.get("image_grid_thw", [])]
        encoded: list[EncodedExample] = []
        image_index = 0
        for example in examples:
            text = self._prompt_text(example.messages)
            grid = None
            if example.image is not None:
                grid = grids[image_index]
                tokens = grid[0] * grid[1] * grid[2] // self.merge_size**2
                text = text.replace(IMAGE_PAD, IMAGE_PAD * tokens, 1)
            prompt_ids, gap_at, gap = self._prompt_ids(text, example.elidable if example.elide else None)
            completion_ids = self.tokenizer(example.completion + END_OF_TURN, add_special_tokens=False)["input_ids"]
            ids = (prompt_ids + completion_ids)[: self.max_length]
            labels = ([IGNORE_INDEX] * len(prompt_ids) + completion_ids)[: self.max_length]
            positions = rope_positions(ids, self.image_token_id, grid, self.merge_size)
            positions[:, gap_at:] += gap
            choices = self._answer_choices(example, completion_ids, len(prompt_ids))
            encoded.append(EncodedExample(ids, labels, positions, image_index if grid else None, choices))
            image_index += grid is not None
        return self._pad(encoded, vision)

    def _pad(self, encoded: list[EncodedExample], vision: dict[str, torch.Tensor]) -> dict[str, Any]:
        length = max(len(e.input_ids) for e in encoded)
        size = (len(encoded), length)
        input_ids = torch.full(size, self.pad_id, dtype=torch.long)
        labels = torch.full(size, IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros(size, dtype=torch.long)
        positions = torch.zeros((3, *size), dtype=torch.long)
        for row, example in enumerate(encoded):
            n = len(example.input_ids)
            input_ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            attention[row, :n] = 1
            positions[:, row, :n] = example.position_ids
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "position_ids": positions,
            "mm_token_type_ids": (input_ids == self.image_token_id).long(),
        }
        if self.answer_choices:  # not a model input: the loss pops it
            batch["answer_choices"] = [
                (row, position, ids) for row, e in enumerate(encoded) for position, ids in e.answer_choices.items()
            ]
        if vision:
            batch["pixel_values"] = vision["pixel_values"]
            batch["image_grid_thw"] = vision["image_grid_thw"]
        return batch

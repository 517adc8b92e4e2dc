"""Reading rows: the answer after a blank image and a reasoning, tokenized as the model reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rise.prompts import annotation_messages
from rise.tasks import TaskSpec
from rise.training.reading_rows import BLANK_GREY, split_after_reasoning, with_reading_rows
from rise.training.trainer_setup import as_content_parts

DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
SPEC = TaskSpec("classification", labels=("sunny", "stormy", "balanced"))


@pytest.fixture(scope="module")
def processor():
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(DEMO_MODEL)


def rows(count: int, reasoning: bool = True) -> list[dict]:
    prompt = as_content_parts(annotation_messages(SPEC))
    return [
        {
            "prompt": prompt,
            "target": (f"<think>A red circle number {i}.</think>" if reasoning else "") + "<answer>sunny</answer>",
            "image": Image.new("RGB", (64, 48), (200, 30, 30)),
            "item_id": i,
        }
        for i in range(count)
    ]


def test_every_row_keeps_its_image_and_a_share_of_reasoning_rows_read_the_reasoning_off_a_blank(processor):
    text_rows = with_reading_rows(rows(4), processor, share=0.5, seed=0)
    assert len(text_rows) == 6
    originals, reading = text_rows[:4], text_rows[4:]
    assert all(row["image"].getpixel((0, 0)) == (200, 30, 30) for row in originals)
    assert all(row["completion"].startswith("<think>A red circle") for row in originals)
    for row in reading:
        assert row["image"].size == (64, 48) and row["image"].getpixel((10, 10)) == BLANK_GREY
        assert "A red circle number" in row["prompt"] and "sunny" in row["completion"]
        assert "<think>" not in row["completion"]
    assert len({row["item_id"] for row in reading}) == 2


def test_answer_only_rows_get_no_reading_copy(processor):
    assert len(with_reading_rows(rows(3, reasoning=False), processor, share=1.0, seed=0)) == 3


def test_prompt_and_completion_tokenize_as_the_whole_reply_does(processor):
    """Cutting right after `</think>` would split the tokenizer's `><` token; the cut must keep every token whole."""
    tokenizer = processor.tokenizer
    for row in with_reading_rows(rows(1), processor, share=1.0, seed=0):
        whole = tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"]
        parts = [tokenizer(part, add_special_tokens=False)["input_ids"] for part in (row["prompt"], row["completion"])]
        assert parts[0] + parts[1] == whole


def test_the_cut_falls_on_a_token_boundary_at_the_end_of_the_reasoning(processor):
    reasoning, answer = split_after_reasoning(processor, "<think>Warm colours.</think><answer>sunny</answer>")
    assert reasoning.startswith("<think>Warm colours.") and answer.endswith("<answer>sunny</answer>")
    assert reasoning + answer == "<think>Warm colours.</think><answer>sunny</answer>"
    assert len(answer) <= len("><answer>sunny</answer>")


def test_sft_trains_on_reasoning_and_reading_rows_together(tmp_path, tiny_model_dir):
    """TRL takes the text-form rows with their images: two reasoning rows and their two reading rows train."""
    from rise.training.config import SFTStageConfig
    from rise.training.cot_filter import SelectedCoT
    from rise.training.sft import train_sft
    from tests.utils.training import synthetic_snapshot

    snapshot = synthetic_snapshot(tmp_path / "snapshot", n_train=3, n_eval=1)
    selected = [SelectedCoT(0, "One round outline.", "rollout"), SelectedCoT(1, "Four equal sides.", "rollout")]
    config = SFTStageConfig(max_steps=2, per_device_train_batch_size=2, use_lora=False, reading_share=1.0)
    summary = train_sft(str(tiny_model_dir), snapshot, config, tmp_path / "sft", selected)
    assert summary["examples"] == 4 and summary["reading_share"] == 1.0
    assert (tmp_path / "sft" / "final" / "config.json").is_file()

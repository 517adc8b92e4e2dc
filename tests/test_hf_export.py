"""Hugging Face dataset exports: SFT rows in the RISE target format and trusted annotations, saved and reloaded."""

from __future__ import annotations

import json

import pytest
from datasets import load_from_disk

from app.services.exports import ExportError, export_hf_dataset
from db.models import Annotation, AnnotationSource, Review, Split
from rise.parsing import parse_completion
from rise.tasks import TaskSpec
from tests.utils.exchange import seed_reviewed_project

LABELS = ["circle", "square"]


def test_sft_rows_hold_image_prompt_and_think_answer_target(runtime, tmp_path):
    seeded = seed_reviewed_project(runtime, "det", "detection", LABELS, tmp_path / "images")
    summary = export_hf_dataset(runtime, seeded.id, tmp_path / "sft", kind="sft")
    # Only the accepted prediction carries a chain of thought; the correction has none.
    assert summary.rows == 1
    dataset = load_from_disk(str(tmp_path / "sft"))
    [row] = [row for split in dataset for row in dataset[split]]
    assert row["image"].size == (seeded.items[0].width, seeded.items[0].height)
    [message] = row["prompt"]
    assert message["role"] == "user" and [part["type"] for part in message["content"]] == ["image", "text"]
    assert row["completion"][0]["content"][0]["text"] == row["text"]
    parsed = parse_completion(row["text"], TaskSpec("detection", labels=tuple(LABELS)), 40, 20)
    assert parsed.format_ok and parsed.cot == seeded.items[0].prediction_cot
    assert parsed.answer == [
        {"label": e["label"], "box": pytest.approx(e["box"], abs=0.1)} for e in seeded.items[0].prediction
    ]
    assert json.loads(row["answer"]) == seeded.items[0].annotation


def test_flagged_reasoning_is_not_sft_data(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "det", "detection", LABELS, tmp_path / "images").id
    with runtime.sessions.begin() as session:
        session.query(Review).update({Review.reasoning_wrong: True})
    with pytest.raises(ExportError, match="Nothing to export"):
        export_hf_dataset(runtime, project_id, tmp_path / "sft", kind="sft")


def test_a_reasoning_written_with_a_correction_is_sft_data_even_with_the_models_flagged(runtime, tmp_path):
    seeded = seed_reviewed_project(runtime, "det", "detection", LABELS, tmp_path / "images")
    with runtime.sessions.begin() as session:
        session.query(Review).update({Review.reasoning_wrong: True})
        session.query(Annotation).filter(Annotation.source == AnnotationSource.correct).update(
            {Annotation.cot: "Two circles, one on each side."}
        )
    summary = export_hf_dataset(runtime, seeded.id, tmp_path / "sft", kind="sft")
    assert summary.rows == 1
    dataset = load_from_disk(str(tmp_path / "sft"))
    [row] = [row for split in dataset for row in dataset[split]]
    assert row["source"] == "correct" and row["text"].startswith("<think>Two circles, one on each side.</think>")


def test_annotation_rows_keep_answer_author_and_split(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "cls", "classification", LABELS, tmp_path / "images").id
    with runtime.sessions.begin() as session:
        # Put one annotated item in the held-out split: it must land in the eval split of the dataset.
        session.query(Annotation).first().item.split = Split.eval
    summary = export_hf_dataset(runtime, project_id, tmp_path / "ann", kind="annotations")
    assert summary.rows_per_split == {"train": 1, "eval": 1}
    dataset = load_from_disk(str(tmp_path / "ann"))
    rows = [row for split in ("train", "eval") for row in dataset[split]]
    assert sorted(row["author"] for row in rows) == ["ada", "grace"]
    assert {json.loads(row["answer"]) for row in rows} == {row["answer_text"] for row in rows} <= set(LABELS)
    assert all(row["created_at"].startswith("2025-03-04") for row in rows)


def test_unknown_kind_and_half_hub_settings_are_refused(runtime, tmp_path):
    project_id = seed_reviewed_project(runtime, "cls", "classification", LABELS, tmp_path / "images").id
    with pytest.raises(ExportError, match="Unknown dataset kind"):
        export_hf_dataset(runtime, project_id, tmp_path / "x", kind="everything")
    with pytest.raises(ExportError, match="both a repository id and a token"):
        export_hf_dataset(runtime, project_id, tmp_path / "x", repo_id="me/data")

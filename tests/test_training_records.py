"""Snapshots (plain records -> a dataset on disk with the images) and the datasets each stage builds from them."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from rise.training.cot_filter import SelectedCoT
from rise.training.records import TrainingRecord, load_snapshot, write_snapshot
from rise.training.rft import rft_dataset
from rise.training.rise_cot import reasoning_dataset
from rise.training.sft import sft_dataset
from tests.utils.training import classification_spec, scene_png, synthetic_snapshot


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return synthetic_snapshot(
        tmp_path_factory.mktemp("snap"),
        n_train=4,
        n_eval=2,
        cots={0: "One round outline."},
        rejected={1: ["square"], 3: ["triangle"]},
        without_answer=(3,),
    )


class TestSnapshot:
    def test_splits_images_and_answers_survive_the_round_trip(self, snapshot):
        assert len(snapshot.train) == 4 and len(snapshot.eval) == 2
        row = snapshot.train[0]
        assert isinstance(row["image"], Image.Image) and row["image"].size == (64, 64)
        assert json.loads(row["answer"]) == scene_png(0)[1]
        assert row["cot"] == "One round outline."
        assert json.loads(snapshot.train[1]["rejected_answers"]) == ["square"]
        assert snapshot.spec == classification_spec()
        assert snapshot.info["counts"] == {"train": 4, "eval": 2} and snapshot.info["with_rejections"] == 2

    def test_image_files_are_embedded_not_referenced(self, tmp_path):
        png, label = scene_png(1)
        image_file = tmp_path / "scene.png"
        image_file.write_bytes(png)
        write_snapshot(tmp_path / "snap", classification_spec(), [TrainingRecord(7, image_file, 64, 64, answer=label)])
        image_file.unlink()  # the training box has no media folder
        assert load_snapshot(tmp_path / "snap").train[0]["image"].size == (64, 64)

    def test_an_empty_held_out_split_loads(self, tmp_path):
        png, label = scene_png(0)
        snapshot = load_snapshot(
            write_snapshot(tmp_path, classification_spec(), [TrainingRecord(1, png, 64, 64, answer=label)])
        )
        assert len(snapshot.eval) == 0 and len(snapshot.train) == 1

    def test_invalid_answers_and_unanswered_held_out_items_are_refused(self, tmp_path):
        png, _ = scene_png(0)
        with pytest.raises(ValueError, match="hexagon"):
            write_snapshot(tmp_path, classification_spec(), [TrainingRecord(1, png, 64, 64, answer="hexagon")])
        with pytest.raises(ValueError, match="Held-out item 2"):
            write_snapshot(tmp_path, classification_spec(), [TrainingRecord(2, png, 64, 64, split="eval")])

    def test_a_folder_that_is_no_snapshot_says_how_to_make_one(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="rise train --project"):
            load_snapshot(tmp_path)


class TestStageDatasets:
    def test_reasoning_prompts_show_the_image_and_the_trusted_answer(self, snapshot):
        dataset = reasoning_dataset(snapshot)
        assert sorted(dataset["item_id"]) == [0, 1, 2]  # item 3 has no trusted answer; held-out items never appear
        row = dataset[0]
        parts = row["prompt"][0]["content"]
        assert [p["type"] for p in parts] == ["image", "text"]
        assert json.loads(row["solution"]) in parts[1]["text"]
        assert isinstance(row["image"], Image.Image)

    def test_sft_rows_pair_the_annotation_prompt_with_reasoning_and_answer(self, snapshot):
        dataset = sft_dataset(snapshot, [SelectedCoT(0, "One round outline.", "human")])
        assert dataset["item_id"] == [0]
        target = dataset[0]["completion"][0]["content"][0]["text"]
        assert target == f"<think>One round outline.</think><answer>{scene_png(0)[1]}</answer>"

    def test_answers_only_baseline_trains_on_every_trusted_answer_without_reasoning(self, snapshot):
        dataset = sft_dataset(snapshot, None, answers_only=True)
        assert sorted(dataset["item_id"]) == [0, 1, 2]
        assert all(c[0]["content"][0]["text"].startswith("<answer>") for c in dataset["completion"])

    def test_rft_keeps_rejection_only_items_for_the_human_feedback_reward(self, snapshot):
        dataset = rft_dataset(snapshot)
        assert sorted(dataset["item_id"]) == [0, 1, 2, 3]
        row = dataset[dataset["item_id"].index(3)]
        assert row["solution"] is None and json.loads(row["rejected_answers"]) == ["triangle"]
        assert sorted(rft_dataset(snapshot, with_rejections_only=False)["item_id"]) == [0, 1, 2]


def test_grounding_prompts_carry_the_query_and_the_box_in_the_model_frame(tmp_path):
    from rise.tasks import TaskSpec

    png, _ = scene_png(0)
    record = TrainingRecord(1, png, 64, 64, answer=[0, 0, 32, 32], query="the red square")
    snapshot = load_snapshot(write_snapshot(tmp_path, TaskSpec("grounding"), [record]))
    text = reasoning_dataset(snapshot)[0]["prompt"][0]["content"][1]["text"]
    assert "the red square" in text and "[0, 0, 500, 500]" in text  # Qwen2-VL writes boxes in 0..1000
    rft_row = rft_dataset(snapshot)[0]
    assert rft_row["query"] == "the red square" and json.loads(rft_row["solution"]) == [0.0, 0.0, 32.0, 32.0]

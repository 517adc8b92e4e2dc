"""Stage configs: every field documented, every cross-field check names its fix, files and overrides round-trip."""

from __future__ import annotations

import dataclasses

import pytest

from rise.training.config import (
    SECTIONS,
    EvalConfig,
    FilterConfig,
    PipelineConfig,
    RFTStageConfig,
    RiseCoTConfig,
    SFTStageConfig,
)
from rise.training.launch import accelerate_command, choose_launcher
from rise.training.pipeline import RISE_STAGES, resolve_stages


@pytest.mark.parametrize(
    "cls", [RiseCoTConfig, FilterConfig, SFTStageConfig, RFTStageConfig, EvalConfig, PipelineConfig]
)
def test_every_field_has_help_text(cls):
    missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help", "").strip()]
    assert missing == []


def test_defaults_are_valid_and_follow_the_paper():
    config = PipelineConfig()
    assert config.rise_cot.num_generations == 8  # the authors' G
    assert config.rise_cot.leak_factor == 0.1
    assert config.rise_cot.use_lora and config.rise_cot.judge == "base"
    assert config.visual_rft.start_from == "base" and config.visual_rft.human_feedback_weight == 0
    assert config.baseline_sft.answers_only and not config.sft.answers_only


class TestChecksNameTheFix:
    def test_base_judge_without_lora_is_refused(self):
        with pytest.raises(ValueError, match="judge='frozen'"):
            RiseCoTConfig(use_lora=False)  # judge defaults to "base"

    def test_full_finetune_with_a_frozen_judge_is_fine(self):
        assert RiseCoTConfig(use_lora=False, judge="frozen").judge == "frozen"

    def test_batch_not_divisible_by_group_size_is_refused(self):
        with pytest.raises(ValueError, match="per_device_train_batch_size=8"):
            RiseCoTConfig(per_device_train_batch_size=6, num_generations=8)

    def test_one_generation_is_refused(self):
        with pytest.raises(ValueError, match="num_generations >= 2"):
            RFTStageConfig(num_generations=1, per_device_train_batch_size=1)

    def test_unknown_reconstruction_input_lists_the_choices(self):
        with pytest.raises(ValueError, match="image_and_cot, cot_only, information_gain"):
            RiseCoTConfig(reconstruction_input="image")

    def test_all_zero_reward_weights_are_refused(self):
        with pytest.raises(ValueError, match="accuracy_weight > 0"):
            RFTStageConfig(format_weight=0, accuracy_weight=0, length_weight=0, human_feedback_weight=0)

    def test_overlong_buffer_must_fit_the_completion(self):
        with pytest.raises(ValueError, match="overlong_buffer"):
            RFTStageConfig(max_completion_length=16, overlong_buffer=32)

    def test_no_steps_and_no_epochs_is_refused(self):
        with pytest.raises(ValueError, match="max_steps"):
            SFTStageConfig(max_steps=-1, num_train_epochs=0)


def test_yaml_file_round_trips_with_partial_sections(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: some/model\nrise_cot:\n  max_steps: 3\nvisual_rft:\n  max_steps: 5\n")
    config = PipelineConfig.load(path)
    assert config.rise_cot.max_steps == 3 and config.rise_cot.num_generations == 8
    # A partial baseline section keeps the baseline's own defaults, not the RISE stage's.
    assert config.visual_rft.max_steps == 5 and config.visual_rft.start_from == "base"
    again = PipelineConfig.load(config.save(tmp_path / "again.yaml"))
    assert again == config


def test_overrides_parse_yaml_values_and_reject_unknown_fields():
    config = PipelineConfig().with_overrides(["rft.learning_rate=5e-5", "sft.use_lora=false", 'data="snap"'])
    assert config.rft.learning_rate == 5e-5 and config.sft.use_lora is False and config.data == "snap"
    with pytest.raises(ValueError, match="unknown field 'max_step'"):
        PipelineConfig().with_overrides(["rft.max_step=3"])
    with pytest.raises(ValueError, match="Unknown fields"):
        PipelineConfig.from_dict({"sft": {"epochs": 3}})


def test_sections_cover_every_stage_config():
    assert set(SECTIONS) <= {f.name for f in dataclasses.fields(PipelineConfig)}


def test_stage_selection_keeps_pipeline_order():
    assert resolve_stages("all") == list(RISE_STAGES)
    assert resolve_stages("rft,sft") == ["sft", "rft"]
    with pytest.raises(ValueError, match="Unknown stage 'sfft'"):
        resolve_stages("sfft")


def test_cpu_launch_needs_no_flags_from_the_user():
    command = accelerate_command(["--config", "c.yaml"])
    assert command[-4:] == ["-m", "rise.train", "--config", "c.yaml"]
    assert "--cpu" in command  # this machine has no CUDA
    assert choose_launcher("auto") == "inprocess"  # one CPU process: no launcher needed
    assert choose_launcher("auto", num_processes=2) == "accelerate"

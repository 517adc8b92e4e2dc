"""Stage building blocks on the tiny model: the judge the reconstruction reward uses, a full fine-tune with a frozen
judge, and the wall-clock limit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

from rise.annotate import GenerationSettings, generate_completions
from rise.modeling import load_model_and_processor
from rise.training.config import RiseCoTConfig
from rise.training.reconstruction import PolicyReconstructor, ReconstructionRequest, read_rollouts
from rise.training.rise_cot import (
    imitate_written_reasonings,
    reasoning_dataset,
    train_rise_cot,
    written_reasoning_dataset,
)
from tests.utils.training import classification_spec, synthetic_snapshot


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A model this small gains nothing from several threads, and they spin against other test processes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return synthetic_snapshot(tmp_path_factory.mktemp("snap"), n_train=2, n_eval=0)


class TestPolicyReconstructor:
    @pytest.fixture
    def lora_policy(self, tiny_model_dir):
        model, processor = load_model_and_processor(str(tiny_model_dir), device="cpu", dtype="float32")
        policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        torch.manual_seed(0)
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(std=5.0)  # a trained-looking adapter that changes what the model writes
        policy.train()
        policy.gradient_checkpointing_enable()  # as a memory-bound run trains; generation must still work
        # What the reconstructor reads from a trainer: the accelerator and the model it wraps.
        trainer = SimpleNamespace(accelerator=Accelerator(cpu=True), model=policy, model_wrapped=policy)
        return policy, processor, trainer

    def reconstruct(self, judge: str, processor, trainer, policy) -> list[str]:
        reconstructor = PolicyReconstructor(classification_spec(), processor, judge=judge, max_new_tokens=10)
        reconstructor.trainer = trainer
        modes: list[bool] = []
        base_model = policy.get_base_model()  # generate runs the wrapped model, not the PEFT wrapper
        hook = base_model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
        try:
            texts = reconstructor([ReconstructionRequest("A round outline."), ReconstructionRequest("Three tips.")])
        finally:
            hook.remove()
        assert modes and not any(modes)  # generated in eval mode ...
        assert policy.training and policy.is_gradient_checkpointing  # ... and training mode is back afterwards
        return texts

    def test_base_judge_writes_what_the_model_without_adapter_writes(self, lora_policy):
        policy, processor, trainer = lora_policy
        base = self.reconstruct("base", processor, trainer, policy)
        live = self.reconstruct("policy", processor, trainer, policy)
        with policy.disable_adapter():
            reference = self.reconstruct("policy", processor, trainer, policy)
        assert base == reference and live != base

    def test_base_judge_without_adapter_names_the_fix(self, tiny_model_dir):
        model, processor = load_model_and_processor(str(tiny_model_dir), device="cpu", dtype="float32")
        reconstructor = PolicyReconstructor(classification_spec(), processor, judge="base")
        reconstructor.trainer = SimpleNamespace(accelerator=Accelerator(cpu=True), model=model, model_wrapped=model)
        with pytest.raises(ValueError, match="judge='frozen'"):
            reconstructor([ReconstructionRequest("Round.")])

    def test_unset_trainer_is_a_clear_error(self, tiny_model):
        with pytest.raises(RuntimeError, match="assign the GRPOTrainer"):
            PolicyReconstructor(classification_spec(), tiny_model[1])([ReconstructionRequest("Round.")])


def test_full_finetune_with_a_frozen_judge_stops_at_the_time_limit(snapshot, tiny_model_dir, tmp_path):
    config = RiseCoTConfig(
        use_lora=False,
        judge="frozen",
        max_steps=3,
        max_seconds=0.001,  # crossed during the first step, so training stops after it
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        reconstruction_max_new_tokens=6,
        learning_rate=0.01,
    )
    summary = train_rise_cot(str(tiny_model_dir), snapshot, config, tmp_path)
    assert summary["steps"] == 1 and summary["stopped_by_time_limit"]
    rows = [json.loads(line) for line in (tmp_path / "rollouts" / "rank-00000.jsonl").open()]
    assert len(rows) == 4 and all("reconstruction" in row for row in rows)
    # A full fine-tune saves a whole model (not an adapter) that loads on its own, processor included.
    assert not (tmp_path / "final" / "adapter_config.json").exists()
    assert (
        load_file(tmp_path / "final" / "model.safetensors").keys()
        == load_file(tiny_model_dir / "model.safetensors").keys()
    )
    load_model_and_processor(str(tmp_path / "final"), device="cpu")


def test_progress_file_records_stage_changes_and_trainer_logs(tmp_path, tiny_model_dir):
    from rise.train import main
    from rise.training.progress import stop_progress_file

    data = tmp_path / "data"
    synthetic_snapshot(data, n_train=2, n_eval=0, cots={0: "Curved.", 1: "Flat sides."})
    progress = tmp_path / "progress.jsonl"
    args = ["--model", str(tiny_model_dir), "--data", str(data), "--output-dir", str(tmp_path / "run")]
    args += ["--stage", "filter,sft", "--progress-file", str(progress)]
    args += ["--set", "sft.max_steps=1", "--set", "sft.per_device_train_batch_size=2", "--set", "sft.lora_r=2"]
    try:
        assert main(args) == 0
    finally:
        stop_progress_file()
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    stages = [(e["stage"], e["status"]) for e in events if e["event"] == "stage"]
    assert stages == [("filter", "start"), ("filter", "done"), ("sft", "start"), ("sft", "done")]
    logs = [e for e in events if e["event"] == "log"]
    assert logs and logs[0]["stage"] == "sft" and logs[0]["max_steps"] == 1 and "loss" in logs[0]["values"]


def test_any_model_version_can_be_evaluated_from_the_command_line(tmp_path, tiny_model_dir, capsys):
    from rise.training.evaluate import main

    data = tmp_path / "data"
    synthetic_snapshot(data, n_train=1, n_eval=2)
    out = tmp_path / "report.json"
    args = ["--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--max-new-tokens", "8"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["metrics"]["items"] == 2 and report["adapter"] is None and "accuracy" in report["metrics"]
    assert len((tmp_path / "report.predictions.jsonl").read_text().splitlines()) == 2
    # Nothing held out: a clear message, not a traceback.
    empty = tmp_path / "empty"
    synthetic_snapshot(empty, n_train=1, n_eval=0)
    assert main(["--model", str(tiny_model_dir), "--data", str(empty), "--out", str(tmp_path / "x.json")]) == 2
    assert "split is empty" in capsys.readouterr().err


class TestWrittenReasonings:
    """RISE-CoT learning the reviewers' written form before GRPO (`rise_cot.written_reasoning_steps`)."""

    WRITTEN = "Two warm shapes and one cool shape, so warm wins."

    @pytest.fixture(scope="class")
    def sourced(self, tmp_path_factory):
        # Item 0's reasoning a reviewer wrote with a correction; item 1's is the model's, accepted.
        return synthetic_snapshot(
            tmp_path_factory.mktemp("written"),
            n_train=3,
            n_eval=0,
            cots={0: self.WRITTEN, 1: "The model's own description."},
            sources={0: "correct", 1: "accept"},
        )

    def test_only_reasonings_a_reviewer_wrote_are_targets(self, sourced):
        rows = written_reasoning_dataset(sourced)
        assert rows["item_id"] == [0]
        assert rows[0]["completion"][0]["content"][0]["text"] == f"<think>{self.WRITTEN}</think>"
        assert rows[0]["prompt"] == reasoning_dataset(sourced)[0]["prompt"]  # the prompt RISE-CoT samples from

    def test_the_model_learns_to_write_them(self, sourced, tiny_model_dir, tmp_path):
        rows = written_reasoning_dataset(sourced)
        config = RiseCoTConfig(written_reasoning_steps=30, written_reasoning_learning_rate=5e-3)
        messages, image = rows[0]["prompt"], rows[0]["image"]

        def first_words(model: str) -> str:
            loaded, processor = load_model_and_processor(model, device="cpu", dtype="float32")
            settings = GenerationSettings(max_new_tokens=12, temperature=0.0)
            return generate_completions(loaded, processor, [messages], [image], settings)[0][0].text

        assert not first_words(str(tiny_model_dir)).startswith("<think>Two warm")
        final = imitate_written_reasonings(str(tiny_model_dir), rows, config, tmp_path)
        assert first_words(str(final)).startswith("<think>Two warm")
        # every weight trained: a whole model folder, not an adapter
        assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()

    def test_judge_rows_reconstruct_the_reviewers_answer_from_the_scrubbed_reasoning(self, sourced):
        rows = written_reasoning_dataset(sourced, judge_rows=True)
        assert rows["item_id"] == [0, 0]
        (reasoning_row, judge_row) = rows
        assert reasoning_row["prompt"] == reasoning_dataset(sourced)[0]["prompt"]
        label = sourced.train[0]["answer"].strip('"')
        assert judge_row["completion"][0]["content"][0]["text"] == f"<answer>{label}</answer>"
        prompt_text = " ".join(part["text"] or "" for message in judge_row["prompt"] for part in message["content"])
        assert self.WRITTEN in prompt_text and any(p["type"] == "image" for p in judge_row["prompt"][0]["content"])

    def test_the_judge_learns_to_read_them(self, tiny_model_dir, tmp_path):
        # Two written reasonings with different labels, no label word in either (the scrub leaves them whole).
        written = {0: "Three corners, one pointing up.", 2: "Four equal sides, sitting level."}
        snapshot = synthetic_snapshot(
            tmp_path / "snap", n_train=3, n_eval=0, cots=written, sources=dict.fromkeys(written, "correct")
        )
        labels = {item: snapshot.train[item]["answer"].strip('"') for item in written}
        assert len(set(labels.values())) == 2
        rows = written_reasoning_dataset(snapshot, judge_rows=True)
        config = RiseCoTConfig(written_reasoning_steps=30, written_reasoning_learning_rate=5e-3)

        def reconstructions(model: str) -> dict[int, str]:
            judge = PolicyReconstructor(classification_spec(), load_model_and_processor(model)[1], judge="frozen",
                                        frozen_model=model, max_new_tokens=10)  # fmt: skip
            judge.trainer = SimpleNamespace(accelerator=Accelerator(cpu=True), model=torch.nn.Linear(1, 1))
            texts = judge(
                [ReconstructionRequest(text, snapshot.train[item]["image"]) for item, text in written.items()]
            )
            return dict(zip(written, texts, strict=True))

        def right(texts: dict[int, str]) -> list[bool]:
            return [labels[item] in text for item, text in texts.items()]

        assert not all(right(reconstructions(str(tiny_model_dir))))
        final = imitate_written_reasonings(str(tiny_model_dir), rows, config, tmp_path / "imitation")
        assert all(right(reconstructions(str(final))))

    def test_a_judge_that_reads_no_image_gets_no_judge_rows(self, sourced, tiny_model_dir, tmp_path):
        # cot_only prompts carry no image, and one SFT batch cannot mix prompts with and without one
        config = RiseCoTConfig(
            written_reasoning_steps=1, reconstruction_input="cot_only", max_steps=1, per_device_train_batch_size=2,
            num_generations=2, max_completion_length=8, reconstruction_max_new_tokens=6,
        )  # fmt: skip
        summary = train_rise_cot(str(tiny_model_dir), sourced, config, tmp_path)
        assert summary["written_reasonings"] == 1 and not summary["judge_read_written"]

    def test_grpo_goes_on_from_the_model_that_learnt_them(self, sourced, tiny_model_dir, tmp_path):
        config = RiseCoTConfig(
            written_reasoning_steps=2,
            max_steps=1,
            per_device_train_batch_size=2,
            num_generations=2,
            max_completion_length=8,
            reconstruction_max_new_tokens=6,
        )
        summary = train_rise_cot(str(tiny_model_dir), sourced, config, tmp_path)
        assert summary["written_reasonings"] == 1 and summary["steps"] == 1 and summary["judge_read_written"]
        # GRPO's adapter sits on the model that learnt the written reasonings
        assert summary["started_from"] == str(tmp_path / "written" / "final")
        assert (tmp_path / "final" / "adapter_config.json").is_file()
        assert len(list(read_rollouts(tmp_path / "rollouts"))) == 2


class TestReconstructionCompletions:
    """`rise_cot.grpo_completion="reconstruction"`: reasonings sampled without gradient, GRPO trains the policy's
    reconstruction of the annotation from each (the authors' code)."""

    def config(self, **overrides) -> RiseCoTConfig:
        settings = dict(
            grpo_completion="reconstruction", max_steps=1, per_device_train_batch_size=4, num_generations=2,
            max_completion_length=8, reconstruction_max_new_tokens=16, learning_rate=0.01,
        )  # fmt: skip
        return RiseCoTConfig(**{**settings, **overrides})

    def test_the_completions_are_label_answers_read_from_logged_reasonings(self, snapshot, tiny_model_dir, tmp_path):
        summary = train_rise_cot(str(tiny_model_dir), snapshot, self.config(), tmp_path)
        assert summary["steps"] == 1 and summary["grpo_completion"] == "reconstruction"
        rows = list(read_rollouts(tmp_path / "rollouts"))
        assert len(rows) == 4
        labels = set(classification_spec().labels)
        answers = {str(json.loads(row["answer"])) for row in rows}
        assert {row["item_id"] for row in rows} == set(snapshot.train["item_id"])
        for row in rows:
            # the reconstruction is GRPO's (label-constrained) completion, the reasoning the sampled one it read
            assert row["reconstruction"].startswith("<answer>") and row["reconstructed_answer"] in labels
            assert row["cot"] and row["completion"] != row["reconstruction"]
            assert row["accuracy"] == float(json.dumps(row["reconstructed_answer"]) == row["answer"])
        assert answers <= labels
        # the policy trained (an adapter) and logged the reconstruction reward's parts
        assert (tmp_path / "final" / "adapter_config.json").is_file()
        assert "rise/reconstruction_accuracy" in summary["last_log"]

    def test_a_reconstruction_from_the_reasoning_alone_sees_no_image(self, snapshot, tiny_model_dir, tmp_path):
        summary = train_rise_cot(str(tiny_model_dir), snapshot, self.config(reconstruction_input="cot_only"), tmp_path)
        assert summary["steps"] == 1
        assert {row["reconstruction_input"] for row in read_rollouts(tmp_path / "rollouts")} == {"cot_only"}

    def test_the_information_gain_is_refused_with_the_reason(self):
        with pytest.raises(ValueError, match="information gain needs a second"):
            self.config(reconstruction_input="information_gain")

    def test_a_full_finetune_needs_no_judge(self):
        assert self.config(use_lora=False, judge="base").judge == "base"  # the judge setting is not used

    def test_a_separate_judge_is_refused(self, snapshot, tiny_model_dir, tmp_path):
        with pytest.raises(ValueError, match="a separate judge has no part"):
            train_rise_cot(str(tiny_model_dir), snapshot, self.config(), tmp_path, reconstruct=lambda requests: [])

"""Classification answers decoded from the label list: the logits processor on the demo model's real tokenizer, the
annotation path and `rise annotate` on the committed demo model, and GRPO rollouts through the RFT stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers the sub-commands on `cli`)
from app.cli import cli
from app.services.imports import import_paths
from app.services.projects import create_project
from db.crud.predictions import list_predictions
from rise.annotate import AnnotationInput, GenerationSettings, annotate_images
from rise.label_constraint import LabelAnswerConstraint, allowed_tokens_per_position, constrained_labels
from rise.modeling import load_model_and_processor
from rise.synthetic import generate_scene_for_rule, get_rule
from rise.tasks import TaskSpec, TaskType
from rise.training.config import RFTStageConfig
from rise.training.rft import train_rft
from tests.utils.training import synthetic_snapshot

DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
LABELS = ("sunny", "stormy", "balanced")
END_ID = 2


@pytest.fixture(scope="module")
def demo():
    return load_model_and_processor(str(DEMO_MODEL), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tokenizer(demo):
    return demo[1].tokenizer


def run_constraint(tokenizer, text: str, labels, *, seed: int, answer_first: bool = False, steps: int = 40):
    """Generate `text` token by token as a model would, then pick random tokens among those the constraint allows
    until it forces the end token; returns what was written after `text` and whether the end was forced."""
    ids = tokenizer.encode("Which label?", add_special_tokens=False)
    constraint = LabelAnswerConstraint(tokenizer, [labels], end_ids={END_ID}, answer_first=answer_first)
    generator = torch.Generator().manual_seed(seed)
    for token in tokenizer.encode(text, add_special_tokens=False) if text else []:
        constraint(torch.tensor([ids]), torch.rand(1, len(tokenizer), generator=generator))
        ids.append(token)
    written: list[int] = []
    for _ in range(steps):
        scores = constraint(torch.tensor([ids]), torch.rand(1, len(tokenizer), generator=generator))
        token = int(scores[0].argmax())
        if token == END_ID:
            return tokenizer.decode(written), True
        written.append(token)
        ids.append(token)
    return tokenizer.decode(written), False


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reasoning", ["One red circle.</think>", "One red circle.</think><", "Two.</think><answer>"])
def test_after_the_reasoning_only_a_listed_answer_and_the_end_can_follow(tokenizer, seed, reasoning):
    written, ended = run_constraint(tokenizer, reasoning, LABELS, seed=seed)
    full = reasoning + written
    assert ended, full
    answer = full.split("<answer>")[-1]
    assert answer.endswith("</answer>") and answer.removesuffix("</answer>") in LABELS, full


@pytest.mark.parametrize("seed", range(4))
def test_a_reasoning_closed_without_its_bracket_is_still_followed_by_a_listed_answer(tokenizer, seed):
    written, ended = run_constraint(tokenizer, "A small circle.</think", ("zorpa", "kelmi"), seed=seed)
    assert ended and written in {">" + f"<answer>{label}</answer>" for label in ("zorpa", "kelmi")}


@pytest.mark.parametrize("seed", range(4))
def test_an_answer_first_completion_is_constrained_from_its_first_token(tokenizer, seed):
    written, ended = run_constraint(tokenizer, "", LABELS, seed=seed, answer_first=True)
    assert ended and written in {f"<answer>{label}</answer>" for label in LABELS}


def test_the_reasoning_is_left_alone(tokenizer):
    prompt = tokenizer.encode("Which label?", add_special_tokens=False)
    constraint = LabelAnswerConstraint(tokenizer, [LABELS, None], end_ids={END_ID})
    scores = torch.rand(2, len(tokenizer))
    constraint(torch.tensor([prompt, prompt]), scores.clone())
    reasoning = prompt + tokenizer.encode("One red circle at the top", add_special_tokens=False)
    free = constraint(torch.tensor([reasoning, reasoning]), scores.clone())
    assert torch.equal(free, scores)
    closed = prompt + tokenizer.encode("Red.</think>", add_special_tokens=False)
    after = constraint(torch.tensor([closed, closed]), scores.clone())
    assert torch.isinf(after[0]).sum() > len(tokenizer) - 10  # the labelled row: a handful of tokens left
    assert torch.equal(after[1], scores[1])  # the row without labels stays free


@pytest.mark.parametrize(
    ("completion", "answer_first"),
    [
        ("<think>There is one object. A small red circle.</think><answer>zorpa</answer>", False),
        ("<answer>kelmi</answer>", True),
        ("<think>One object.</think><answer>zor</answer>", False),  # leaves every listed answer halfway
    ],
)
def test_allowed_tokens_per_position_are_what_the_constraint_allows_as_the_completion_is_written(
    tokenizer, completion, answer_first
):
    labels = ("zorpa", "kelmi", "balanced")
    completion_ids = [*tokenizer.encode(completion, add_special_tokens=False), END_ID]
    per_position = allowed_tokens_per_position(
        tokenizer, labels, completion_ids, end_ids={END_ID}, answer_first=answer_first
    )
    ids = tokenizer.encode("Which label?", add_special_tokens=False)
    constraint = LabelAnswerConstraint(tokenizer, [labels], end_ids={END_ID}, answer_first=answer_first)
    constrained = 0
    for token, allowed in zip(completion_ids, per_position, strict=True):
        scores = constraint(torch.tensor([ids]), torch.zeros(1, len(tokenizer)))
        masked = bool(torch.isinf(scores).any())
        if masked and token not in torch.isfinite(scores[0]).nonzero().flatten().tolist():
            break  # the completion left every listed answer; teacher forcing beyond that is not generation
        assert allowed == (torch.isfinite(scores[0]).nonzero().flatten().tolist() if masked else None)
        constrained += allowed is not None
        ids.append(token)
    answer_tokens = len(tokenizer.encode(completion[completion.index("<answer>") :], add_special_tokens=False))
    if "zor<" in completion:
        assert 0 < constrained < answer_tokens and per_position[-1] is None
    else:
        assert constrained >= answer_tokens  # every token of the answer, and the end after it
        assert per_position[-1] == [END_ID]


def test_only_single_label_classification_is_constrained():
    assert constrained_labels(TaskSpec(TaskType.classification, labels=LABELS)) == LABELS
    assert constrained_labels(TaskSpec(TaskType.classification, labels=LABELS, distribution=True)) is None
    assert constrained_labels(TaskSpec(TaskType.detection, labels=("circle",))) is None


def test_the_demo_model_answers_a_new_rule_from_its_labels_and_reasons_as_before(demo):
    """The committed model answers mood questions with words that are not mood labels; constrained, every answer is a
    label, and greedy reasoning before the answer is unchanged."""
    model, processor = demo
    rule = get_rule("mood")
    spec = TaskSpec(TaskType.classification, labels=rule.labels)
    inputs = [AnnotationInput(generate_scene_for_rule(rule, 500 + i)[0].image) for i in range(16)]
    unconstrained = GenerationSettings(max_new_tokens=120, constrain_labels=False)
    free = annotate_images(model, processor, spec, inputs, unconstrained)
    listed = annotate_images(model, processor, spec, inputs, GenerationSettings(max_new_tokens=120))
    assert any(result.answer not in rule.labels for result in free)  # what the constraint is for
    assert all(result.error is None and result.answer in rule.labels for result in listed)
    assert [r.raw_text.split("</think>")[0] for r in free] == [r.raw_text.split("</think>")[0] for r in listed]
    assert all(0 < result.score <= 1 for result in listed)


def test_rft_rollouts_answer_from_the_labels(tmp_path):
    """GRPO through the RFT stage on the demo model: every rollout is a well-formed, listed answer (the format
    reward is 1 on all of them), which unconstrained the demo model rarely writes for the shape labels."""
    snapshot = synthetic_snapshot(tmp_path / "snapshot", n_train=2, n_eval=0)
    config = RFTStageConfig(
        start_from="base", max_steps=1, num_generations=4, max_completion_length=64, use_lora=True,
        per_device_train_batch_size=4, logging_steps=1, learning_rate=1e-4, human_feedback_weight=0.0,
    )  # fmt: skip
    summary = train_rft(str(DEMO_MODEL), snapshot, config, tmp_path / "rft")
    assert summary["steps"] == 1
    assert summary["last_log"]["rewards/format_reward/mean"] == pytest.approx(1.0)


def test_annotate_command_decodes_from_the_labels_unless_asked_for_free_answers(runtime, tmp_path):
    """`rise annotate` on a mood project with the demo model: every stored answer is a label; with --free-answers
    what the model writes unaided is stored, parse errors included."""
    rule = get_rule("mood")
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(16):
        paths.append(folder / f"mood_{i:02d}.png")
        generate_scene_for_rule(rule, 500 + i)[0].image.save(paths[-1])
    env = {"RISE_DATA_DIR": str(runtime.settings.data_dir), "RISE_DATABASE_URL": runtime.settings.database_url}
    stored = {}
    for name, flags in (("listed", []), ("free", ["--free-answers"])):
        project_id = create_project(runtime, name, "classification", list(rule.labels)).id
        import_paths(runtime, project_id, paths)
        command = ["annotate", "--project", name, "--model", str(DEMO_MODEL), "--max-new-tokens", "120", *flags]
        done = CliRunner().invoke(cli, command, env=env)
        assert done.exit_code == 0, done.output
        with runtime.sessions.begin() as session:
            stored[name] = [p.answer for p in list_predictions(session=session) if p.item.project_id == project_id]
    assert len(stored["listed"]) == 16 and all(answer in rule.labels for answer in stored["listed"])
    assert len(stored["free"]) == 16 and any(answer not in rule.labels for answer in stored["free"])

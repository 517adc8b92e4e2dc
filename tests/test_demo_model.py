"""The demo base model: perception examples, fast batching, the training loop, metrics, CLI, the committed folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers the sub-commands on `cli`)
from app.cli import cli
from app.services.demo import DemoError, annotate_demo, setup_demo
from db.crud import predictions as predictions_crud
from db.crud import projects as projects_crud
from rise.boxes import box_iou
from rise.demo_model import DemoModelConfig, train_demo_model
from rise.demo_model.batching import IGNORE_INDEX, BatchEncoder, rope_positions
from rise.demo_model.card import rebuild_command, rewrite_metrics_section
from rise.demo_model.examples import GROUNDING_SPEC, KINDS, make_example
from rise.demo_model.label_lists import (
    ATTRIBUTES,
    WORDS,
    attribute_in_list_task,
    attribute_values,
    defined_attribute,
    defined_label_task,
    is_held_out,
    quoted_definition,
    random_labels,
)
from rise.demo_model.metrics import caption_scores, evaluate_perception, parse_caption, recall_at
from rise.demo_model.recall import recall_question
from rise.demo_model.train import _accumulate_gradients, learning_rate_at, max_objects_at, training_batch
from rise.demo_model.vision_targets import COLOUR_CLASSES, SHAPE_CLASSES, CellHead, cell_targets, stack_targets
from rise.parsing import parse_completion
from rise.prompts import annotation_messages
from rise.synthetic import (
    DEFAULT_SHAPES,
    ODD_ONE_OUT_QUERY,
    ObjectSpec,
    caption,
    compose_scene,
    generate_scene,
    naming_sentence,
    short_name,
    write_demo_assets,
)
from rise.synthetic.vocabulary import POSITION_PHRASES, number_word
from rise.tasks import TaskType

ATTRIBUTE_WORDS = {word for attribute in ATTRIBUTES for word in attribute_values(attribute)}
COMMITTED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
# A model far smaller than the real one, so training tests take a second or two.
SMALL = dict(hidden_size=32, num_layers=1, intermediate_size=64, vision_embed_dim=32, vision_depth=1, vocab_size=512)


class TestExamples:
    @pytest.mark.parametrize("kind", KINDS)
    def test_same_seed_yields_the_same_example(self, kind):
        first, second = make_example(kind, [3, 4]), make_example(kind, [3, 4])
        assert first.messages == second.messages and first.completion == second.completion

    @pytest.mark.parametrize("kind", ["detection", "grounding", "classification", "defined", "defined-shape"])
    def test_annotation_completions_parse_back_to_the_answer(self, kind):
        for seed in range(20):
            example = make_example(kind, seed)
            parsed = parse_completion(example.completion, example.spec, example.scene.width, example.scene.height)
            quote = quoted_definition(example.spec, str(example.answer))
            assert parsed.format_ok and parsed.cot == " ".join(filter(None, [caption(example.scene), quote]))
            if kind in ("classification", "defined", "defined-shape"):
                assert parsed.answer == example.answer and example.answer in example.spec.labels
            else:  # boxes go through the 0..1000 frame and back: within a pixel
                gold = [o["box"] for o in example.answer] if kind == "detection" else [example.answer]
                got = [o["box"] for o in parsed.answer] if kind == "detection" else [parsed.answer]
                assert all(
                    abs(a - b) <= 0.5 for g, p in zip(gold, got, strict=True) for a, b in zip(g, p, strict=True)
                )

    def test_no_project_rule_is_taught(self):
        for seed in range(200):
            example = make_example("classification", seed)
            # the mood classes are a benchmark rule, not perception training
            assert not set(example.spec.labels) & {"sunny", "stormy", "balanced"}
            for kind in ("grounding", "named-grounding", "named-reasoning"):
                assert make_example(kind, seed).query != ODD_ONE_OUT_QUERY

    def test_named_grounding_names_the_querys_object_last_and_boxes_it(self):
        alike = 0
        for seed in range(60):
            example = make_example("named-grounding", seed)
            scene = example.scene
            parsed = parse_completion(example.completion, GROUNDING_SPEC, scene.width, scene.height)
            (target,) = [obj for obj in scene.objects if list(obj.box) == example.answer]
            assert parsed.format_ok and parsed.cot == f"{caption(scene)} {naming_sentence(target, example.query)}"
            assert box_iou(parsed.answer, example.answer) > 0.99
            # the name picks out one object: no twin of its colour and shape in the same grid cell
            assert [short_name(obj) for obj in scene.objects].count(short_name(target)) == 1
            alike += len(scene.objects) >= 3 and len({(o.colour, o.shape) for o in scene.objects}) == 2
            # the RISE-CoT reasoning prompt on the same draw writes the same reasoning
            reasoning = make_example("named-reasoning", seed)
            assert reasoning.completion == f"<think>{parsed.cot}</think>" and reasoning.query == example.query
        assert 15 <= alike <= 45  # about half the scenes are alike objects with one differing

    def test_alike_scenes_are_described_or_detected_plainly(self):
        examples = [make_example("alike-scenes", seed) for seed in range(40)]
        assert {e.kind for e in examples} == {"describe", "detection"}
        for example in examples:
            kinds = [(obj.colour, obj.shape, obj.size) for obj in example.scene.objects]
            assert len(kinds) >= 3 and sorted(kinds.count(kind) for kind in set(kinds))[0] == 1
            assert example.completion.startswith(f"<think>{caption(example.scene)}</think>")
        # a curriculum step with fewer than three objects gets a plain scene
        assert len(make_example("alike-scenes", 1, max_objects=2).scene.objects) <= 2

    def test_defined_shape_defines_every_label_by_a_lone_objects_shape(self):
        for seed in range(30):
            example = make_example("defined-shape", seed)
            (obj,) = example.scene.objects
            quote = quoted_definition(example.spec, str(example.answer))
            assert quote == f"the object is a {obj.shape}: {example.answer}."
            meanings = [quoted_definition(example.spec, label) for label in example.spec.labels]
            assert all(m is not None and m.startswith("the object is a ") for m in meanings)
            assert 2 <= len(meanings) <= len(DEFAULT_SHAPES)

    def test_a_lone_objects_shape_is_asked_with_the_shape_words_as_the_list(self):
        # Detection prompts list the four shape words; classification must list them too, or the model takes such a
        # list for a detection prompt and writes boxes instead of an answer.
        shapes = set(DEFAULT_SHAPES)
        asked = [
            e for e in (make_example("classification", seed) for seed in range(600)) if set(e.spec.labels) <= shapes
        ]
        assert len(asked) >= 5
        assert all(len(e.scene.objects) == 1 and e.answer == e.scene.objects[0].shape for e in asked)
        assert any(set(e.spec.labels) == shapes for e in asked)

    def test_most_classification_lists_are_fresh_made_up_labels_answered_from_the_list(self):
        examples = [make_example("classification", seed) for seed in range(300)]
        made_up = [e for e in examples if not set(e.spec.labels) <= ATTRIBUTE_WORDS]
        assert 0.75 <= len(made_up) / len(examples) <= 0.95
        assert all(e.answer in e.spec.labels for e in examples)
        names = [label for e in made_up for label in e.spec.labels if label not in ATTRIBUTE_WORDS]
        strings = [name for name in names if name not in WORDS]
        assert len(set(strings)) > 0.95 * len(strings)  # a pool too large to memorise: strings rarely repeat
        assert len({name for name in names if name in WORDS}) > 60  # and many ordinary words
        assert not any(is_held_out(name) for name in names)  # held-out names are for the metrics only
        assert {len(e.spec.labels) for e in made_up} == set(range(2, 9))

    def test_defined_labels_are_answered_by_the_definition_that_holds(self):
        rng = np.random.default_rng(0)
        for _ in range(40):
            scene, spec, truth = defined_label_task(rng, 4)
            prompt = annotation_messages(spec)[0]["content"][1]["text"]
            # Meaning first, then the label: "the object is red: zorpa."
            pairs = [line.removesuffix(".").rsplit(": ", 1)[::-1] for line in prompt.splitlines() if ": " in line]
            lines = {label: f"{meaning}." for label, meaning in pairs if label in spec.labels}
            assert set(lines) == set(spec.labels) and len(set(lines.values())) == len(lines)
            obj = scene.objects[0]
            count = len(scene.objects)
            holds = {
                f"the object is {obj.colour}.", f"the object is a {obj.shape}.", f"the object is {obj.size}.",
                f"the object is {POSITION_PHRASES[obj.position]}.",
                "there is one object." if count == 1 else f"there are {number_word(count)} objects.",
            }  # fmt: skip
            assert [label for label, meaning in lines.items() if meaning in holds] == [truth]

    def test_the_attribute_a_defined_question_asks_about_is_read_back_from_its_definitions(self):
        rng = np.random.default_rng(1)
        for attribute in ATTRIBUTES:  # positions include "at the top" and "at the top left": whole meanings match
            for _ in range(10):
                _, spec, _ = defined_label_task(rng, 4, attribute=attribute)
                assert defined_attribute(spec) == attribute
        _, spec, _ = attribute_in_list_task(rng, 4)
        assert defined_attribute(spec) is None  # a list without definitions

    def test_defined_reasoning_quotes_the_line_that_holds_right_before_the_answer(self):
        examples = [make_example("defined", seed) for seed in range(40)]
        for example in examples:
            reasoning = example.completion.removeprefix("<think>").partition("</think>")[0]
            quote = reasoning.removeprefix(caption(example.scene) + " ")
            prompt = example.messages[0]["content"][1]["text"]
            assert quote in prompt.splitlines() and quote.endswith(f": {example.answer}.")
            assert example.completion.endswith(f"{quote}</think><answer>{example.answer}</answer>")

    def test_training_never_asks_a_list_nothing_decides(self):
        # Every made-up answer is the attribute word the image shows or the label the prompt defines; none is drawn
        # at random, which would teach that a label need not depend on the image.
        examples = [make_example(kind, seed) for kind in ("classification", "reconstruction") for seed in range(300)]
        for example in examples:
            spec = example.spec
            if spec is None or spec.task_type is not TaskType.classification:
                continue
            if spec.prompt_overrides:
                assert quoted_definition(spec, example.answer) is not None
            else:
                assert example.answer in ATTRIBUTE_WORDS
        with pytest.raises(ValueError, match="Unknown example kind"):
            make_example("undefined", 0)

    def test_held_out_label_sets_never_share_a_name_with_training(self):
        rng = np.random.default_rng(1)
        held_out = {name for _ in range(200) for name in random_labels(rng, 8, held_out=True)}
        training = {name for _ in range(200) for name in random_labels(rng, 8, held_out=False)}
        assert held_out and training and not held_out & training
        assert all(is_held_out(name) for name in held_out)

    def test_reasoning_targets_the_caption_and_reconstruction_the_answer(self):
        reasoning, reconstruction = make_example("reasoning", 5), make_example("reconstruction", 5)
        assert reasoning.completion == f"<think>{caption(reasoning.scene)}</think>"
        assert reconstruction.completion.startswith("<answer>") and "<think>" not in reconstruction.completion

    def test_unknown_kind_is_refused_with_the_choices(self):
        with pytest.raises(ValueError, match="choose from"):
            make_example("segmentation", 0)

    def test_recall_questions_ask_for_names_the_prompt_gives(self):
        rng = np.random.default_rng(3)
        for _ in range(60):
            prompt, answer = recall_question(rng, "lookup")
            *table, asked = prompt.splitlines()
            values = dict(line.rstrip(".").split(": ") for line in table)
            assert values[asked.rstrip(":")] == answer and len(set(values.values())) == len(values)
            prompt, answer = recall_question(rng, "repeat", held_out=True)
            assert prompt.endswith(f"{answer}.") and all(is_held_out(name) for name in answer.split(", "))

    def test_recall_examples_are_text_only_and_train_on_the_names(self, tiny_model):
        _, processor = tiny_model
        examples = [make_example("recall", [2, i]) for i in range(6)]
        assert all(e.image is None and e.completion in e.messages[0]["content"][0]["text"] for e in examples)
        batch = BatchEncoder(processor, answer_choices=True).encode(examples)
        assert "pixel_values" not in batch and not batch["answer_choices"]
        row = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
        assert processor.tokenizer.decode(row).startswith(examples[0].completion)


class TestBatching:
    def test_positions_and_tokens_match_the_processor_and_the_model(self, tiny_model):
        model, processor = tiny_model
        encoder = BatchEncoder(processor)
        examples = [make_example(kind, [1, i]) for i, kind in enumerate(KINDS * 2)]
        batch = encoder.encode(examples)
        expected, _ = model.model.get_rope_index(
            batch["input_ids"],
            mm_token_type_ids=batch["mm_token_type_ids"],
            image_grid_thw=batch["image_grid_thw"],
            attention_mask=batch["attention_mask"],
        )
        mask = batch["attention_mask"].bool()
        assert torch.equal(expected[:, mask], batch["position_ids"][:, mask])
        with_image = next(e for e in examples if e.image is not None)
        text = processor.apply_chat_template(with_image.messages, tokenize=False, add_generation_prompt=True)
        reference = processor(text=[text], images=[with_image.image], return_tensors="pt")
        single = encoder.encode([with_image])
        prompt_length = reference["input_ids"].shape[1]
        assert torch.equal(single["input_ids"][0, :prompt_length], reference["input_ids"][0])
        assert torch.equal(single["pixel_values"], reference["pixel_values"])
        assert (single["labels"][0, :prompt_length] == IGNORE_INDEX).all()

    def test_elided_instruction_keeps_the_positions_of_what_follows(self, tiny_model):
        _, processor = tiny_model
        encoder = BatchEncoder(processor)
        full = make_example("detection", 2)
        short = make_example("detection", 2)
        short.elide = True
        a, b = encoder.encode([full]), encoder.encode([short])
        assert b["input_ids"].shape[1] < a["input_ids"].shape[1] - 50
        completion_tokens = int((a["labels"] != IGNORE_INDEX).sum())
        # The completion sits at the same positions (the same distance from the image) with or without the text.
        assert torch.equal(a["position_ids"][:, 0, -completion_tokens:], b["position_ids"][:, 0, -completion_tokens:])

    def test_answer_choices_cover_a_listed_answer_only_and_lower_its_loss(self, tiny_model):
        model, processor = tiny_model

        def labelled(kind: str) -> Any:
            return next(e for e in (make_example(kind, [7, i]) for i in range(80)) if e.spec.labels)

        examples = [make_example("defined", 7), labelled("classification"), make_example("detection", 3)]
        examples += [labelled("reconstruction")]
        batch = BatchEncoder(processor, answer_choices=True).encode(examples)
        choices = batch["answer_choices"]
        # Every listed answer; not the detection's.
        assert {row for row, _, _ in choices} == {0, 1, 3}
        for row, position, ids in choices:
            assert int(batch["labels"][row, position]) in ids and len(ids) < len(processor.tokenizer)
        # The answer's tokens, and the end of the turn after it, all in the choices; nothing of the reasoning.
        completion = processor.tokenizer(examples[0].completion[examples[0].completion.index("</think>") :])
        assert len(completion["input_ids"]) <= sum(row == 0 for row, _, _ in choices) + 1
        plain = _accumulate_gradients(model, BatchEncoder(processor), examples, micro_batches=1)
        restricted = _accumulate_gradients(model, BatchEncoder(processor, answer_choices=True), examples, 1)
        assert np.isfinite(restricted) and restricted < plain  # the listed answers compete only with each other

    def test_text_only_example_has_plain_positions(self):
        positions = rope_positions([5, 6, 7], image_token_id=9, grid_thw=None, merge_size=2)
        assert positions.tolist() == [[0, 1, 2]] * 3


class TestSchedule:
    def test_warmup_then_cosine_to_the_floor(self):
        config = DemoModelConfig(warmup_steps=10, learning_rate=1e-3, min_lr_ratio=0.1)
        assert learning_rate_at(config, 0, 0.0) == pytest.approx(1e-4)
        assert learning_rate_at(config, 10, 0.0) == pytest.approx(1e-3)
        assert learning_rate_at(config, 500, 1.0) == pytest.approx(1e-4)

    def test_curriculum_grows_from_one_object_to_four(self):
        config = DemoModelConfig(curriculum_steps=300)
        assert [max_objects_at(config, s) for s in (0, 100, 200, 300, 9000)] == [1, 2, 3, 4, 4]

    def test_batches_are_a_function_of_seed_and_step(self):
        config = DemoModelConfig(batch_size=4)
        first, again = training_batch(config, 7), training_batch(config, 7)
        assert [e.completion for e in first] == [e.completion for e in again]
        assert [e.completion for e in first] != [e.completion for e in training_batch(config, 8)]

    def test_bad_settings_are_refused(self):
        with pytest.raises(ValueError, match="mix"):
            DemoModelConfig(mix={"poetry": 1.0})
        with pytest.raises(ValueError, match="hidden_size"):
            DemoModelConfig(hidden_size=100, num_heads=3)


class TestCellTargets:
    def test_each_cell_names_the_object_covering_it(self):
        specs = [
            ObjectSpec("circle", "blue", "large", 20, x=40, y=40),  # cells (2, 2), (2, 3), (3, 2), (3, 3)
            ObjectSpec("triangle", "yellow", "small", 10, x=3, y=3),  # cell (0, 0)
        ]
        scene = compose_scene(specs, seed=0, place=False)
        targets = cell_targets(scene, 4, 4)
        assert COLOUR_CLASSES[targets.colours[0]] == "yellow" and SHAPE_CLASSES[targets.shapes[0]] == "triangle"
        assert COLOUR_CLASSES[targets.colours[15]] == "blue" and SHAPE_CLASSES[targets.shapes[15]] == "circle"
        assert targets.colours[5] == 0 and targets.shapes[5] == 0  # an empty cell is background

    def test_boxes_and_centres_are_in_grid_cells(self):
        scene = compose_scene([ObjectSpec("circle", "blue", "large", 20, x=40, y=40)], seed=0, place=False)
        targets = cell_targets(scene, 4, 4)  # 16 pixels a cell
        assert targets.covered.tolist() == [False] * 10 + [True, True, False, False, True, True]
        assert targets.boxes[15].tolist() == pytest.approx([40 / 16, 40 / 16, 60 / 16, 60 / 16])
        assert targets.boxes[0].tolist() == [0, 0, 0, 0]  # not covered: no box target
        assert targets.centres[4].tolist() == [0.5, 1.5]  # row 1, column 0

    def test_head_losses_backpropagate_to_the_features(self):
        head = CellHead(8)
        scene = compose_scene([ObjectSpec("circle", "blue", "large", 20, x=40, y=40)], seed=0, place=False)
        targets = stack_targets([cell_targets(scene, 4, 4)] * 2)
        vision, hidden = torch.randn(32, 8, requires_grad=True), torch.randn(32, 8, requires_grad=True)
        (head.vision_loss(vision, targets) + head.position_loss(hidden, targets)).backward()
        assert vision.grad.abs().sum() > 0 and hidden.grad.abs().sum() > 0

    def test_the_position_loss_is_zero_only_for_the_true_places(self):
        head = CellHead(6)
        scene = compose_scene([ObjectSpec("square", "red", "large", 20, x=2, y=2)], seed=0, place=False)
        targets = stack_targets([cell_targets(scene, 4, 4)])
        exact = torch.cat([targets["centres"], targets["boxes"]], dim=1)
        with torch.no_grad():  # a head that copies its input: the loss is the distance to the targets
            head.place.weight.copy_(torch.eye(6))
            head.place.bias.zero_()
        assert head.position_loss(exact, targets).item() == pytest.approx(0.0)
        assert head.position_loss(exact + 0.5, targets).item() == pytest.approx(1.0)  # off by half a cell, twice


class TestMetrics:
    def test_a_true_caption_scores_full_marks(self):
        scene = generate_scene(11)
        assert all(value == 1.0 for value in caption_scores(scene, caption(scene)).values())

    def test_a_missing_or_wrong_caption_scores_zero(self):
        scene = generate_scene(11)
        assert caption_scores(scene, None) == {"count": 0.0, "colour": 0.0, "shape": 0.0, "position": 0.0, "size": 0.0}
        count, objects = parse_caption("There are two objects. A tiny red blob.")
        assert count == 2 and objects == []

    def test_recall_needs_the_right_label_and_overlap(self):
        gold = [{"label": "circle", "box": [0, 0, 10, 10]}, {"label": "square", "box": [20, 20, 30, 30]}]
        assert recall_at(gold, gold) == 1.0
        assert recall_at([{"label": "square", "box": [0, 0, 10, 10]}], gold) == 0.0
        assert recall_at([], gold) == 0.0


def test_training_writes_a_loadable_model_folder_with_card_and_metrics(tmp_path):
    from rise.modeling import load_model_and_processor

    config = DemoModelConfig(**SMALL, max_steps=3, max_minutes=None, batch_size=4, warmup_steps=1, eval_images=2)
    result = train_demo_model(tmp_path / "demo", config, command="rise model build-demo demo --steps 3")
    assert result["training"]["steps"] == 3 and result["training"]["final_loss"] > 0
    card = (tmp_path / "demo" / "README.md").read_text()
    assert "rise model build-demo demo --steps 3" in card and "| caption: colour accuracy (per object) |" in card
    summary = json.loads((tmp_path / "demo" / "training_summary.json").read_text())
    assert set(summary["metrics"]) >= {"caption", "detection", "grounding", "classification", "label_lists"}
    assert set(summary["metrics"]["label_lists"]) >= {"attribute", "defined", "undefined", "mood", "shape"}
    assert "| label lists: accuracy when the prompt defines each label by an attribute |" in card
    assert "| the same, labels defined by colour / shape / size / position / count |" in card
    by_attribute = summary["metrics"]["label_lists"]["defined"]["by_attribute"]
    assert set(by_attribute) <= set(ATTRIBUTES) and sum(a["items"] for a in by_attribute.values()) == 2
    # Both ways an answer can be decoded: from the listed labels (the app) and unaided (the model alone).
    assert summary["metrics"]["label_lists"]["constrain_labels"] is True
    assert summary["metrics"]["label_lists_unconstrained"]["constrain_labels"] is False
    assert "| as the app decodes (from the list) | the model alone |" in card
    model, _ = load_model_and_processor(str(tmp_path / "demo"), device="cpu")
    assert sum(p.numel() for p in model.parameters()) == result["parameters"]

    # Measured again from the folder alone: the same training record, metrics and card rows written anew.
    (tmp_path / "demo" / "README.md").write_text("stale")
    measured = CliRunner().invoke(
        cli, ["model", "measure-demo", str(tmp_path / "demo")], env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    assert measured.exit_code == 0, measured.output
    again = json.loads((tmp_path / "demo" / "training_summary.json").read_text())
    assert again["training"] == summary["training"] and again["metrics"]["label_lists"]["items"] == 2
    assert "label lists never seen in training" in (tmp_path / "demo" / "README.md").read_text()

    # A card that has its sections keeps everything but the metrics: its training text describes the build.
    card = (tmp_path / "demo" / "README.md").read_text()
    (tmp_path / "demo" / "README.md").write_text(card.replace("## Training data\n", "## Training data\nAs built.\n"))
    again["metrics"]["label_lists"]["defined"]["accuracy"] = 0.125
    rewrite_metrics_section(tmp_path / "demo", again)
    rewritten = (tmp_path / "demo" / "README.md").read_text()
    assert "## Training data\nAs built.\n" in rewritten and "| 0.12 |" in rewritten
    assert rewritten.count("| label lists never seen in training") == 1 and rewritten.count("## Rebuild") == 1


def test_cli_builds_a_demo_model(tmp_path):
    out = tmp_path / "cli-demo"
    result = CliRunner().invoke(
        cli,
        ["model", "build-demo", str(out), "--steps", "2", "--batch-size", "2", "--eval-images", "0", "--threads", "1"]
        + ["--label-choice-loss", "--mix", "classification=1"],
        env={"COLUMNS": "200", "NO_COLOR": "1"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Trained" in result.output and (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "rise model build-demo" in card and "--label-choice-loss" in card


def test_training_goes_on_from_a_model_folder_and_the_card_keeps_every_command(tmp_path):
    config = DemoModelConfig(**SMALL, max_steps=2, max_minutes=None, batch_size=2, warmup_steps=1)
    first = train_demo_model(tmp_path / "first", config, evaluate=False, command="rise model build-demo first")
    weights = (tmp_path / "first" / "model.safetensors").read_bytes()
    more = dataclasses.replace(config, hidden_size=64, mix={"grounding": 1.0})  # the folder's sizes win
    second = train_demo_model(
        tmp_path / "second",
        more,
        evaluate=False,
        command="rise model build-demo second",
        continue_from=tmp_path / "first",
    )
    assert second["parameters"] == first["parameters"]
    assert second["config"]["hidden_size"] == first["config"]["hidden_size"] != 64  # the card describes the model
    assert (tmp_path / "second" / "model.safetensors").read_bytes() != weights  # it trained on
    assert [run["command"] for run in second["earlier"]] == ["rise model build-demo first"]
    card = (tmp_path / "second" / "README.md").read_text()
    assert "rise model build-demo first\nrise model build-demo second" in card  # rebuilt by both, in order
    assert "Before that, `rise model build-demo first --position-loss-weight 0`: 2 steps" not in card
    assert "Before that, `rise model build-demo first`: 2 steps" in card  # its config has the position loss


def test_the_card_rebuilds_runs_from_before_the_position_loss_without_it():
    old_run = {"command": "rise model build-demo m --minutes 40", "config": {"learning_rate": 0.003}}
    assert rebuild_command(old_run) == "rise model build-demo m --minutes 40 --position-loss-weight 0"
    new_run = {"command": "rise model build-demo m --position-loss-weight 1", "config": {"position_loss_weight": 1.0}}
    assert rebuild_command(new_run) == new_run["command"]


@pytest.mark.parametrize(
    ("mix", "message"),
    [("detection=0.5,grounding", "Write the mix as kind=weight"), ("pictures=1", "Unknown or missing example kinds")],
)
def test_cli_refuses_a_bad_mix(tmp_path, mix, message):
    result = CliRunner().invoke(
        cli, ["model", "build-demo", str(tmp_path / "m"), "--mix", mix], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "m").exists()


def test_cli_refuses_to_continue_from_a_missing_model_folder(tmp_path):
    arguments = ["model", "build-demo", str(tmp_path / "m"), "--continue-from", str(tmp_path / "nothing")]
    result = CliRunner().invoke(cli, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "no demo model folder" in result.output
    assert not (tmp_path / "m").exists()


def _demo_predictions(runtime, name: str) -> tuple[list[dict[str, Any]], str | None]:
    """A demo project's predictions (reasoning, image file name, whether the item has a trusted annotation) and the
    project's default model."""
    with runtime.sessions.begin() as session:
        project = projects_crud.require_project(session=session, name=name)
        items = {item.id: item for item in projects_crud.list_items(session=session, project_id=project.id)}
        rows = [
            {
                "cot": row.cot,
                "file": items[row.item_id].original_name,
                "annotated": bool(items[row.item_id].annotations),
            }
            for row in predictions_crud.list_predictions(session=session, project_id=project.id)
        ]
        return rows, project.default_model


def test_demo_annotation_sets_the_default_model_and_resumes(runtime, tmp_path, tiny_model_dir):
    manifest = write_demo_assets(tmp_path / "assets", n_images=8, n_mood=8)
    summary = setup_demo(runtime, manifest)
    names = [p.name for p in summary.projects]
    first = annotate_demo(runtime, [p.id for p in summary.projects], tiny_model_dir)
    assert sum(run.stored for run in first) > 0
    for name in names:
        predictions, default_model = _demo_predictions(runtime, name)
        assert default_model == str(tiny_model_dir.resolve())
        assert not any(row["annotated"] for row in predictions)  # ground-truth items are never sent to the model
    assert sum(run.stored for run in annotate_demo(runtime, [p.id for p in summary.projects], tiny_model_dir)) == 0


def test_demo_annotation_without_a_model_folder_says_how_to_build_one(runtime, tmp_path):
    from app.commands._common import with_cli_hint

    with pytest.raises(DemoError, match="No model folder at .*Build the demo model first") as raised:
        annotate_demo(runtime, [], tmp_path / "missing")
    assert "`rise" not in str(raised.value)  # the service says what is missing; the command line adds its syntax
    assert "rise model build-demo" in with_cli_hint(raised.value)


@pytest.mark.skipif(not (COMMITTED_MODEL / "config.json").is_file(), reason="the demo model is not built yet")
class TestCommittedModel:
    def test_is_small_and_documented(self):
        size = sum(f.stat().st_size for f in COMMITTED_MODEL.iterdir() if f.is_file())
        assert size <= 20 * 1024 * 1024
        card = (COMMITTED_MODEL / "README.md").read_text()
        assert "rise model build-demo" in card and "## Metrics" in card

    def test_describes_what_is_in_the_images(self):
        from rise.modeling import load_model_and_processor

        model, processor = load_model_and_processor(str(COMMITTED_MODEL), device="cpu")
        metrics = evaluate_perception(model, processor, n_images=8, seed=77)
        # Far above chance (one colour in six, one shape in four): the model sees.
        assert metrics["caption"]["colour"] > 0.5 and metrics["caption"]["shape"] > 0.4
        assert metrics["detection"]["format_ok"] > 0.8

    def test_demo_reasoning_describes_the_shapes_in_each_image(self, runtime, tmp_path):
        manifest = write_demo_assets(tmp_path / "assets", n_images=8, seed=3, n_mood=8)
        truth = {item["file"]: item["answer"] for item in json.loads(manifest.read_text())["projects"][1]["items"]}
        summary = setup_demo(runtime, manifest)
        annotate_demo(runtime, [p.id for p in summary.projects])
        predictions, _ = _demo_predictions(runtime, "demo-detection")
        assert predictions and all(row["cot"] for row in predictions)
        hits = total = 0
        for row in predictions:
            _, described = parse_caption(row["cot"])
            gold = truth[f"images/{row['file']}"]  # in reading order, as the caption
            total += len(gold)
            hits += sum(i < len(described) and described[i].shape == g["label"] for i, g in enumerate(gold))
        assert hits / total > 0.4  # one shape in four by chance

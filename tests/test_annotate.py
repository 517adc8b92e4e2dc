"""Batched annotation with a real tiny model: batching, sampling, confidence, bad images."""

from __future__ import annotations

import pytest
from PIL import Image

from rise.annotate import AnnotationInput, GenerationSettings, annotate_images, generate_completions
from rise.parsing import parse_completion
from rise.prompts import annotation_messages
from rise.synthetic import SceneConfig, generate_scene
from rise.tasks import TaskSpec

SHAPES = TaskSpec("classification", labels=("circle", "square", "triangle", "diamond"))
DETECTION = TaskSpec("detection", labels=("circle", "square"))
GROUNDING = TaskSpec("grounding")


def scene_images(n: int, start: int = 0) -> list[Image.Image]:
    # Mixed sizes, so a batch holds prompts of different lengths and left padding is exercised.
    sizes = (64, 48, 80)
    return [generate_scene(start + i, SceneConfig(size=sizes[i % len(sizes)])).image for i in range(n)]


def inputs_for(images: list[Image.Image]) -> list[AnnotationInput]:
    return [AnnotationInput(image) for image in images]


class TestAnnotateImages:
    def test_one_result_per_input_with_raw_text_and_score(self, tiny_model):
        model, processor = tiny_model
        results = annotate_images(
            model, processor, SHAPES, inputs_for(scene_images(5)), GenerationSettings(max_new_tokens=12)
        )
        assert len(results) == 5
        for result in results:
            assert result.raw_text  # the untrained model writes something, even if nothing parses
            assert 0.0 < result.score <= 1.0  # mean token probability
            assert (result.answer is None) == (result.error is not None)

    def test_batched_greedy_matches_one_at_a_time(self, tiny_model):
        # Left padding must not change what the model writes: the same text batched or alone.
        model, processor = tiny_model
        inputs = inputs_for(scene_images(6))
        batched = annotate_images(
            model, processor, SHAPES, inputs, GenerationSettings(batch_size=6, max_new_tokens=16)
        )
        single = annotate_images(model, processor, SHAPES, inputs, GenerationSettings(batch_size=1, max_new_tokens=16))
        assert [r.raw_text for r in batched] == [r.raw_text for r in single]
        assert [r.score for r in batched] == pytest.approx([r.score for r in single], rel=1e-3)
        assert len({r.raw_text for r in batched}) > 1  # different images, different text: the test can see a mix-up

    def test_result_fields_come_from_the_parser(self, tiny_model):
        model, processor = tiny_model
        image = scene_images(1)[0]
        [result] = annotate_images(
            model, processor, DETECTION, [AnnotationInput(image)], GenerationSettings(max_new_tokens=12)
        )
        parsed = parse_completion(result.raw_text, DETECTION, image.width, image.height)
        assert (result.cot, result.answer, result.error, result.format_ok) == (
            parsed.cot,
            parsed.answer,
            parsed.error,
            parsed.format_ok,
        )

    def test_grounding_query_reaches_the_prompt(self, tiny_model):
        model, processor = tiny_model
        results = annotate_images(
            model,
            processor,
            GROUNDING,
            [AnnotationInput(image, query="the red circle") for image in scene_images(2)],
            GenerationSettings(max_new_tokens=8),
        )
        assert len(results) == 2
        text = processor.apply_chat_template(annotation_messages(GROUNDING, "the red circle"), tokenize=False)
        assert "the red circle" in text

    def test_sampling_several_answers_scores_their_agreement(self, tiny_model):
        model, processor = tiny_model
        settings = GenerationSettings(max_new_tokens=10, temperature=1.0, num_samples=3, seed=1)
        results = annotate_images(model, processor, SHAPES, inputs_for(scene_images(2)), settings)
        for result in results:
            assert len(result.samples) == 3
            assert result.raw_text in result.samples
            assert 0.0 <= result.score <= 1.0
            # An untrained model's samples do not parse, so nothing agrees.
            assert result.score == 0.0 or result.answer is not None

    def test_same_seed_repeats_a_sampled_run(self, tiny_model):
        model, processor = tiny_model
        settings = GenerationSettings(max_new_tokens=10, temperature=1.0, num_samples=2, seed=7)
        first = annotate_images(model, processor, SHAPES, inputs_for(scene_images(2)), settings)
        second = annotate_images(model, processor, SHAPES, inputs_for(scene_images(2)), settings)
        assert [r.samples for r in first] == [r.samples for r in second]

    def test_min_new_tokens_makes_every_completion_full_length(self, tiny_model):
        model, processor = tiny_model
        conversations = [annotation_messages(SHAPES)] * 3
        settings = GenerationSettings(max_new_tokens=9, min_new_tokens=9)
        completions = generate_completions(model, processor, conversations, scene_images(3), settings)
        assert [c[0].num_tokens for c in completions] == [9, 9, 9]

    def test_image_the_processor_rejects_fails_alone(self, tiny_model):
        model, processor = tiny_model
        images = scene_images(3)
        images.insert(1, Image.new("RGB", (1000, 2)))  # aspect ratio 500: Qwen's resize refuses over 200
        results = annotate_images(model, processor, SHAPES, inputs_for(images), GenerationSettings(max_new_tokens=6))
        assert len(results) == 4
        assert results[1].error.startswith("the model could not read this image")
        assert results[1].raw_text == "" and results[1].score is None
        assert all(r.raw_text for i, r in enumerate(results) if i != 1)

    def test_progress_reports_each_batch(self, tiny_model):
        model, processor = tiny_model
        calls = []
        settings = GenerationSettings(batch_size=2, max_new_tokens=4)
        annotate_images(
            model, processor, SHAPES, inputs_for(scene_images(5)), settings, progress=lambda *a: calls.append(a)
        )
        assert calls == [(2, 5), (4, 5), (5, 5)]

    def test_right_padding_processor_is_refused(self, tiny_model_dir):
        from rise.modeling import load_model_and_processor

        model, processor = load_model_and_processor(str(tiny_model_dir), device="cpu")
        processor.tokenizer.padding_side = "right"
        with pytest.raises(ValueError, match="left padding"):
            annotate_images(
                model, processor, SHAPES, inputs_for(scene_images(1)), GenerationSettings(max_new_tokens=2)
            )


class TestGenerationSettings:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"batch_size": 0}, "batch_size"),
            ({"max_new_tokens": 0}, "max_new_tokens"),
            ({"max_new_tokens": 4, "min_new_tokens": 5}, "min_new_tokens"),
            ({"temperature": -0.1}, "temperature"),
            ({"top_p": 0.0}, "top_p"),
            ({"num_samples": 0}, "num_samples"),
            ({"num_samples": 4}, "Set temperature > 0"),  # greedy samples would all be identical
        ],
    )
    def test_bad_values_are_refused_with_the_fix(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            GenerationSettings(**kwargs)

    def test_defaults_are_greedy_single_sample_batches_of_16(self):
        settings = GenerationSettings()
        assert (settings.batch_size, settings.num_samples, settings.do_sample) == (16, 1, False)

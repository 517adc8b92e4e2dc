"""Held-out perception metrics of a model on synthetic scenes, through the app's own annotation path.

The model annotates fresh scenes with `rise.annotate.annotate_images` (greedy), exactly as the app would:

- detection prompts: the caption in the reasoning is read back object by object (`parse_caption`) and compared in
  reading order with the truth (colour, shape, position, object count); the boxes are scored by Hungarian-matched
  IoU (`mean_iou`) and by the share of true objects found with the right label at IoU >= 0.5 (`recall_at_50`);
- grounding prompts (queries naming one object by attributes, size or position): mean IoU and IoU >= 0.5 rate;
- classification prompts about a visible attribute (colour, size, position, count): accuracy.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rise.annotate import AnnotationInput, GenerationSettings, annotate_images, generate_completions
from rise.boxes import box_iou
from rise.demo_model.examples import DETECTION_SPEC, GROUNDING_SPEC, attribute_task, grounding_task
from rise.label_constraint import constrained_labels
from rise.parsing import ParsedCompletion, parse_completion
from rise.prompts import annotation_messages
from rise.rewards import matched_iou_score
from rise.synthetic import COLOURS, DEFAULT_SHAPES, SIZES, Scene, SceneConfig, detection_answer, generate_scene
from rise.synthetic.vocabulary import NUMBER_WORDS, POSITION_PHRASES
from rise.tasks import TaskSpec

_PHRASE_TO_POSITION = {phrase: position for position, phrase in POSITION_PHRASES.items()}
_OBJECT_RE = re.compile(
    rf"\b({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(DEFAULT_SHAPES + ('star',))}) "
    rf"({'|'.join(sorted(_PHRASE_TO_POSITION, key=len, reverse=True))})"
)
_COUNT_RE = re.compile(rf"\bThere (?:is|are) ({'|'.join(NUMBER_WORDS)}) objects?\b")


@dataclass(frozen=True)
class CaptionObject:
    size: str
    colour: str
    shape: str
    position: str


def parse_caption(text: str | None) -> tuple[int | None, list[CaptionObject]]:
    """The object count a caption states (None if it states none) and the objects it describes, in order.

    >>> parse_caption("There are two objects. A small red circle at the top. A large blue square on the left.")
    (2, [CaptionObject(size='small', colour='red', shape='circle', position='top'), \
CaptionObject(size='large', colour='blue', shape='square', position='left')])
    """
    if not text:
        return None, []
    count_match = _COUNT_RE.search(text)
    count = NUMBER_WORDS.index(count_match.group(1)) if count_match else None
    objects = [CaptionObject(m[0], m[1], m[2], _PHRASE_TO_POSITION[m[3]]) for m in _OBJECT_RE.findall(text)]
    return count, objects


def recall_at(predicted: list[dict], gold: list[dict], threshold: float = 0.5) -> float:
    """Share of gold boxes matched (Hungarian on IoU, labels must agree) by a prediction with IoU >= threshold."""
    if not gold:
        return 1.0
    if not predicted:
        return 0.0
    ious = np.array(
        [[box_iou(p["box"], g["box"]) if p["label"] == g["label"] else 0.0 for g in gold] for p in predicted]
    )
    rows, cols = linear_sum_assignment(ious, maximize=True)
    return float(np.sum(ious[rows, cols] >= threshold)) / len(gold)


def caption_scores(scene: Scene, text: str | None) -> dict[str, float]:
    """Per-scene attribute accuracies of a caption against the scene's objects, aligned in reading order."""
    count, described = parse_caption(text)
    truth = scene.objects
    scores = {"count": float(count == len(truth))}
    for attribute in ("colour", "shape", "position", "size"):
        hits = sum(
            i < len(described) and getattr(described[i], attribute) == getattr(obj, attribute)
            for i, obj in enumerate(truth)
        )
        scores[attribute] = hits / len(truth)
    return scores


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def answer_questions(
    model: Any, processor: Any, questions: list[tuple[Scene, TaskSpec]], settings: GenerationSettings
) -> list[ParsedCompletion]:
    """The model's parsed answers to classification questions that each have their own label list (and prompt), so
    they are batched as conversations rather than per task spec."""
    parsed = []
    for start in range(0, len(questions), settings.batch_size):
        batch = questions[start : start + settings.batch_size]
        conversations = [annotation_messages(spec) for _, spec in batch]
        labels = [constrained_labels(spec) for _, spec in batch]
        samples = generate_completions(model, processor, conversations, [s.image for s, _ in batch], settings, labels)
        parsed += [
            parse_completion(completion.text, spec, scene.width, scene.height)
            for (scene, spec), (completion, *_) in zip(batch, samples, strict=True)
        ]
    return parsed


def evaluate_perception(
    model: Any,
    processor: Any,
    *,
    n_images: int = 200,
    seed: int = 10_000,
    batch_size: int = 16,
    max_new_tokens: int = 224,
) -> dict[str, Any]:
    """Held-out perception metrics on `n_images` fresh scenes per prompt type (see the module docstring).

    Returns:
        `dict`: `caption` (colour, shape, position, size, count accuracy), `detection` (mean_iou, recall_at_50,
        format_ok), `grounding` (mean_iou, iou_at_50, format_ok), `classification` (accuracy, format_ok), the
        image count and the seconds it took.
    """
    started = time.perf_counter()
    settings = GenerationSettings(batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=0.0)
    config = SceneConfig()
    scenes = [generate_scene(int(s), config) for s in np.random.default_rng([seed, 1]).integers(2**31, size=n_images)]
    detections = annotate_images(
        model, processor, DETECTION_SPEC, [AnnotationInput(s.image) for s in scenes], settings
    )
    caption_rows = [caption_scores(s, r.cot) for s, r in zip(scenes, detections, strict=True)]
    golds = [detection_answer(s) for s in scenes]
    predicted = [r.answer if isinstance(r.answer, list) else [] for r in detections]

    rng = np.random.default_rng([seed, 2])
    grounding = [grounding_task(rng, config.max_objects) for _ in range(n_images)]
    inputs = [AnnotationInput(scene.image, query) for scene, query, _, _ in grounding]
    grounded = annotate_images(model, processor, GROUNDING_SPEC, inputs, settings)
    ious = [
        box_iou(r.answer, box) if r.answer is not None else 0.0
        for r, (_, _, box, _) in zip(grounded, grounding, strict=True)
    ]

    rng = np.random.default_rng([seed, 3])
    questions = [attribute_task(rng, config.max_objects) for _ in range(n_images)]
    answers = answer_questions(model, processor, [(scene, spec) for scene, spec, _ in questions], settings)
    attribute_hits = [float(parsed.answer == truth) for parsed, (_, _, truth) in zip(answers, questions, strict=True)]
    attribute_format = [float(parsed.format_ok) for parsed in answers]

    return {
        "images": n_images,
        "caption": {key: _mean([row[key] for row in caption_rows]) for key in caption_rows[0]},
        "detection": {
            "mean_iou": _mean([matched_iou_score(p, g) for p, g in zip(predicted, golds, strict=True)]),
            "recall_at_50": _mean([recall_at(p, g) for p, g in zip(predicted, golds, strict=True)]),
            "format_ok": _mean([float(r.format_ok) for r in detections]),
        },
        "grounding": {
            "mean_iou": _mean(ious),
            "iou_at_50": _mean([float(iou >= 0.5) for iou in ious]),
            "format_ok": _mean([float(r.format_ok) for r in grounded]),
        },
        "classification": {"accuracy": _mean(attribute_hits), "format_ok": _mean(attribute_format)},
        "seconds": round(time.perf_counter() - started, 1),
    }

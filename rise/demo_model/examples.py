"""Perception training examples for the demo base model: synthetic scenes asked about in the app's own prompts.

Every example is one image, the chat messages the app would send (`rise.prompts`) and the completion to learn. The
reasoning is always the scene's caption (`rise.synthetic.caption`: each object's size, colour, shape and coarse
position), so the model learns to say what it sees before it answers, in the `<think>…</think><answer>…</answer>`
form the app parses. What it is taught is perception only:

| kind | prompt | completion |
|---|---|---|
| describe | a short request for a description | `<think>caption</think>` |
| detection | annotate, labels = the four shapes | caption + every object's label and box |
| grounding | annotate, a query naming one object by attributes, size or position | caption + its box |
| named-grounding | as grounding, on plain or alike scenes (objects alike but one) | caption + the object named + box |
| alike-scenes | describe or detection, on alike objects with one differing | as describe or detection |
| classification | annotate, labels = colours, shapes, sizes, positions or counts | caption + the attribute |
| classification | annotate, a fresh made-up label list (`rise.demo_model.label_lists`) | caption + a label from it |
| defined | annotate, made-up labels the prompt defines by an attribute | caption + the line that holds + its label |
| defined-shape | as defined, every question about a lone object's shape | as defined |
| reasoning | RISE-CoT reasoning prompt (image + answer) | `<think>caption</think>` |
| named-reasoning | RISE-CoT reasoning prompt on a named-grounding task | `<think>caption + the object named</think>` |
| reconstruction | reconstruction prompt (scrubbed caption, image) | `<answer>…</answer>` |
| recall | text only: repeat made-up names, or look one up in a table (`rise.demo_model.recall`) | the names |

Where the prompt defines its labels, the reasoning ends by quoting the definition that holds ("… the object is
red: zorpa."): the label the answer copies is then the last thing written before it, instead of a line of the prompt
the model would have to find again while it writes the answer.

The named kinds end a grounding answer's reasoning with the object the query names, in the caption's words ("The red
circle at the top is the leftmost object."): the box is then the box of the object the reasoning named last, the
link a context-driven query needs (its reasoning can name the target but not quote the query's attributes). Alike
scenes (three or four objects alike but one) are the layouts such queries are asked on; described plainly, they
teach no rule, only to see each of several near-identical objects.

No labelling rule of any project is taught: not the "mood" rule and not the context-driven "odd one out" query.
Those are what RISE has to teach (`bench/learning.py`). A lone object's shape is asked like any other attribute: it
is perception, and a model never asked it mistook the four shape words for a detection prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from rise.demo_model.label_lists import (
    attribute_question,
    attribute_values,
    defined_label_task,
    label_list_task,
    quoted_definition,
    random_scene,
)
from rise.demo_model.recall import recall_messages, recall_question
from rise.leakage import scrub_leakage
from rise.parsing import format_answer
from rise.prompts import annotation_messages, answer_format, reasoning_messages, reconstruction_messages
from rise.synthetic import (
    DEFAULT_SHAPES,
    Scene,
    SceneConfig,
    caption,
    detection_answer,
    generate_odd_one_out_scene,
    grounding_candidates,
    naming_sentence,
    short_name,
)
from rise.tasks import Answer, TaskSpec, TaskType

KINDS: tuple[str, ...] = (
    "describe", "detection", "grounding", "classification", "defined", "reasoning", "reconstruction", "recall",
    "named-grounding", "named-reasoning", "alike-scenes", "defined-shape",
)  # fmt: skip
DEFAULT_MIX: dict[str, float] = {
    "describe": 0.4,
    "detection": 0.25,
    "grounding": 0.15,
    "classification": 0.12,
    "reasoning": 0.04,
    "reconstruction": 0.04,
}
# The short prompt of the "describe" kind. Its point is the image: with the app's prompts (a hundred tokens and
# more of instructions after the image) a model trained from scratch takes thousands of steps to start reading the
# image at all, while short description prompts get it reading colours within a few hundred.
DESCRIBE_PROMPT = "Describe every object in the image: its size, colour, shape and position."
# Query kinds the base model learns; "odd-one-out" is left for RISE to teach.
PERCEPTION_QUERY_KINDS: tuple[str, ...] = ("attribute", "size", "position")
DETECTION_SPEC = TaskSpec(TaskType.detection, labels=DEFAULT_SHAPES)
GROUNDING_SPEC = TaskSpec(TaskType.grounding)
# Of the classification examples, the share over fresh made-up label lists (`rise.demo_model.label_lists`); the rest
# list attribute words only.
LABEL_LIST_SHARE = 0.85
# Of the named kinds' scenes, the share of alike objects with one differing.
ALIKE_SHARE = 0.5
# The made-up list kinds training asks: those whose answer the image or the prompt decides. A list nothing decides
# (answered at random) is measured by the card but never trained: a build that fitted random answers learned a new
# rule (what RISE teaches) far worse, and one without them learned it again. The reading: it had learnt that an
# undecided label does not depend on the image, and a rule the model does not know yet is exactly such a prompt.
TRAINED_LIST_KINDS: tuple[str, ...] = ("attribute", "defined")


@dataclass
class PerceptionExample:
    """One training example: the image, the chat messages (one image part at most) and the completion text. Text-only
    recall examples have no image, scene or task spec."""

    kind: str
    image: Image.Image | None
    messages: list[dict]
    completion: str
    scene: Scene | None
    spec: TaskSpec | None
    answer: Answer
    query: str | None = None
    # The prompt's constant answer-format instruction: training may leave its tokens out while keeping their
    # positions (`rise.demo_model.batching`), which halves the cost of most examples.
    elidable: str | None = None
    elide: bool = False


def _think_answer(scene: Scene, answer_text: str, quote: str | None = None) -> str:
    """The caption (then `quote`, where given) as the reasoning, then the answer."""
    reasoning = caption(scene) if quote is None else f"{caption(scene)} {quote}"
    return f"<think>{reasoning}</think><answer>{answer_text}</answer>"


def _label_subset(rng: np.random.Generator, truth: str, pool: tuple[str, ...]) -> tuple[str, ...]:
    """The true label plus a random number of others from `pool`, shuffled, so the model reads the list it is given
    instead of memorising one."""
    others = [label for label in pool if label != truth]
    count = int(rng.integers(1, len(others) + 1))
    chosen = [truth, *(others[i] for i in rng.choice(len(others), size=count, replace=False))]
    rng.shuffle(chosen)
    return tuple(chosen)


def attribute_task(rng: np.random.Generator, max_objects: int) -> tuple[Scene, TaskSpec, str]:
    """A classification question about something visible: a lone object's colour, shape, size or position, or the
    count."""
    scene, attribute, truth = attribute_question(rng, max_objects)
    spec = TaskSpec(TaskType.classification, labels=_label_subset(rng, truth, attribute_values(attribute)))
    return scene, spec, truth


def classification_task(
    rng: np.random.Generator, max_objects: int, *, with_definitions: bool = True
) -> tuple[Scene, TaskSpec, str]:
    """A classification question: attribute words only, or a made-up label list of a trained kind (without the
    defined kind where the prompt cannot carry definitions: the reasoning and reconstruction prompts)."""
    if rng.random() >= LABEL_LIST_SHARE:
        return attribute_task(rng, max_objects)
    kinds = TRAINED_LIST_KINDS if with_definitions else tuple(k for k in TRAINED_LIST_KINDS if k != "defined")
    return label_list_task(rng, max_objects, kinds[int(rng.integers(len(kinds)))])


def alike_scene(rng: np.random.Generator, max_objects: int) -> Scene:
    """Three or more objects alike but one that differs in colour or shape (a plain scene while the curriculum allows
    fewer than three objects)."""
    if max_objects < 3:
        return random_scene(rng, max_objects)
    return generate_odd_one_out_scene(int(rng.integers(2**31)), SceneConfig(min_objects=3, max_objects=max_objects))


def grounding_task(
    rng: np.random.Generator, max_objects: int, *, named: bool = False
) -> tuple[Scene, str, list[float], int]:
    """A scene, a query that names exactly one of its objects by attributes, size or position, and the object's box
    and index. `named`: a share of the scenes alike objects with one differing, and only targets the caption's words
    pick out (no twin of the same colour and shape in the same grid cell), so a naming sentence is unambiguous."""
    while True:
        alike = named and bool(rng.random() < ALIKE_SHARE)
        scene = alike_scene(rng, max_objects) if alike else random_scene(rng, max_objects)
        names = [short_name(obj) for obj in scene.objects]
        candidates = [
            (query, index)
            for kind in PERCEPTION_QUERY_KINDS
            for query, index in grounding_candidates(scene, kind)
            if not named or names.count(names[index]) == 1
        ]  # attribute queries exist for almost every scene, so this loop rarely repeats
        if candidates:
            query, index = candidates[int(rng.integers(len(candidates)))]
            return scene, query, list(scene.objects[index].box), index


def _task(rng: np.random.Generator, max_objects: int) -> tuple[Scene, TaskSpec, Answer, str | None]:
    """A grounding or classification task, for the reasoning and reconstruction kinds (detection answers make those
    prompts several times longer, and the benchmarks' RISE tasks are grounding and classification)."""
    if rng.random() < 0.5:
        scene, query, box, _ = grounding_task(rng, max_objects)
        return scene, GROUNDING_SPEC, box, query
    scene, spec, label = classification_task(rng, max_objects, with_definitions=False)
    return scene, spec, label, None


def _scene_example(kind: str, scene: Scene) -> PerceptionExample:
    """A describe or detection example on `scene`."""
    if kind == "describe":
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DESCRIBE_PROMPT}]}]
        completion = f"<think>{caption(scene)}</think>"
        return PerceptionExample(
            kind, scene.image, messages, completion, scene, DETECTION_SPEC, detection_answer(scene)
        )
    answer = detection_answer(scene)
    text = format_answer(answer, DETECTION_SPEC, scene.width, scene.height)
    return PerceptionExample(
        kind, scene.image, annotation_messages(DETECTION_SPEC), _think_answer(scene, text), scene,
        DETECTION_SPEC, answer, elidable=answer_format(DETECTION_SPEC),
    )  # fmt: skip


def _named_grounding_example(kind: str, rng: np.random.Generator, max_objects: int) -> PerceptionExample:
    """A grounding task whose reasoning ends by naming the query's object: answered (named-grounding) or as the
    RISE-CoT reasoning prompt asks it, image and box given (named-reasoning)."""
    scene, query, box, index = grounding_task(rng, max_objects, named=True)
    reasoning = f"{caption(scene)} {naming_sentence(scene.objects[index], query)}"
    text = format_answer(box, GROUNDING_SPEC, scene.width, scene.height)
    if kind == "named-reasoning":
        messages = reasoning_messages(GROUNDING_SPEC, text, query)
        return PerceptionExample(
            kind, scene.image, messages, f"<think>{reasoning}</think>", scene, GROUNDING_SPEC, box, query
        )
    return PerceptionExample(
        kind, scene.image, annotation_messages(GROUNDING_SPEC, query),
        f"<think>{reasoning}</think><answer>{text}</answer>", scene, GROUNDING_SPEC, box, query,
        elidable=answer_format(GROUNDING_SPEC),
    )  # fmt: skip


def make_example(kind: str, seed: int | list[int], max_objects: int = 4) -> PerceptionExample:
    """The training example of `kind` drawn by `seed` (deterministic), with at most `max_objects` objects."""
    if kind not in KINDS:
        raise ValueError(f"Unknown example kind {kind!r}; choose from {list(KINDS)}")
    rng = np.random.default_rng(seed)
    if kind == "recall":
        prompt, names = recall_question(rng)
        return PerceptionExample(kind, None, recall_messages(prompt), names, None, None, names)
    if kind in ("describe", "detection"):
        return _scene_example(kind, random_scene(rng, max_objects))
    if kind == "alike-scenes":
        scene = alike_scene(rng, max_objects)
        return _scene_example("describe" if rng.random() < 0.5 else "detection", scene)
    if kind in ("named-grounding", "named-reasoning"):
        return _named_grounding_example(kind, rng, max_objects)
    if kind == "grounding":
        scene, query, box, _ = grounding_task(rng, max_objects)
        text = format_answer(box, GROUNDING_SPEC, scene.width, scene.height)
        messages = annotation_messages(GROUNDING_SPEC, query)
        return PerceptionExample(
            kind, scene.image, messages, _think_answer(scene, text), scene, GROUNDING_SPEC, box, query,
            elidable=answer_format(GROUNDING_SPEC),
        )  # fmt: skip
    if kind in ("classification", "defined", "defined-shape"):
        if kind == "classification":
            scene, spec, label = classification_task(rng, max_objects)
        elif kind == "defined":
            scene, spec, label = label_list_task(rng, max_objects, kind)
        else:
            scene, spec, label = defined_label_task(rng, max_objects, attribute="shape")
        # Where the prompt defines the labels, the reasoning ends by quoting the line that holds.
        completion = _think_answer(scene, label, quoted_definition(spec, label))
        return PerceptionExample(
            kind, scene.image, annotation_messages(spec), completion, scene, spec, label,
            elidable=answer_format(spec),
        )  # fmt: skip
    scene, spec, answer, query = _task(rng, max_objects)
    answer_text = format_answer(answer, spec, scene.width, scene.height)
    if kind == "reasoning":
        messages = reasoning_messages(spec, answer_text, query)
        return PerceptionExample(
            kind, scene.image, messages, f"<think>{caption(scene)}</think>", scene, spec, answer, query
        )
    # Reconstruction reads the caption as the RISE-CoT reward hands it over: scrubbed of labels and numbers. A
    # fifth of the time without the image, so reading the text is a skill of its own.
    cot = scrub_leakage(caption(scene), spec).text
    with_image = spec.has_boxes or bool(rng.random() < 0.8)
    messages = reconstruction_messages(spec, cot, query, with_image=with_image)
    return PerceptionExample(
        kind, scene.image if with_image else None, messages, f"<answer>{answer_text}</answer>", scene, spec, answer,
        query, elidable=answer_format(spec, with_reasoning=False),
    )  # fmt: skip


def sample_kind(rng: np.random.Generator, mix: dict[str, float]) -> str:
    names = list(mix)
    weights = np.array([mix[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def check_mix(mix: dict[str, Any]) -> None:
    unknown = sorted(set(mix) - set(KINDS))
    if unknown or not mix:
        raise ValueError(f"Unknown or missing example kinds {unknown or '()'} in the mix; choose from {list(KINDS)}")
    if any(float(w) < 0 for w in mix.values()) or sum(float(w) for w in mix.values()) <= 0:
        raise ValueError(f"Mix weights must be >= 0 with a positive sum, got {mix}")

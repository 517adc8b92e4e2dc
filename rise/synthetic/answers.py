"""Ground-truth answers for the box tasks: detection lists and grounding (referring query -> one box).

Grounding queries come in four kinds, each guaranteed to pick out exactly one object:
- "attribute": "the red circle", "the large square", with a position phrase only when attributes alone are ambiguous;
- "size": "the largest object" / "the smallest object", only when one object is the sole member of its size class;
- "position": "the leftmost object" and the like, only when it beats the runner-up by a clear margin;
- "odd-one-out": "the object that differs from the others", context-driven: the answer is the one object unlike the
  rest, whatever it looks like. `generate_odd_one_out_scene` makes scenes where this query applies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from rise.synthetic.language import count_sentence, object_sentence, short_name
from rise.synthetic.scene import ObjectSpec, Scene, SceneConfig, SceneObject, compose_scene, generate_scene
from rise.synthetic.vocabulary import POSITION_PHRASES, number_word
from rise.tasks import Box

QUERY_KINDS: tuple[str, ...] = ("attribute", "size", "position", "odd-one-out")
ODD_ONE_OUT_QUERY = "the object that differs from the others"
POSITION_MARGIN = 0.1  # "leftmost" etc. need a lead of 10% of the image side over the runner-up, to be visible
_ATTEMPTS = 1000

# Attribute combinations tried when naming an object, plainest first.
_ATTRIBUTE_SETS: tuple[tuple[str, ...], ...] = (
    ("shape",),
    ("colour", "shape"),
    ("size", "shape"),
    ("size", "colour", "shape"),
)
# (query, centre axis, sign): sign +1 picks the largest centre coordinate.
_EXTREMES: tuple[tuple[str, int, int], ...] = (
    ("the leftmost object", 0, -1),
    ("the rightmost object", 0, 1),
    ("the topmost object", 1, -1),
    ("the bottommost object", 1, 1),
)


def detection_answer(scene: Scene, with_colour: bool = False) -> list[dict[str, Any]]:
    """The detection answer (`rise.tasks` shape): one `{"label", "box"}` per object, labelled by shape.

    With `with_colour=True` the label is "red circle" and so on, for a finer label set.
    """
    return [
        {"label": f"{obj.colour} {obj.shape}" if with_colour else obj.shape, "box": list(obj.box)}
        for obj in scene.objects
    ]


@dataclass(frozen=True)
class GroundingExample:
    scene: Scene
    query: str
    box: Box
    kind: str


def grounding_candidates(scene: Scene, kind: str) -> list[tuple[str, int]]:
    """Every (query, object index) of `kind` that refers to exactly one object of `scene`."""
    if kind == "attribute":
        return _attribute_candidates(scene)
    if kind == "size":
        return _size_candidates(scene)
    if kind == "position":
        return _position_candidates(scene)
    if kind == "odd-one-out":
        odd = _odd_one_out(scene.objects)
        return [] if odd is None else [(ODD_ONE_OUT_QUERY, odd)]
    raise ValueError(f"Unknown query kind {kind!r}; choose from {list(QUERY_KINDS)}")


def query_kinds_for(scene: Scene) -> tuple[str, ...]:
    """The query kinds that can refer to some object of `scene` unambiguously."""
    return tuple(kind for kind in QUERY_KINDS if grounding_candidates(scene, kind))


def grounding_example(scene: Scene, seed: int, kind: str | None = None) -> tuple[str, Box]:
    """A referring query for one object of `scene` and that object's box, chosen by `seed`.

    The kind is drawn uniformly from those that apply to the scene unless `kind` is given; a `ValueError` says when
    the given kind (or, rarely, any kind) cannot refer to a single object here.
    """
    rng = np.random.default_rng(seed)
    kinds = [kind] if kind is not None else list(query_kinds_for(scene))
    candidates = [grounding_candidates(scene, k) for k in kinds]
    available = [pair for pair in candidates if pair]
    if not available:
        raise ValueError(f"No {kind or 'grounding'} query refers to exactly one object in scene {scene.seed}")
    chosen = available[int(rng.integers(len(available)))]
    query, index = chosen[int(rng.integers(len(chosen)))]
    return query, list(scene.objects[index].box)


def generate_odd_one_out_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Three or more objects, all the same shape, colour and size class except one that differs in colour or shape.

    The scene's `seed` regenerates it with this function (not with `generate_scene`).
    """
    config = config or SceneConfig()
    if config.max_objects < 3:
        raise ValueError(
            f"An odd one out needs at least three objects; set max_objects >= 3, got {config.max_objects}"
        )
    if len(config.shapes) < 2 and len(config.colours) < 2:
        raise ValueError("An odd one out needs at least two shapes or two colours in the config")
    rng = np.random.default_rng(seed)
    count = int(rng.integers(max(3, config.min_objects), config.max_objects + 1))
    shape = config.shapes[int(rng.integers(len(config.shapes)))]
    colour = config.colours[int(rng.integers(len(config.colours)))]
    size_class = ("small", "large")[int(rng.integers(2))]
    side = int(rng.integers(config.side_range(size_class)[0], config.side_range(size_class)[1] + 1))
    differ_in_colour = len(config.shapes) < 2 or (len(config.colours) >= 2 and bool(rng.integers(2)))
    if differ_in_colour:
        others = [c for c in config.colours if c != colour]
        odd = ObjectSpec(shape, others[int(rng.integers(len(others)))], size_class, side)
    else:
        others = [s for s in config.shapes if s != shape]
        odd = ObjectSpec(others[int(rng.integers(len(others)))], colour, size_class, side)
    specs = [ObjectSpec(shape, colour, size_class, side) for _ in range(count - 1)]
    specs.insert(int(rng.integers(count)), odd)
    return compose_scene(specs, seed, config, rng=rng)


def odd_one_out_working(scene: Scene) -> str:
    """The worked reasoning to the odd one out: the caption with each object's colour and shape and how many of them
    came so far after its sentence, then the one that stayed at one, named as its sentence names it.

    >>> odd_one_out_working(generate_odd_one_out_scene(1))  # doctest: +NORMALIZE_WHITESPACE
    'There are three objects. A large blue triangle in the centre: blue triangle one. A large blue triangle on the
    right: blue triangle two. A large blue diamond at the bottom: blue diamond one. The blue diamond at the bottom
    differs from the others.'
    """
    odd = _odd_one_out(scene.objects)
    if odd is None:
        raise ValueError(f"Scene {scene.seed} has no object unlike all the others")
    # As with mood's working (`rise.synthetic.rules`), each step sits right after the sentence it reads, and the
    # count carries on from the last step that named the same kind, so no step needs the image.
    counts: dict[str, int] = {}
    sentences = [count_sentence(scene)]
    for obj in scene.objects:
        kind = f"{obj.colour} {obj.shape}"
        counts[kind] = counts.get(kind, 0) + 1
        sentences.append(object_sentence(obj, f"{kind} {number_word(counts[kind])}"))
    sentences.append(f"The {short_name(scene.objects[odd])} differs from the others.")
    return " ".join(sentences)


def generate_grounding_example(
    seed: int, config: SceneConfig | None = None, kind: str | None = None
) -> GroundingExample:
    """A scene made for a query kind (drawn uniformly unless given), a query of that kind and its box."""
    config = config or SceneConfig()
    rng = np.random.default_rng([seed, 0x6B0C5])
    kind = kind or QUERY_KINDS[int(rng.integers(len(QUERY_KINDS)))]
    if kind not in QUERY_KINDS:
        raise ValueError(f"Unknown query kind {kind!r}; choose from {list(QUERY_KINDS)}")
    if kind in ("size", "position"):  # both compare objects, so a lone object never qualifies
        config = dataclasses.replace(config, min_objects=max(2, config.min_objects))
    for _ in range(_ATTEMPTS):
        scene_seed = int(rng.integers(2**31))
        scene = (
            generate_odd_one_out_scene(scene_seed, config)
            if kind == "odd-one-out"
            else generate_scene(scene_seed, config)
        )
        if grounding_candidates(scene, kind):
            query, box = grounding_example(scene, scene_seed, kind=kind)
            return GroundingExample(scene=scene, query=query, box=box, kind=kind)
    raise ValueError(f"No scene for a {kind!r} query in {_ATTEMPTS} tries under {config}")


def _matches(obj: SceneObject, target: SceneObject, attributes: tuple[str, ...]) -> bool:
    return all(getattr(obj, name) == getattr(target, name) for name in attributes)


def _attribute_candidates(scene: Scene) -> list[tuple[str, int]]:
    candidates = []
    for index, target in enumerate(scene.objects):
        for attributes in _ATTRIBUTE_SETS:
            if sum(_matches(obj, target, attributes) for obj in scene.objects) == 1:
                candidates.append(("the " + " ".join(getattr(target, name) for name in attributes), index))
        if any(i == index for _, i in candidates):
            continue
        # Attributes alone are ambiguous (twins): add the grid position if that separates the twins.
        twins = [obj for obj in scene.objects if _matches(obj, target, _ATTRIBUTE_SETS[-1])]
        if sum(obj.position == target.position for obj in twins) == 1:
            name = " ".join(getattr(target, name) for name in _ATTRIBUTE_SETS[-1])
            candidates.append((f"the {name} {POSITION_PHRASES[target.position]}", index))
    return candidates


def _size_candidates(scene: Scene) -> list[tuple[str, int]]:
    if len(scene.objects) < 2:
        return []
    candidates = []
    for size_class, query in (("large", "the largest object"), ("small", "the smallest object")):
        members = [i for i, obj in enumerate(scene.objects) if obj.size == size_class]
        if len(members) == 1:
            candidates.append((query, members[0]))
    return candidates


def _position_candidates(scene: Scene) -> list[tuple[str, int]]:
    if len(scene.objects) < 2:
        return []
    margin = POSITION_MARGIN * scene.width
    candidates = []
    for query, axis, sign in _EXTREMES:
        centres = [sign * (obj.box[axis] + obj.box[axis + 2]) / 2 for obj in scene.objects]
        ranked = sorted(range(len(centres)), key=lambda i: -centres[i])
        if centres[ranked[0]] - centres[ranked[1]] >= margin:
            candidates.append((query, ranked[0]))
    return candidates


def _odd_one_out(objects: tuple[SceneObject, ...]) -> int | None:
    """The index of the one object unlike all the others, which are alike; None if there is no such object."""
    if len(objects) < 3:
        return None
    kinds = [(obj.shape, obj.colour, obj.size) for obj in objects]
    for index, kind in enumerate(kinds):
        rest = kinds[:index] + kinds[index + 1 :]
        if all(other == rest[0] for other in rest) and kind != rest[0]:
            return index
    return None

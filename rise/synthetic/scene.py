"""Synthetic scenes: a few flat-coloured shapes on a pale background, with exact ground truth for every object.

Everything is a pure function of the seed: `generate_scene(seed, config)` always draws the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from rise.synthetic.drawing import background, shape_mask
from rise.synthetic.vocabulary import (
    ALL_SHAPES,
    COLOURS,
    DEFAULT_SHAPES,
    FAMILY_OF_COLOUR,
    POSITIONS,
    SIZE_FRACTIONS,
    position_of,
)
from rise.tasks import Box

_READING_ORDER = {name: index for index, name in enumerate(name for row in POSITIONS for name in row)}
_LAYOUT_ATTEMPTS = 100  # fresh layouts tried per set of objects; four large objects on 64x64 need a few
_SPEC_DRAWS = 50  # sets of objects drawn before giving up: a redraw usually has fewer large objects
_PLACEMENT_ATTEMPTS = 50  # positions tried per object within one layout


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like.

    Args:
        size (`int`): width and height of the square image in pixels.
        min_objects (`int`), max_objects (`int`): how many objects a scene holds, drawn uniformly in this range.
        shapes (`tuple[str, ...]`): shapes to draw from (`rise.synthetic.vocabulary.ALL_SHAPES`).
        colours (`tuple[str, ...]`): colour names to draw from (`rise.synthetic.vocabulary.COLOURS`).
        textured (`bool`): a faint smooth texture on the background instead of a flat tone.
        gap (`int`): the least number of background pixels between two objects, and between an object and the edge.
    """

    size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    textured: bool = True
    gap: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "colours", tuple(self.colours))
        if self.size < 32:
            raise ValueError(f"size {self.size} is too small to draw recognisable shapes; use size >= 32")
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(
                f"Need 1 <= min_objects <= max_objects <= 6, got {self.min_objects}..{self.max_objects}; "
                "e.g. SceneConfig(min_objects=1, max_objects=4)"
            )
        unknown_shapes = [shape for shape in self.shapes if shape not in ALL_SHAPES]
        if not self.shapes or unknown_shapes:
            raise ValueError(f"Unknown or missing shapes {unknown_shapes or '()'}; choose from {list(ALL_SHAPES)}")
        unknown_colours = [colour for colour in self.colours if colour not in COLOURS]
        if not self.colours or unknown_colours:
            raise ValueError(f"Unknown or missing colours {unknown_colours or '()'}; choose from {list(COLOURS)}")
        if self.gap < 1:
            raise ValueError(f"gap must be at least 1 pixel so objects never touch, got {self.gap}")

    def side_range(self, size_class: str) -> tuple[int, int]:
        """The smallest and largest object side in pixels for a size class ("small" or "large")."""
        low, high = SIZE_FRACTIONS[size_class]
        return max(3, round(low * self.size)), max(3, round(high * self.size))


@dataclass(frozen=True)
class SceneObject:
    """One drawn object and its ground truth.

    `box` is the tight pixel box `[x1, y1, x2, y2]` of the drawn pixels, x2/y2 exclusive; `position` the 3x3 grid
    cell of its centre ("top left", "top", ..., "centre", ..., "bottom right").
    """

    shape: str
    colour: str
    size: str
    box: Box
    position: str

    @property
    def colour_family(self) -> str:
        return FAMILY_OF_COLOUR[self.colour]

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@dataclass(frozen=True)
class Scene:
    """An image and the objects in it, in reading order (top row first, left to right within a grid row)."""

    image: Image.Image
    objects: tuple[SceneObject, ...]
    seed: int
    config: SceneConfig = field(default_factory=SceneConfig)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


@dataclass(frozen=True)
class ObjectSpec:
    """What to draw where: a shape of `side` pixels whose cell's top-left corner is (x, y)."""

    shape: str
    colour: str
    size: str
    side: int
    x: int = 0
    y: int = 0


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Draw a random scene; the same `seed` and `config` always give the same pixels and ground truth.

    >>> scene = generate_scene(0)
    >>> scene.image.size, 1 <= len(scene.objects) <= 4
    ((64, 64), True)
    """
    config = config or SceneConfig()
    rng = np.random.default_rng(seed)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(_SPEC_DRAWS):
        specs = [_random_spec(rng, config) for _ in range(count)]
        placed = _random_layout(rng, specs, config)
        if placed is not None:
            return compose_scene(placed, seed, config, rng=rng, place=False)
    raise ValueError(f"Could not fit {count} objects into a {config.size}px image; lower max_objects")


def _random_spec(rng: np.random.Generator, config: SceneConfig) -> ObjectSpec:
    size_class = ("small", "large")[int(rng.integers(2))]
    low, high = config.side_range(size_class)
    return ObjectSpec(
        shape=config.shapes[int(rng.integers(len(config.shapes)))],
        colour=config.colours[int(rng.integers(len(config.colours)))],
        size=size_class,
        side=int(rng.integers(low, high + 1)),
    )


def compose_scene(
    specs: list[ObjectSpec],
    seed: int,
    config: SceneConfig | None = None,
    *,
    rng: np.random.Generator | None = None,
    place: bool = True,
) -> Scene:
    """Draw given objects: at random non-overlapping places (`place=True`) or at each spec's own x, y.

    Hand-placed specs must fit the image and keep `config.gap` pixels apart; a clear `ValueError` says which do not.
    """
    config = config or SceneConfig()
    rng = rng if rng is not None else np.random.default_rng(seed)
    pixels = background(rng, config.size, config.size, config.textured)
    if place:
        placed = _random_layout(rng, specs, config)
        if placed is None:
            sides = [spec.side for spec in specs]
            raise ValueError(f"Could not fit objects with sides {sides} into a {config.size}px image; use fewer")
        specs = placed
    else:
        _check_layout(specs, config)
    objects = [_draw(pixels, spec, config.size) for spec in specs]
    objects.sort(key=lambda obj: (_READING_ORDER[obj.position], obj.box[1], obj.box[0]))
    return Scene(image=Image.fromarray(pixels, mode="RGB"), objects=tuple(objects), seed=seed, config=config)


def _draw(pixels: np.ndarray, spec: ObjectSpec, image_size: int) -> SceneObject:
    mask = shape_mask(spec.shape, spec.side)
    region = pixels[spec.y : spec.y + spec.side, spec.x : spec.x + spec.side]
    region[mask] = COLOURS[spec.colour]
    rows, cols = np.nonzero(mask)
    box = [
        float(spec.x + cols.min()),
        float(spec.y + rows.min()),
        float(spec.x + cols.max() + 1),
        float(spec.y + rows.max() + 1),
    ]
    return SceneObject(
        shape=spec.shape,
        colour=spec.colour,
        size=spec.size,
        box=box,
        position=position_of(box, image_size, image_size),
    )


def _random_layout(rng: np.random.Generator, specs: list[ObjectSpec], config: SceneConfig) -> list[ObjectSpec] | None:
    """Random top-left corners keeping every cell `gap` pixels from the others and the edge; None if none found."""
    # Place the largest first: they are the hardest to fit once small ones are scattered around.
    order = sorted(range(len(specs)), key=lambda i: -specs[i].side)
    for _ in range(_LAYOUT_ATTEMPTS):
        placed: dict[int, ObjectSpec] = {}
        for index in order:
            spec = specs[index]
            high = config.size - config.gap - spec.side
            for _ in range(_PLACEMENT_ATTEMPTS):
                x, y = (int(v) for v in rng.integers(config.gap, high + 1, size=2))
                candidate = ObjectSpec(spec.shape, spec.colour, spec.size, spec.side, x, y)
                if all(_apart(candidate, other, config.gap) for other in placed.values()):
                    placed[index] = candidate
                    break
            else:
                break
        if len(placed) == len(specs):
            return [placed[i] for i in range(len(specs))]
    return None


def _check_layout(specs: list[ObjectSpec], config: SceneConfig) -> None:
    for spec in specs:
        if spec.x < 0 or spec.y < 0 or spec.x + spec.side > config.size or spec.y + spec.side > config.size:
            raise ValueError(f"{spec} does not fit inside a {config.size}px image")
    for i, first in enumerate(specs):
        for second in specs[i + 1 :]:
            if not _apart(first, second, config.gap):
                raise ValueError(f"{first} and {second} are closer than gap={config.gap} pixels")


def _apart(a: ObjectSpec, b: ObjectSpec, gap: int) -> bool:
    """True when the two cells are separated by at least `gap` pixels along x or along y."""
    return (
        a.x + a.side + gap <= b.x
        or b.x + b.side + gap <= a.x
        or a.y + a.side + gap <= b.y
        or b.y + b.side + gap <= a.y
    )

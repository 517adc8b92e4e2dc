"""Classification rules: each maps a scene to one label, with scenes generated to fit the rule.

Label names are chosen so the reasoning never has to say them: a rule over colour families answers "sunny" or
"stormy", not "warm" or "red", because the leakage scrubber deletes every sentence that names a label and would
otherwise erase the evidence (the colours) along with it. The single-object rules are the exception on purpose: their
label is the attribute itself, which makes them the easy task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rise.synthetic.language import count_sentence, object_sentence
from rise.synthetic.scene import Scene, SceneConfig, generate_scene
from rise.synthetic.vocabulary import COLOURS, DEFAULT_SHAPES, number_word

_ATTEMPTS_PER_LABEL = 1000  # rejection sampling; the rarest label ("balanced") comes up in over one scene in four


@dataclass(frozen=True)
class LabelRule:
    """A named rule giving every fitting scene one label from `labels`.

    Args:
        name (`str`): what `get_rule` calls it.
        labels (`tuple[str, ...]`): the label set, in a fixed order.
        description (`str`): the rule in words, for project descriptions and prompts.
        min_objects (`int`), max_objects (`int`): the object counts the rule is defined for.
        classify (`Callable[[Scene], str]`): the rule itself; a module-level function so the rule pickles.
        scene_overrides (`dict[str, Any]`): `SceneConfig` fields the rule needs beyond the object counts, e.g. the
            shapes a shape rule has labels for.
        working (`Callable[[Scene], str] | None`): a worked reasoning: the scene's description with the steps from it
            to the label written in, without naming the label (mood: each object's colour family and the running
            count of its family, then the totals); None where naming what is seen is the whole step.
    """

    name: str
    labels: tuple[str, ...]
    description: str
    min_objects: int
    max_objects: int
    classify: Callable[[Scene], str]
    scene_overrides: dict[str, Any] = field(default_factory=dict)
    working: Callable[[Scene], str] | None = None

    def label(self, scene: Scene) -> str:
        """The scene's label; a `ValueError` when the scene has an object count the rule is not defined for."""
        count = len(scene.objects)
        if not self.min_objects <= count <= self.max_objects:
            raise ValueError(
                f"Rule {self.name!r} needs {self.min_objects}..{self.max_objects} objects, the scene has {count}; "
                f"generate scenes with rule.scene_config() or generate_scene_for_rule()"
            )
        label = self.classify(scene)
        if label not in self.labels:
            raise ValueError(
                f"The scene's {label!r} is not one of rule {self.name!r}'s labels {list(self.labels)}; "
                "generate scenes with rule.scene_config()"
            )
        return label

    def scene_config(self, base: SceneConfig | None = None) -> SceneConfig:
        """`base` (default `SceneConfig()`) with the object counts and other settings this rule needs."""
        base = base or SceneConfig()
        return dataclasses.replace(
            base, min_objects=self.min_objects, max_objects=self.max_objects, **self.scene_overrides
        )


def _single_shape(scene: Scene) -> str:
    return scene.objects[0].shape


def _single_colour(scene: Scene) -> str:
    return scene.objects[0].colour


def colour_family_counts(families: list[str]) -> tuple[int, int]:
    """How many of the families ("warm" or "cool") are warm, and how many cool."""
    warm = sum(family == "warm" for family in families)
    return warm, len(families) - warm


def mood_of_colour_families(families: list[str]) -> str:
    """The mood rule on the colour families of a scene's objects ("warm" or "cool"): sunny, stormy or balanced."""
    return mood_of_counts(*colour_family_counts(families))


def mood_of_counts(warm: int, cool: int) -> str:
    """The mood rule on how many objects are warm and how many cool: sunny, stormy or balanced."""
    if warm > cool:
        return "sunny"
    if cool > warm:
        return "stormy"
    return "balanced"


def _mood(scene: Scene) -> str:
    return mood_of_colour_families([obj.colour_family for obj in scene.objects])


def _mood_working(scene: Scene) -> str:
    # Each step sits where its fact is: the family right after the object's sentence, the count carried on from that
    # family's last step. Trained on the caption followed by the totals alone, or by one sentence per colour, the
    # demo model wrote the totals and colours off the image rather than off its own description (README, "Worked
    # reasoning a small model follows").
    counts = {"warm": 0, "cool": 0}
    sentences = [count_sentence(scene)]
    for obj in scene.objects:
        counts[obj.colour_family] += 1
        sentences.append(object_sentence(obj, f"{obj.colour_family} {number_word(counts[obj.colour_family])}"))
    sentences.append(f"Warm {number_word(counts['warm'])}, cool {number_word(counts['cool'])}.")
    return " ".join(sentences)


_MOOD = LabelRule(
    name="mood",
    labels=("sunny", "stormy", "balanced"),
    description=(
        "sunny: most objects are red, orange or yellow; stormy: most objects are green, blue or purple; "
        "balanced: as many objects of one group as of the other."
    ),
    min_objects=2,
    max_objects=4,
    classify=_mood,
    working=_mood_working,
)

RULES: dict[str, LabelRule] = {
    "shape": LabelRule(
        name="shape",
        labels=DEFAULT_SHAPES,
        description="The shape of the single object in the image.",
        min_objects=1,
        max_objects=1,
        classify=_single_shape,
        scene_overrides={"shapes": DEFAULT_SHAPES},
    ),
    "colour": LabelRule(
        name="colour",
        labels=tuple(COLOURS),
        description="The colour of the single object in the image.",
        min_objects=1,
        max_objects=1,
        classify=_single_colour,
        scene_overrides={"colours": tuple(COLOURS)},
    ),
    "mood": _MOOD,
    "majority-colour-family": dataclasses.replace(_MOOD, name="majority-colour-family"),
}


def get_rule(name: str) -> LabelRule:
    """The rule called `name`.

    >>> get_rule("mood").labels
    ('sunny', 'stormy', 'balanced')
    """
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"Unknown label rule {name!r}; choose from {sorted(RULES)}") from None


def generate_scene_for_rule(
    rule: LabelRule, seed: int, config: SceneConfig | None = None, label: str | None = None
) -> tuple[Scene, str]:
    """A scene the rule applies to, and its label; with `label` given, a scene that has that label.

    Without `label`, the label is drawn uniformly from `rule.labels` first, so a run of seeds gives a balanced data
    set even for rare labels such as "balanced". The returned scene's `seed` regenerates it with
    `generate_scene(scene.seed, rule.scene_config(config))`.
    """
    scene_config = rule.scene_config(config)
    rng = np.random.default_rng([seed, 0x5CE7E])
    if label is None:
        label = rule.labels[int(rng.integers(len(rule.labels)))]
    if label not in rule.labels:
        raise ValueError(f"Label {label!r} is not one of rule {rule.name!r}'s labels {list(rule.labels)}")
    for _ in range(_ATTEMPTS_PER_LABEL):
        scene = generate_scene(int(rng.integers(2**31)), scene_config)
        if rule.label(scene) == label:
            return scene, label
    raise ValueError(f"No scene with label {label!r} under rule {rule.name!r} in {_ATTEMPTS_PER_LABEL} tries")

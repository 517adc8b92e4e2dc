"""Label lists the demo model cannot memorise, so that it learns to answer a classification prompt from its list.

A model trained on a dozen made-up label names learns the names, not the habit of copying: given a new project's
labels ("sunny", "stormy") it answers one of the dozen. So every list here is drawn afresh from pools far too large
to memorise: pronounceable strings ("zorpa", "kelmi"; about a million of them) and ordinary words ("lantern",
"pepper"), 2–8 labels in random order. Three kinds of question use them (`label_list_task`):

| kind | what fixes the answer | what it teaches |
|---|---|---|
| attribute | the object's attribute word, listed among made-up labels | find the word the image shows |
| defined | the prompt defines each label ("the object is red: zorpa.") | answer with the label that holds |
| undefined | nothing: one of the labels at random | measured, never trained (see below) |

The last kind is what a project with a rule the model does not know looks like (the demo's mood project). The card
measures how the model answers it, but training does not ask it (`rise.demo_model.examples.TRAINED_LIST_KINDS`):
a model that fitted answers drawn at random learned a new rule far worse than one that did not.

Label names are split by a fixed hash into a training share and a held-out share (`is_held_out`): training never
draws a held-out name, so the held-out metrics (`rise.demo_model.metrics`) ask about label sets the model has never
seen.
"""

from __future__ import annotations

import zlib

import numpy as np

from rise.prompts import DEFAULT_TEMPLATES
from rise.synthetic import COLOURS, DEFAULT_SHAPES, SIZES, Scene, SceneConfig, generate_scene
from rise.synthetic.vocabulary import NUMBER_WORDS, POSITION_PHRASES, POSITIONS, number_word
from rise.tasks import TaskSpec, TaskType

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
# Ordinary words that name nothing a synthetic scene shows (no colours, shapes, sizes, places, numbers, moods).
WORDS: tuple[str, ...] = (
    "anchor", "apple", "arrow", "badge", "basket", "beacon", "bell", "biscuit", "blanket", "bottle", "bridge",
    "brush", "bucket", "button", "cabin", "candle", "canyon", "carpet", "castle", "cedar", "chalk", "cherry",
    "chimney", "clock", "cloud", "coconut", "comet", "copper", "cotton", "crown", "crystal", "curtain", "desert",
    "dolphin", "dragon", "drum", "eagle", "ember", "engine", "falcon", "feather", "fern", "fiddle", "forest",
    "fossil", "fountain", "garden", "garlic", "ginger", "glacier", "grape", "guitar", "hammer", "harbour",
    "harvest", "helmet", "honey", "island", "ivory", "jacket", "jungle", "kettle", "kitten", "ladder", "lantern",
    "lemon", "lizard", "magnet", "maple", "marble", "meadow", "mirror", "monkey", "mountain", "needle", "nutmeg",
    "oyster", "paddle", "palace", "panther", "parrot", "pebble", "pencil", "pepper", "pickle", "pillow", "pirate",
    "planet", "pocket", "pony", "puzzle", "quartz", "rabbit", "radish", "ribbon", "rocket", "saddle", "salmon",
    "satchel", "shovel", "silver", "socket", "spider", "spoon", "statue", "stone", "sugar", "summit", "teapot",
    "thunder", "ticket", "timber", "tomato", "trumpet", "tulip", "turtle", "velvet", "violin", "walnut", "wagon",
    "whistle", "willow", "window", "winter", "wizard", "zebra",
)  # fmt: skip
MIN_LABELS, MAX_LABELS = 2, 8
HELD_OUT_SHARE = 5  # one name in five is kept for evaluation
# Words of the scenes' own vocabulary can never be made-up labels: the caption would name them.
_RESERVED = {
    *COLOURS, *DEFAULT_SHAPES, "star", *SIZES, *NUMBER_WORDS, *(p for row in POSITIONS for p in row), "object",
    "sunny", "stormy", "balanced",
}  # fmt: skip
KINDS: tuple[str, ...] = ("attribute", "defined", "undefined")
# Visible attributes a question can be about: a lone object's colour, shape, size or position, or the object count.
# The shape is asked too: a model never asked it took the four shape words, which every detection prompt lists, for a
# detection prompt and broke off its reasoning into boxes on one lone-shape question in five.
ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "size", "position", "count")


def is_held_out(name: str) -> bool:
    """Whether a label name belongs to the held-out share (a fixed hash: the same answer on every machine)."""
    return zlib.crc32(name.encode()) % HELD_OUT_SHARE == 0


def made_up_name(rng: np.random.Generator) -> str:
    """A pronounceable string of two or three syllables, sometimes closed by a consonant: "zorpa", "kelmit"."""
    syllables = int(rng.integers(2, 4))
    text = "".join(CONSONANTS[int(rng.integers(len(CONSONANTS)))] + VOWELS[int(rng.integers(len(VOWELS)))]
                   for _ in range(syllables))  # fmt: skip
    if rng.random() < 0.4:
        text += CONSONANTS[int(rng.integers(len(CONSONANTS)))]
    return text


def random_labels(rng: np.random.Generator, count: int, *, held_out: bool) -> tuple[str, ...]:
    """`count` distinct label names from both pools, from the held-out share or the training share only."""
    names: list[str] = []
    while len(names) < count:
        name = made_up_name(rng) if rng.random() < 0.6 else WORDS[int(rng.integers(len(WORDS)))]
        if name not in names and name not in _RESERVED and is_held_out(name) == held_out:
            names.append(name)
    return tuple(names)


def random_scene(rng: np.random.Generator, max_objects: int, min_objects: int = 1) -> Scene:
    """A fresh scene of `min_objects`..`max_objects` objects, drawn by `rng`."""
    config = SceneConfig(min_objects=min_objects, max_objects=max(min_objects, max_objects))
    return generate_scene(int(rng.integers(2**31)), config)


def _label_count(rng: np.random.Generator, most: int = MAX_LABELS) -> int:
    return int(rng.integers(MIN_LABELS, min(MAX_LABELS, most) + 1))


def definition(attribute: str, value: str) -> str:
    """The sentence that defines a label: "the object is red", "there are three objects"."""
    if attribute == "count":
        return "there is one object" if value == "one" else f"there are {value} objects"
    if attribute == "position":
        return f"the object is {POSITION_PHRASES[value]}"
    if attribute == "shape":
        return f"the object is a {value}"
    return f"the object is {value}"


def definition_line(label: str, meaning: str) -> str:
    """One line of a prompt's definitions, meaning first: "the object is red: zorpa.".

    Meaning first because that is the order a model reads it in when it looks a label up: it finds the meaning that
    holds, and the label to copy follows it. Label first ("zorpa: the object is red"), the label has been read
    before the model knows it is the one it needs; the demo model trained that way answered at chance.
    """
    return f"{meaning}: {label}."


def definitions_template(definitions: dict[str, str]) -> str:
    """An `annotate` prompt template (a project's `prompt_overrides["annotate"]`) that lists what each label means.
    Label names and definitions are plain words, so they need no brace escaping.

    >>> print(definitions_template({"zorpa": "the object is red", "kelmi": "the object is blue"}))
    Which label fits this image? The labels are: {labels}.
    What each label means:
    the object is red: zorpa.
    the object is blue: kelmi.
    {answer_format}
    """
    question, _, answer_format = DEFAULT_TEMPLATES["annotate"]["classification"].partition("\n")
    lines = [definition_line(label, meaning) for label, meaning in definitions.items()]
    return "\n".join([question, "What each label means:", *lines, answer_format])


def quoted_definition(spec: TaskSpec, label: str) -> str | None:
    """The line of `spec`'s prompt that defines `label` (`definition_line`), or None where the prompt defines no
    labels. Reasoning that ends by quoting it puts the label to answer right before the answer."""
    template = spec.prompt_overrides.get("annotate", "")
    return next((line for line in template.splitlines() if line.endswith(f": {label}.")), None)


def defined_attribute(spec: TaskSpec) -> str | None:
    """The attribute a defined question's labels are defined by (`defined_label_task`), read off its first label's
    definition line; None where the prompt defines no labels."""
    line = quoted_definition(spec, spec.labels[0]) if spec.labels else None
    meaning = line.rpartition(": ")[0] if line else None
    return next(
        (attribute for attribute in ATTRIBUTES for value in attribute_values(attribute)
         if definition(attribute, value) == meaning),
        None,
    )  # fmt: skip


def attribute_values(attribute: str) -> tuple[str, ...]:
    """Every value `attribute` can take, in a fixed order."""
    return {
        "colour": tuple(COLOURS),
        "shape": DEFAULT_SHAPES,
        "size": SIZES,
        "position": tuple(p for row in POSITIONS for p in row),
        "count": tuple(number_word(n) for n in range(1, SceneConfig().max_objects + 1)),
    }[attribute]


def attribute_question(
    rng: np.random.Generator, max_objects: int, attribute: str | None = None
) -> tuple[Scene, str, str]:
    """A scene, an attribute to ask about (`attribute`, or one of `ATTRIBUTES` at random) and the scene's value of it:
    the count of 1..`max_objects` objects, or a lone object's colour, shape, size or position."""
    if attribute is None:
        attribute = ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))]
    if attribute == "count":
        scene = random_scene(rng, max_objects)
        return scene, attribute, number_word(len(scene.objects))
    scene = random_scene(rng, 1)
    return scene, attribute, str(getattr(scene.objects[0], attribute))


def attribute_in_list_task(
    rng: np.random.Generator, max_objects: int, *, held_out: bool = False
) -> tuple[Scene, TaskSpec, str]:
    """The object's attribute word hidden among made-up labels: "kelmi, red, pepper" for a red object."""
    scene, _, truth = attribute_question(rng, max_objects)
    labels = [truth, *random_labels(rng, _label_count(rng) - 1, held_out=held_out)]
    rng.shuffle(labels)
    return scene, TaskSpec(TaskType.classification, labels=tuple(labels)), truth


def defined_label_task(
    rng: np.random.Generator, max_objects: int, *, held_out: bool = False, attribute: str | None = None
) -> tuple[Scene, TaskSpec, str]:
    """Made-up labels, each defined in the prompt by one value of an attribute (`attribute`, or one at random); the
    answer is the one that holds."""
    scene, attribute, truth_value = attribute_question(rng, max_objects, attribute)
    values = attribute_values(attribute)
    others = [value for value in values if value != truth_value]
    count = _label_count(rng, len(values))
    chosen = [truth_value, *(others[i] for i in rng.choice(len(others), size=count - 1, replace=False))]
    rng.shuffle(chosen)
    labels = random_labels(rng, count, held_out=held_out)
    definitions = {label: definition(attribute, value) for label, value in zip(labels, chosen, strict=True)}
    truth = labels[chosen.index(truth_value)]
    spec = TaskSpec(TaskType.classification, labels=labels, prompt_overrides={
        "annotate": definitions_template(definitions)
    })  # fmt: skip
    return scene, spec, truth


def undefined_label_task(
    rng: np.random.Generator, max_objects: int, *, held_out: bool = False
) -> tuple[Scene, TaskSpec, str]:
    """Made-up labels the image cannot decide and the prompt does not define; the answer is one of them at random."""
    scene = random_scene(rng, max_objects)
    labels = random_labels(rng, _label_count(rng), held_out=held_out)
    return scene, TaskSpec(TaskType.classification, labels=labels), labels[int(rng.integers(len(labels)))]


TASKS = {"attribute": attribute_in_list_task, "defined": defined_label_task, "undefined": undefined_label_task}


def label_list_task(
    rng: np.random.Generator, max_objects: int, kind: str | None = None, *, held_out: bool = False
) -> tuple[Scene, TaskSpec, str]:
    """A classification question over a fresh label list, of `kind` (default: one of `KINDS` at random)."""
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    return TASKS[kind](rng, max_objects, held_out=held_out)

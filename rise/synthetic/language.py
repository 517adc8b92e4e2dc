"""Plain-English facts about a scene: the caption a model can reason with, and phrases that name one object."""

from __future__ import annotations

from rise.synthetic.scene import Scene, SceneObject
from rise.synthetic.vocabulary import POSITION_PHRASES, number_word


def describe_object(obj: SceneObject) -> str:
    """`"large red circle"`: size, colour and shape, the attributes every caption and query uses."""
    return f"{obj.size} {obj.colour} {obj.shape}"


def short_name(obj: SceneObject) -> str:
    """`"red circle at the top left"`: colour, shape and grid position, how a reasoning points at one object after
    the caption has described them all."""
    return f"{obj.colour} {obj.shape} {POSITION_PHRASES[obj.position]}"


def naming_sentence(obj: SceneObject, query: str) -> str:
    """`"The red circle at the top left is the leftmost object."`: the sentence that says which object a grounding
    query names, so the box after it belongs to the object the reasoning named last."""
    return f"The {short_name(obj)} is {query}."


def object_sentence(obj: SceneObject, note: str = "") -> str:
    """`"A large red circle at the top left."`, or with a `note` `"A large red circle at the top left: warm one."`"""
    return f"A {describe_object(obj)} {POSITION_PHRASES[obj.position]}{f': {note}' if note else ''}."


def caption(scene: Scene) -> str:
    """A factual description of every object: how many there are, then one sentence each in reading order.

    Counts are spelled out and no coordinates appear, so the caption survives the leakage scrubbers intact and can
    serve as a model's reasoning.

    >>> from rise.synthetic.scene import generate_scene
    >>> caption(generate_scene(1))
    'There are two objects. A small purple diamond at the top. A large purple diamond at the bottom.'
    """
    return " ".join([count_sentence(scene), *(object_sentence(obj) for obj in scene.objects)])


def count_sentence(scene: Scene) -> str:
    """`"There are two objects."`: how a caption opens."""
    count = len(scene.objects)
    return "There is one object." if count == 1 else f"There are {number_word(count)} objects."

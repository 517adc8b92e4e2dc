"""Plain-English facts about a scene: the caption a model can reason with, and phrases that name one object."""

from __future__ import annotations

from rise.synthetic.scene import Scene, SceneObject
from rise.synthetic.vocabulary import POSITION_PHRASES, number_word


def describe_object(obj: SceneObject) -> str:
    """`"large red circle"`: size, colour and shape, the attributes every caption and query uses."""
    return f"{obj.size} {obj.colour} {obj.shape}"


def object_sentence(obj: SceneObject) -> str:
    """`"A large red circle at the top left."`"""
    return f"A {describe_object(obj)} {POSITION_PHRASES[obj.position]}."


def caption(scene: Scene) -> str:
    """A factual description of every object: how many there are, then one sentence each in reading order.

    Counts are spelled out and no coordinates appear, so the caption survives the leakage scrubbers intact and can
    serve as a model's reasoning.

    >>> from rise.synthetic.scene import generate_scene
    >>> caption(generate_scene(1))
    'There are two objects. A small purple diamond at the top. A large purple diamond at the bottom.'
    """
    count = len(scene.objects)
    opening = "There is one object." if count == 1 else f"There are {number_word(count)} objects."
    return " ".join([opening, *(object_sentence(obj) for obj in scene.objects)])

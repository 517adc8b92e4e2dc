"""Synthetic scenes with exact ground truth for every task type, deterministic by seed.

Small images of flat-coloured shapes (circle, square, triangle, diamond; optionally star) in six colours of two
families, small or large, on a pale background. Each scene knows every object's shape, colour, size class, tight
pixel box and coarse position, and from those gives a caption (reasoning), classification labels by rule, detection
answers and referring queries with their boxes. Tests, the demo project and the benchmarks all draw on it.

    >>> from rise.synthetic import generate_scene, caption, get_rule
    >>> scene = generate_scene(7, get_rule("mood").scene_config())
    >>> get_rule("mood").label(scene) in ("sunny", "stormy", "balanced")
    True
"""

from rise.synthetic.answers import (
    ODD_ONE_OUT_QUERY,
    QUERY_KINDS,
    GroundingExample,
    detection_answer,
    generate_grounding_example,
    generate_odd_one_out_scene,
    grounding_candidates,
    grounding_example,
    odd_one_out_working,
    query_kinds_for,
)
from rise.synthetic.demo import load_manifest, write_demo_assets
from rise.synthetic.language import caption, describe_object, naming_sentence, object_sentence, short_name
from rise.synthetic.rules import RULES, LabelRule, generate_scene_for_rule, get_rule
from rise.synthetic.scene import ObjectSpec, Scene, SceneConfig, SceneObject, compose_scene, generate_scene
from rise.synthetic.vocabulary import (
    ALL_SHAPES,
    COLOUR_FAMILIES,
    COLOURS,
    DEFAULT_SHAPES,
    FAMILY_OF_COLOUR,
    POSITIONS,
    SIZES,
    position_of,
)

__all__ = [
    "ALL_SHAPES",
    "COLOURS",
    "COLOUR_FAMILIES",
    "DEFAULT_SHAPES",
    "FAMILY_OF_COLOUR",
    "ODD_ONE_OUT_QUERY",
    "POSITIONS",
    "QUERY_KINDS",
    "RULES",
    "SIZES",
    "GroundingExample",
    "LabelRule",
    "ObjectSpec",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "caption",
    "compose_scene",
    "describe_object",
    "detection_answer",
    "generate_grounding_example",
    "generate_odd_one_out_scene",
    "generate_scene",
    "generate_scene_for_rule",
    "get_rule",
    "grounding_candidates",
    "grounding_example",
    "load_manifest",
    "naming_sentence",
    "object_sentence",
    "odd_one_out_working",
    "position_of",
    "query_kinds_for",
    "short_name",
    "write_demo_assets",
]

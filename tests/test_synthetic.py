"""Synthetic scenes: determinism, pixel-exact boxes, rules, referring queries and the committed demo assets."""

from __future__ import annotations

import doctest
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rise.synthetic as synthetic
from rise.synthetic import (
    COLOURS,
    ODD_ONE_OUT_QUERY,
    QUERY_KINDS,
    ObjectSpec,
    Scene,
    SceneConfig,
    caption,
    compose_scene,
    detection_answer,
    generate_grounding_example,
    generate_odd_one_out_scene,
    generate_scene,
    generate_scene_for_rule,
    get_rule,
    grounding_candidates,
    grounding_example,
    load_manifest,
    odd_one_out_working,
    query_kinds_for,
    write_demo_assets,
)
from rise.synthetic.__main__ import main as synthetic_main
from rise.tasks import TaskSpec

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"
PLAIN = SceneConfig(textured=False)
CONFIGS = [
    SceneConfig(),
    SceneConfig(min_objects=4, max_objects=4),  # crowded: the layout is hardest to fit
    SceneConfig(size=96, max_objects=6, shapes=("circle", "square", "triangle", "diamond", "star")),
    SceneConfig(size=48, textured=False, gap=3),
]


def hand_built(*specs: tuple[str, str, str, int, int, int], config: SceneConfig = PLAIN) -> Scene:
    """A scene from (shape, colour, size class, side, x, y) tuples drawn exactly where given."""
    return compose_scene([ObjectSpec(*spec) for spec in specs], seed=0, config=config, place=False)


def assert_boxes_tight(pixels: np.ndarray, boxes: list[list[float]], colours: list[str], gap: int) -> None:
    """Each box is the exact extent of its colour's pixels nearby, and no object colour appears outside the boxes."""
    height, width, _ = pixels.shape
    covered = np.zeros((height, width), dtype=bool)
    for box, colour in zip(boxes, colours, strict=True):
        x1, y1, x2, y2 = (int(v) for v in box)
        assert box == [float(v) for v in (x1, y1, x2, y2)]
        covered[y1:y2, x1:x2] = True
        # Other objects keep at least `gap` pixels away, so a ring of gap - 1 pixels around the box holds only
        # background or this object's own pixels.
        ring = gap - 1
        rx1, ry1, rx2, ry2 = max(0, x1 - ring), max(0, y1 - ring), min(width, x2 + ring), min(height, y2 + ring)
        own = np.all(pixels[ry1:ry2, rx1:rx2] == COLOURS[colour], axis=-1)
        rows, cols = np.nonzero(own)
        assert [rx1 + cols.min(), ry1 + rows.min(), rx1 + cols.max() + 1, ry1 + rows.max() + 1] == [x1, y1, x2, y2]
    for rgb in COLOURS.values():
        assert not np.any(np.all(pixels == rgb, axis=-1) & ~covered), f"{rgb} pixels outside every box"
    saturated = pixels.max(axis=-1).astype(int) - pixels.min(axis=-1) > 60  # anything that is not pale background
    assert not np.any(saturated & ~covered)


class TestDeterminism:
    @pytest.mark.parametrize("config", CONFIGS)
    def test_same_seed_yields_identical_pixels_and_truth(self, config):
        for seed in range(20):
            first, second = generate_scene(seed, config), generate_scene(seed, config)
            assert first.image.tobytes() == second.image.tobytes()
            assert first.objects == second.objects

    def test_different_seeds_yield_different_scenes(self):
        images = {generate_scene(seed).image.tobytes() for seed in range(50)}
        assert len(images) == 50

    def test_seeded_builders_repeat_and_their_scene_seed_regenerates_the_scene(self):
        rule = get_rule("mood")
        scene, label = generate_scene_for_rule(rule, 5)
        again, label_again = generate_scene_for_rule(rule, 5)
        assert (scene.image.tobytes(), label) == (again.image.tobytes(), label_again)
        assert generate_scene(scene.seed, rule.scene_config()).image.tobytes() == scene.image.tobytes()
        first, second = generate_grounding_example(11), generate_grounding_example(11)
        assert (first.query, first.box, first.scene.image.tobytes()) == (
            second.query,
            second.box,
            second.scene.image.tobytes(),
        )
        odd = generate_odd_one_out_scene(4)
        assert odd.image.tobytes() == generate_odd_one_out_scene(4).image.tobytes()


class TestPixels:
    @pytest.mark.parametrize("config", CONFIGS)
    def test_boxes_are_tight_around_the_drawn_pixels(self, config):
        for seed in range(60):
            scene = generate_scene(seed, config)
            assert config.min_objects <= len(scene.objects) <= config.max_objects
            assert scene.image.size == (config.size, config.size) and scene.image.mode == "RGB"
            assert_boxes_tight(
                np.asarray(scene.image), [o.box for o in scene.objects], [o.colour for o in scene.objects], config.gap
            )

    def test_objects_keep_the_gap_between_them(self):
        for seed in range(100):
            boxes = [o.box for o in generate_scene(seed, CONFIGS[1]).objects]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert a[2] + 2 <= b[0] or b[2] + 2 <= a[0] or a[3] + 2 <= b[1] or b[3] + 2 <= a[1]

    def test_size_classes_never_overlap_in_pixel_area(self):
        areas = {"small": [], "large": []}
        for seed in range(300):
            scene = generate_scene(seed)
            pixels = np.asarray(scene.image)
            for obj in scene.objects:
                x1, y1, x2, y2 = (int(v) for v in obj.box)
                areas[obj.size].append(int(np.all(pixels[y1:y2, x1:x2] == COLOURS[obj.colour], axis=-1).sum()))
        assert max(areas["small"]) < min(areas["large"])

    def test_hand_placed_objects_get_their_grid_positions(self):
        scene = hand_built(
            ("square", "red", "small", 10, 2, 2),  # centre (7, 7): top left
            ("circle", "blue", "small", 10, 27, 27),  # centre (32, 32): centre
            ("triangle", "green", "large", 20, 42, 42),  # centre near (52, 53): bottom right
        )
        assert [(o.shape, o.position) for o in scene.objects] == [
            ("square", "top left"),
            ("circle", "centre"),
            ("triangle", "bottom right"),
        ]
        assert scene.objects[0].box == [2.0, 2.0, 12.0, 12.0]

    def test_overlapping_or_outside_specs_yield_clear_errors(self):
        with pytest.raises(ValueError, match="closer than gap"):
            hand_built(("square", "red", "small", 10, 2, 2), ("square", "blue", "small", 10, 12, 2))
        with pytest.raises(ValueError, match="does not fit"):
            hand_built(("square", "red", "large", 20, 50, 2))

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"size": 16}, "too small"),
            ({"min_objects": 3, "max_objects": 2}, "min_objects"),
            ({"shapes": ("hexagon",)}, "Unknown or missing shapes"),
            ({"colours": ("teal",)}, "Unknown or missing colours"),
            ({"gap": 0}, "gap"),
        ],
    )
    def test_bad_config_yields_clear_error(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            SceneConfig(**kwargs)


class TestCaption:
    def test_caption_names_every_object_in_reading_order(self):
        scene = hand_built(
            ("triangle", "green", "large", 20, 40, 40),
            ("circle", "red", "large", 20, 2, 2),
            ("square", "blue", "small", 10, 2, 50),
        )
        assert caption(scene) == (
            "There are three objects. A large red circle at the top left. A small blue square at the bottom left. "
            "A large green triangle at the bottom right."
        )

    def test_single_object_caption(self):
        assert caption(hand_built(("diamond", "purple", "small", 10, 27, 2))) == (
            "There is one object. A small purple diamond at the top."
        )

    def test_captions_never_contain_digits(self):
        # Box-task scrubbers strip numbers; the caption must survive them unchanged.
        assert not any(re.search(r"\d", caption(generate_scene(seed, CONFIGS[2]))) for seed in range(100))


class TestRules:
    @pytest.mark.parametrize(
        "colours, label",
        [
            (("red", "orange", "blue"), "sunny"),  # two warm, one cool
            (("green", "purple", "yellow"), "stormy"),  # two cool, one warm
            (("red", "blue"), "balanced"),  # one each: the tie class
            (("yellow", "orange", "green", "purple"), "balanced"),  # two each
            (("blue", "blue"), "stormy"),  # all cool
        ],
    )
    def test_mood_rule_labels_hand_built_scenes(self, colours, label):
        corners = [(2, 2), (40, 2), (2, 40), (40, 40)]
        scene = hand_built(*[("circle", c, "small", 10, x, y) for c, (x, y) in zip(colours, corners, strict=False)])
        assert get_rule("mood").label(scene) == label
        assert get_rule("majority-colour-family").label(scene) == label

    def test_shape_rule_gives_the_single_objects_shape(self):
        for shape in ("circle", "square", "triangle", "diamond"):
            assert get_rule("shape").label(hand_built((shape, "red", "large", 20, 20, 20))) == shape
        assert get_rule("colour").label(hand_built(("circle", "orange", "large", 20, 20, 20))) == "orange"

    def test_shape_rule_refuses_scenes_it_is_not_defined_for(self):
        two = hand_built(("circle", "red", "small", 10, 2, 2), ("square", "red", "small", 10, 40, 40))
        with pytest.raises(ValueError, match="needs 1..1 objects"):
            get_rule("shape").label(two)
        with pytest.raises(ValueError, match="not one of rule 'shape'"):
            get_rule("shape").label(hand_built(("star", "red", "large", 20, 20, 20)))

    def test_unknown_rule_yields_clear_error(self):
        with pytest.raises(ValueError, match="choose from"):
            get_rule("weather")

    def test_rules_survive_pickle(self):
        rule = pickle.loads(pickle.dumps(get_rule("mood")))
        assert rule.label(hand_built(("circle", "red", "small", 10, 2, 2), ("circle", "red", "small", 10, 40, 2)))

    @pytest.mark.parametrize("name", ["shape", "colour", "mood"])
    def test_generate_for_rule_gives_the_requested_label_and_balanced_labels(self, name):
        rule = get_rule(name)
        for label in rule.labels:
            scene, got = generate_scene_for_rule(rule, 3, label=label)
            assert got == label == rule.label(scene)
        drawn = [generate_scene_for_rule(rule, seed)[1] for seed in range(60 * len(rule.labels))]
        assert all(drawn.count(label) >= 30 for label in rule.labels)

    def test_mood_labels_never_appear_in_captions(self):
        # The leakage scrubber deletes sentences naming a label; the evidence must not name it.
        rule = get_rule("mood")
        pattern = re.compile(r"\b(" + "|".join(rule.labels) + r")\b", re.IGNORECASE)
        for seed in range(200):
            assert not pattern.search(caption(generate_scene_for_rule(rule, seed)[0]))


def resolve(scene: Scene, query: str) -> list[int]:
    """Indices of the objects `query` could mean, read independently of the generator's own bookkeeping."""
    objects = scene.objects
    centres = [((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2) for o in objects]
    if query == ODD_ONE_OUT_QUERY:
        looks = [(o.shape, o.colour, o.size) for o in objects]
        return [i for i, look in enumerate(looks) if looks.count(look) == 1 and len(set(looks)) == 2]
    if query in ("the largest object", "the smallest object"):
        areas = [o.area for o in objects]
        target = max(areas) if "largest" in query else min(areas)
        return [i for i, area in enumerate(areas) if area == target]
    extremes = {"leftmost": (0, min), "rightmost": (0, max), "topmost": (1, min), "bottommost": (1, max)}
    for word, (axis, pick) in extremes.items():
        if query == f"the {word} object":
            target = pick(c[axis] for c in centres)
            return [i for i, c in enumerate(centres) if abs(c[axis] - target) < 6.4]
    attributes, _, position = re.fullmatch(r"the (.+?)(?: (at|on|in) the (.+))?", query).group(1, 2, 3)
    return [
        i
        for i, o in enumerate(objects)
        if all(word in (o.shape, o.colour, o.size) for word in attributes.split())
        and (position is None or o.position == position)
    ]


class TestGrounding:
    def test_odd_one_out_query_picks_the_object_that_differs(self):
        scene = hand_built(
            ("circle", "red", "small", 10, 2, 2),
            ("circle", "red", "small", 10, 40, 2),
            ("circle", "blue", "small", 10, 2, 40),
            ("circle", "red", "small", 10, 40, 40),
        )
        assert grounding_example(scene, 0, kind="odd-one-out") == (ODD_ONE_OUT_QUERY, [2.0, 40.0, 12.0, 50.0])

    def test_odd_one_out_working_tallies_each_kind_and_names_the_one_left_at_one(self):
        # the odd one comes first, so the first steps cannot tell it apart yet
        scene = hand_built(
            ("square", "green", "small", 10, 2, 2),
            ("circle", "green", "small", 10, 40, 2),
            ("circle", "green", "small", 10, 2, 40),
        )
        assert odd_one_out_working(scene) == (
            "There are three objects. A small green square at the top left: green square one. "
            "A small green circle at the top right: green circle one. "
            "A small green circle at the bottom left: green circle two. "
            "The green square at the top left differs from the others."
        )
        with pytest.raises(ValueError, match="no object unlike all the others"):
            odd_one_out_working(
                hand_built(("circle", "red", "small", 10, 2, 2), ("square", "blue", "small", 10, 40, 2))
            )

    def test_odd_one_out_working_is_the_caption_with_steps_and_names_the_answer(self):
        for seed in range(40):
            example = generate_grounding_example(seed, kind="odd-one-out")
            working = odd_one_out_working(example.scene)
            steps, last = working.rsplit(". The ", 1)
            assert re.sub(r": \w+ \w+ \w+\.", ".", steps + ".") == caption(example.scene)
            named = re.fullmatch(r"(\w+) (\w+) (.+) differs from the others\.", last)
            (odd,) = [o for o in example.scene.objects if o.box == example.box]
            assert named.groups()[:2] == (odd.colour, odd.shape)
            assert f": {odd.colour} {odd.shape} one." in working and f"{odd.colour} {odd.shape} two" not in working

    def test_no_odd_one_out_when_two_objects_differ(self):
        scene = hand_built(
            ("circle", "red", "small", 10, 2, 2),
            ("circle", "blue", "small", 10, 40, 2),
            ("square", "red", "small", 10, 2, 40),
        )
        assert grounding_candidates(scene, "odd-one-out") == []
        with pytest.raises(ValueError, match="No odd-one-out query"):
            grounding_example(scene, 0, kind="odd-one-out")

    def test_attribute_queries_use_the_fewest_words_that_single_out_an_object(self):
        scene = hand_built(
            ("circle", "red", "small", 10, 2, 2),
            ("circle", "blue", "small", 10, 40, 2),
            ("square", "red", "large", 20, 2, 40),
        )
        queries = dict(grounding_candidates(scene, "attribute"))
        assert "the circle" not in queries and "the red circle" in queries and "the square" in queries
        assert scene.objects[queries["the red circle"]].box == [2.0, 2.0, 12.0, 12.0]

    def test_identical_twins_are_told_apart_by_position(self):
        scene = hand_built(("circle", "red", "small", 10, 2, 2), ("circle", "red", "small", 10, 50, 50))
        assert dict(grounding_candidates(scene, "attribute")) == {
            "the small red circle at the top left": 0,
            "the small red circle at the bottom right": 1,
        }

    def test_size_query_needs_a_lone_member_of_a_size_class(self):
        scene = hand_built(
            ("circle", "red", "small", 10, 2, 2),
            ("circle", "blue", "small", 10, 40, 2),
            ("square", "red", "large", 20, 2, 40),
        )
        assert grounding_candidates(scene, "size") == [("the largest object", 2)]

    @pytest.mark.parametrize("kind", QUERY_KINDS)
    def test_generated_queries_refer_to_exactly_one_object(self, kind):
        for seed in range(80):
            example = generate_grounding_example(seed, kind=kind)
            assert example.kind == kind
            matches = resolve(example.scene, example.query)
            assert len(matches) == 1, (example.query, example.scene.objects)
            assert example.scene.objects[matches[0]].box == example.box
            assert kind in query_kinds_for(example.scene)

    def test_unknown_kind_yields_clear_error(self):
        with pytest.raises(ValueError, match="Unknown query kind"):
            generate_grounding_example(0, kind="biggest")


def test_detection_answer_lists_every_object_with_its_box():
    scene = hand_built(("circle", "red", "small", 10, 2, 2), ("square", "blue", "large", 20, 40, 40))
    assert detection_answer(scene) == [
        {"label": "circle", "box": [2.0, 2.0, 12.0, 12.0]},
        {"label": "square", "box": [40.0, 40.0, 60.0, 60.0]},
    ]
    assert [d["label"] for d in detection_answer(scene, with_colour=True)] == ["red circle", "blue square"]


class TestDemoAssets:
    def test_manifest_round_trip(self, tmp_path):
        manifest = load_manifest(write_demo_assets(tmp_path, n_images=12, seed=3, n_mood=9))
        assert manifest["generator"]["n_images"] == 12 and manifest["generator"]["n_mood"] == 9
        projects = {p["task_type"]: p for p in manifest["projects"]}
        assert sorted(projects) == ["classification", "detection", "grounding"]
        for project in manifest["projects"]:
            TaskSpec(project["task_type"], labels=tuple(project["labels"]))  # the app can build a spec from it
        mood = projects["classification"]
        assert [item["file"] for item in mood["items"]] == [f"images/mood_{i:03d}.png" for i in range(9)]
        rule = get_rule("mood")
        for item in mood["items"]:  # each image's answer is the rule's label of the scene drawn
            assert item["query"] is None and item["answer"] in mood["labels"]
        assert [item["answer"] for item in mood["items"]] == [rule.labels[i % 3] for i in range(9)]
        for t in ("detection", "grounding"):
            assert [item["file"] for item in projects[t]["items"]] == [f"images/scene_{i:03d}.png" for i in range(12)]
        for det_item, ground_item in zip(*(projects[t]["items"] for t in ("detection", "grounding")), strict=True):
            pixels = np.asarray(Image.open(tmp_path / det_item["file"]).convert("RGB"))
            boxes = [d["box"] for d in det_item["answer"]]
            colours = [self._colour_in(pixels, box) for box in boxes]
            assert_boxes_tight(pixels, boxes, colours, gap=2)
            assert ground_item["query"] and ground_item["answer"] in boxes
        assert set(mood["labels"]) == {i["answer"] for i in mood["items"]}

    @staticmethod
    def _colour_in(pixels: np.ndarray, box: list[float]) -> str:
        x1, y1, x2, y2 = (int(v) for v in box)
        region = pixels[y1:y2, x1:x2]
        return max(COLOURS, key=lambda name: int(np.all(region == COLOURS[name], axis=-1).sum()))

    def test_rewriting_with_fewer_images_removes_stale_files(self, tmp_path):
        write_demo_assets(tmp_path, n_images=6, seed=1, n_mood=5)
        write_demo_assets(tmp_path, n_images=3, seed=1, n_mood=2)
        expected = [f"mood_{i:03d}.png" for i in range(2)] + [f"scene_{i:03d}.png" for i in range(3)]
        assert sorted(p.name for p in (tmp_path / "images").iterdir()) == expected

    def test_missing_image_yields_clear_error(self, tmp_path):
        manifest_path = write_demo_assets(tmp_path, n_images=2, seed=1, n_mood=1)
        (tmp_path / "images" / "scene_001.png").unlink()
        with pytest.raises(ValueError, match="missing image 'images/scene_001.png'"):
            load_manifest(manifest_path)

    def test_committed_assets_equal_a_fresh_regeneration(self, tmp_path):
        committed = json.loads((DEMO_DIR / "manifest.json").read_text())
        params = committed["generator"]
        synthetic_main(
            ["--out", str(tmp_path), "--n", str(params["n_images"]), "--n-mood", str(params["n_mood"]),
             "--seed", str(params["seed"])]
        )  # fmt: skip
        assert (tmp_path / "manifest.json").read_text() == (DEMO_DIR / "manifest.json").read_text()
        fresh_files = sorted(p.name for p in (tmp_path / "images").iterdir())
        assert fresh_files == sorted(p.name for p in (DEMO_DIR / "images").iterdir())
        for name in fresh_files:
            # Compare pixels, not PNG bytes, which depend on the zlib build.
            assert np.array_equal(
                np.asarray(Image.open(tmp_path / "images" / name)), np.asarray(Image.open(DEMO_DIR / "images" / name))
            )
        assert sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file()) < 300_000


@pytest.mark.parametrize(
    "module",
    [
        synthetic,
        synthetic.vocabulary,
        synthetic.drawing,
        synthetic.scene,
        synthetic.language,
        synthetic.rules,
        synthetic.answers,
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

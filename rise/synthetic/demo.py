"""The demo projects: scenes as PNGs plus a manifest holding one project per task type over them.

manifest.json (paths relative to the manifest):
    {"generator": {...parameters that regenerate it...},
     "projects": [{"name", "task_type", "labels", "description",
                   "items": [{"file": "images/scene_000.png", "query": null, "answer": <rise.tasks answer>}]}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rise.synthetic.answers import (
    QUERY_KINDS,
    detection_answer,
    generate_odd_one_out_scene,
    grounding_candidates,
    grounding_example,
)
from rise.synthetic.rules import LabelRule, generate_scene_for_rule, get_rule
from rise.synthetic.scene import Scene, SceneConfig, generate_scene
from rise.synthetic.vocabulary import DEFAULT_SHAPES
from rise.tasks import TaskType

DEMO_RULE = "mood"
MANIFEST_NAME = "manifest.json"
IMAGE_DIR = "images"
_ATTEMPTS = 1000
MOOD_IMAGES = 120
MOOD_EVAL_FRACTION = 0.3
# The mood project's default retraining settings (`section.field=value`): every RISE stage sized so that one Retrain
# click on a 2-core CPU finishes in minutes. RISE-CoT samples reasoning for 64 items (8 steps of 8 prompts), the
# filter keeps up to 64 of them (topped up with unverified rationales while the model cannot yet name a mood), SFT
# takes 240 steps and RFT 8. SFT fine-tunes every weight: with a LoRA adapter the demo model does not learn the rule
# from reasoning in this budget (`bench/reasoning_ceiling.py`); RFT then trains an adapter on that model, in small
# steps so it keeps what SFT taught (`bench/learning.py`). 240 SFT steps, not 80: on the demo's 30 verdicts the
# demo model of build 6 reached 0.32 on the held-out slice after 80, 0.44 after 160 and 0.53 after 240 (from 0.21),
# for about 30 s more of the job (`tests/test_demo_e2e.py`).
MOOD_RETRAIN_SETTINGS: tuple[str, ...] = (
    "rise_cot.max_steps=8", "rise_cot.num_generations=4", "rise_cot.per_device_train_batch_size=32",
    "rise_cot.max_completion_length=80", "rise_cot.learning_rate=0.001", "rise_cot.reconstruction_max_new_tokens=96",
    "filter.min_selected=64",
    "sft.max_steps=240", "sft.learning_rate=0.002", "sft.per_device_train_batch_size=8", "sft.use_lora=false",
    "rft.max_steps=8", "rft.num_generations=4", "rft.per_device_train_batch_size=16", "rft.max_completion_length=80",
    "rft.learning_rate=0.00025", "rft.overlong_buffer=16",
    "evaluation.max_new_tokens=96",
)  # fmt: skip


def write_demo_assets(
    out_dir: str | Path, n_images: int = 36, seed: int = 0, size: int = 64, n_mood: int = MOOD_IMAGES
) -> Path:
    """Write the demo's scenes to `out_dir/images/` and its four projects to `out_dir/manifest.json`.

    `n_images` scenes serve two projects: their shapes (detection) and one referring query (grounding); query kinds
    and mood labels cycle so each appears about equally often. The mood project (classification) gets `n_mood`
    scenes of its own (`mood_*.png`, labels cycling), enough for a held-out slice of 30 or more
    (`MOOD_EVAL_FRACTION`) beside the items to review and train on: a rule the demo model does not know, where
    retraining from the demo's verdicts shows. Old `scene_*.png` and `mood_*.png` files in `out_dir/images/` are
    removed first, so the folder matches the manifest exactly.

    Returns:
        `Path`: the manifest's path.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*image_dir.glob("scene_*.png"), *image_dir.glob("mood_*.png")]:
        stale.unlink()

    rule = get_rule(DEMO_RULE)
    config = rule.scene_config(SceneConfig(size=size))
    # The odd one out never ties the colour families (it needs three or more objects, all but one alike), so pair
    # every label with every query kind except "balanced" with "odd-one-out".
    # Labels vary fastest, so any prefix of the plan is close to balanced.
    plan = [
        (label, kind)
        for kind in QUERY_KINDS
        for label in rule.labels
        if not (label == "balanced" and kind == "odd-one-out")
    ]
    detection, grounding = [], []
    for index in range(n_images):
        label, kind = plan[index % len(plan)]
        scene, query, box = _demo_scene(rule, label, kind, np.random.default_rng([seed, index]), config)
        file = f"{IMAGE_DIR}/scene_{index:03d}.png"
        scene.image.save(out_dir / file, format="PNG", optimize=True)
        detection.append({"file": file, "query": None, "answer": detection_answer(scene)})
        grounding.append({"file": file, "query": query, "answer": box})
    mood = []
    for index in range(n_mood):
        label = rule.labels[index % len(rule.labels)]
        scene, _ = generate_scene_for_rule(rule, seed * 100_003 + index, config, label=label)
        file = f"{IMAGE_DIR}/mood_{index:03d}.png"
        scene.image.save(out_dir / file, format="PNG", optimize=True)
        mood.append({"file": file, "query": None, "answer": label})

    manifest = {
        "generator": {
            "module": "rise.synthetic",
            "n_images": n_images,
            "seed": seed,
            "size": size,
            "classification_rule": DEMO_RULE,
            "n_mood": n_mood,
        },
        "projects": [
            {
                "name": "demo-mood",
                "task_type": TaskType.classification.value,
                "labels": list(rule.labels),
                "description": f"The mood of a scene of coloured shapes. {rule.description}",
                "eval_fraction": MOOD_EVAL_FRACTION,
                "retrain_settings": list(MOOD_RETRAIN_SETTINGS),
                "items": mood,
            },
            {
                "name": "demo-detection",
                "task_type": TaskType.detection.value,
                "labels": list(DEFAULT_SHAPES),
                "description": "Draw a box around every shape and label it circle, square, triangle or diamond.",
                "items": detection,
            },
            {
                "name": "demo-grounding",
                "task_type": TaskType.grounding.value,
                "labels": [],
                "description": "Draw one box around the object the query refers to.",
                "items": grounding,
            },
        ],
    }
    manifest_path = out_dir / MANIFEST_NAME
    manifest_path.write_text(_format_manifest(manifest), encoding="utf-8")
    return manifest_path


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a demo manifest and check that it is well formed and that every image it names exists.

    Raises:
        `ValueError`: naming the first problem found, e.g. a missing image or an unknown task type.
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read demo manifest {path}: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("projects"), list):
        raise ValueError(f"{path} has no 'projects' list; regenerate it with `python -m rise.synthetic`")
    for project in manifest["projects"]:
        name = project.get("name")
        if project.get("task_type") not in {t.value for t in TaskType}:
            raise ValueError(f"Project {name!r} in {path} has unknown task_type {project.get('task_type')!r}")
        for item in project.get("items", []):
            if not (path.parent / item["file"]).is_file():
                raise ValueError(f"Project {name!r} in {path} names a missing image {item['file']!r}")
    return manifest


def _format_manifest(manifest: dict[str, Any]) -> str:
    """Indented JSON with one item per line: readable in a diff, and a third of the size of `indent=2`."""
    projects = []
    for project in manifest["projects"]:
        header = {key: value for key, value in project.items() if key != "items"}
        fields = [f"      {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
        items = ",\n".join(f"        {json.dumps(item)}" for item in project["items"])
        projects.append("    {\n" + "\n".join(fields) + '\n      "items": [\n' + items + "\n      ]\n    }")
    generator = json.dumps(manifest["generator"])
    return '{\n  "generator": ' + generator + ',\n  "projects": [\n' + ",\n".join(projects) + "\n  ]\n}\n"


def _demo_scene(
    rule: LabelRule, label: str, kind: str, rng: np.random.Generator, config: SceneConfig
) -> tuple[Scene, str, list[float]]:
    """A scene whose mood is `label` and that admits a grounding query of `kind`, plus that query and its box."""
    for _ in range(_ATTEMPTS):
        scene_seed = int(rng.integers(2**31))
        if kind == "odd-one-out":
            scene = generate_odd_one_out_scene(scene_seed, config)
        else:
            scene = generate_scene(scene_seed, config)
        if rule.label(scene) == label and grounding_candidates(scene, kind):
            query, box = grounding_example(scene, scene_seed, kind=kind)
            return scene, query, box
    raise ValueError(f"No demo scene with label {label!r} and a {kind!r} query in {_ATTEMPTS} tries")

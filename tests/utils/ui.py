"""A review project with real images for UI tests: synthetic scenes imported through the real import service,
each with a model prediction (a CoT and boxes), plus an admin and a reviewer who can sign in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.runtime import Runtime
from app.services import auth
from app.services.imports import import_paths
from app.services.projects import create_project
from db.models import Item
from rise.synthetic import SceneConfig, detection_answer, generate_scene
from rise.synthetic.vocabulary import DEFAULT_SHAPES
from tests.utils.review_factories import add_prediction

ADMIN = ("admin", "admin-password")
REVIEWER = ("ada", "ada-password")


@dataclass
class SeededProject:
    project_id: int
    item_ids: list[int]  # in queue order: lowest confidence first
    answers: dict[int, list[dict]]  # item id -> the predicted detection answer (pixels)


def seed_detection_project(
    runtime: Runtime,
    tmp_path: Path,
    n_items: int = 12,
    *,
    name: str = "scenes",
    cot: str | None = None,
    model_name: str = "tiny-v1",
) -> SeededProject:
    """`n_items` 64×64 scenes in a detection project; item k's prediction has score k / n_items (so the queue runs
    in item order), the scene's exact boxes and `cot` as its reasoning (default: a sentence naming the shapes)."""
    folder = tmp_path / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    config = SceneConfig(size=64, min_objects=1, max_objects=3)
    scenes = {}
    for seed in range(n_items):
        scene = generate_scene(seed, config)
        path = folder / f"scene_{seed:03d}.png"
        scene.image.save(path)
        scenes[str(path)] = scene
    project = create_project(runtime, name, "detection", list(DEFAULT_SHAPES))
    summary = import_paths(runtime, project.id, sorted(scenes))
    answers: dict[int, list[dict]] = {}
    ordered: list[int] = []
    with runtime.sessions.begin() as session:
        for rank, path in enumerate(sorted(scenes)):
            item = session.get(Item, summary.item_ids[path])
            answer = detection_answer(scenes[path])
            text = cot if cot is not None else "I see " + ", ".join(obj["label"] for obj in answer) + "."
            add_prediction(session, item, answer, score=rank / n_items, model_name=model_name, cot=text)
            answers[item.id] = answer
            ordered.append(item.id)
    return SeededProject(project_id=project.id, item_ids=ordered, answers=answers)


def create_accounts(runtime: Runtime) -> None:
    auth.create_user(runtime, *ADMIN, role="admin")
    auth.create_user(runtime, *REVIEWER, role="reviewer")

"""Training-data factories: synthetic scenes as snapshot records, and as a project in the database with its media.

Plain functions, no fixtures. The scenes come from `rise.synthetic`, so every answer is exact.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db.crud import projects as crud
from db.models import Item, Project, Split
from rise.synthetic import SceneConfig, generate_scene, get_rule
from rise.tasks import TaskSpec
from rise.training.records import Snapshot, TrainingRecord, load_snapshot, write_snapshot

RULE = "shape"  # one object per image, labelled with its shape: circle, square, triangle, diamond


def scene_png(seed: int, rule: str = RULE, size: int = 64) -> tuple[bytes, str]:
    """PNG bytes of a synthetic scene and its label under `rule`."""
    label_rule = get_rule(rule)
    scene = generate_scene(seed, label_rule.scene_config(SceneConfig(size=size)))
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    return buffer.getvalue(), label_rule.label(scene)


def classification_spec(rule: str = RULE) -> TaskSpec:
    return TaskSpec("classification", labels=get_rule(rule).labels)


def synthetic_snapshot(
    folder: Path,
    n_train: int = 6,
    n_eval: int = 2,
    *,
    cots: dict[int, str] | None = None,
    rejected: dict[int, list[Any]] | None = None,
    without_answer: tuple[int, ...] = (),
    sources: dict[int, str] | None = None,
) -> Snapshot:
    """A classification snapshot of synthetic scenes; item ids are the seeds, held-out items come last. Answers are
    imported unless `sources` says where an item's came from ("accept", "correct")."""
    records = []
    for seed in range(n_train + n_eval):
        png, label = scene_png(seed)
        records.append(
            TrainingRecord(
                item_id=seed,
                image=png,
                width=64,
                height=64,
                split="train" if seed < n_train else "eval",
                answer=None if seed in without_answer else label,
                answer_source=None if seed in without_answer else (sources or {}).get(seed, "import"),
                cot=(cots or {}).get(seed),
                rejected_answers=(rejected or {}).get(seed, []),
            )
        )
    write_snapshot(folder, classification_spec(), records)
    return load_snapshot(folder)


def add_scene_item(
    session: Session, project: Project, media_dir: Path, seed: int, *, split: Split = Split.train
) -> tuple[Item, str]:
    """An item whose image file really exists in the media folder (content-addressed, as imports store it)."""
    png, label = scene_png(seed)
    sha = hashlib.sha256(png).hexdigest()
    media_path = f"{sha[:2]}/{sha}.png"
    (media_dir / media_path).parent.mkdir(parents=True, exist_ok=True)
    (media_dir / media_path).write_bytes(png)
    new = crud.NewItem(
        sha256=sha, media_path=media_path, original_name=f"scene_{seed}.png", width=64, height=64, split=split
    )
    return crud.create_items(session=session, project_id=project.id, items=[new])[0], label

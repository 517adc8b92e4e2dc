"""A reviewed project for the export and Label Studio tests: real images (non-square, boxes touching the border),
model predictions with chains of thought, and accept / correct / reject verdicts with the annotations they derive.
Plain functions, no fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from app.services.imports import import_paths
from app.services.projects import create_project
from db.models import Annotation, AnnotationSource, Item, Prediction, Review, Role, User, Verdict
from tests.utils.factories import write_png

# Hostile label values: quotes, angle brackets, an ampersand and a label that looks like markup.
HOSTILE_LABEL = "a\"<b>&'c"
SIZES = [(40, 20), (20, 50), (33, 33), (64, 17)]
WHEN = datetime(2025, 3, 4, 5, 6, 7)


@dataclass
class SeededItem:
    sha256: str
    width: int
    height: int
    query: str | None
    prediction: Any
    prediction_cot: str
    annotation: Any | None  # the verdict-derived trusted answer, if any
    annotation_cot: str | None
    reviewer: str | None
    verdict: str


@dataclass
class SeededProject:
    id: int
    items: list[SeededItem]


def answers_for(task_type: str, labels: list[str], width: int, height: int, index: int) -> tuple[Any, Any]:
    """(predicted, corrected) answers; boxes touch the image border on purpose."""
    if task_type == "classification":
        return labels[index % len(labels)], labels[(index + 1) % len(labels)]
    full = [0.0, 0.0, float(width), float(height)]  # the whole image: every edge on the border
    corner = [width / 3, height / 4, float(width), float(height)]  # right and bottom edges on the border
    if task_type == "grounding":
        return corner, [0.0, height / 5, width / 2, height * 0.9]
    return (
        [{"label": labels[0], "box": full}, {"label": labels[-1], "box": [1.5, 2.25, width / 2, height / 2]}],
        [{"label": labels[-1], "box": corner}],
    )


def seed_reviewed_project(
    runtime: Runtime, name: str, task_type: str, labels: list[str], image_dir: Path, *, first_seed: int = 100
) -> SeededProject:
    """Create `name` with one item per size in `SIZES`: item 0 accepted (its CoT becomes the annotation's), item 1
    corrected, item 2 rejected, item 3 unreviewed. Returns the project's id and what was stored, for comparisons."""
    project_id = create_project(runtime, name, task_type, labels).id
    paths = [write_png(image_dir / f"{name}_{i}.png", seed=first_seed + i, size=size) for i, size in enumerate(SIZES)]
    queries = {str(path.resolve()): f'the <shape> & "thing" {i}' for i, path in enumerate(paths)}
    summary = import_paths(runtime, project_id, paths, queries=queries if task_type == "grounding" else None)
    assert summary.added == len(paths), summary.skipped
    seeded: list[SeededItem] = []
    with runtime.sessions.begin() as session:
        reviewers = {
            username: session.query(User).filter_by(username=username).one_or_none()
            or User(username=username, password_hash="!", role=Role.reviewer)
            for username in ("ada", "grace")
        }
        session.add_all(reviewers.values())
        session.flush()
        for index, path in enumerate(paths):
            item = session.get(Item, summary.item_ids[str(path)])
            predicted, corrected = answers_for(task_type, labels, item.width, item.height, index)
            cot = f'Step {index}: the <outline> is "round" & small.'
            prediction = Prediction(
                item_id=item.id, model_name="tiny-v1", raw_text="", cot=cot, answer=predicted, score=0.25 * index
            )
            session.add(prediction)
            session.flush()
            verdict, reviewer, annotation, annotation_cot = ("none", None, None, None)
            if index < 3:
                verdict = (Verdict.accept, Verdict.correct, Verdict.reject)[index].value
                reviewer = "ada" if index != 1 else "grace"
                review = Review(
                    item_id=item.id,
                    prediction_id=prediction.id,
                    reviewer_id=reviewers[reviewer].id,
                    verdict=Verdict(verdict),
                    corrected_answer=corrected if index == 1 else None,
                    time_spent_ms=1500 + index,
                    created_at=WHEN,
                )
                session.add(review)
                session.flush()
                if index < 2:
                    annotation = predicted if index == 0 else corrected
                    annotation_cot = cot if index == 0 else None
                    session.add(
                        Annotation(
                            item_id=item.id,
                            answer=annotation,
                            cot=annotation_cot,
                            source=AnnotationSource.accept if index == 0 else AnnotationSource.correct,
                            review_id=review.id,
                            created_by_id=reviewers[reviewer].id,
                            created_at=WHEN,
                        )
                    )
            seeded.append(
                SeededItem(
                    sha256=item.sha256,
                    width=item.width,
                    height=item.height,
                    query=item.query,
                    prediction=predicted,
                    prediction_cot=cot,
                    annotation=annotation,
                    annotation_cot=annotation_cot,
                    reviewer=reviewer,
                    verdict=verdict,
                )
            )
    return SeededProject(project_id, seeded)


def boxes_close(a: Any, b: Any, tolerance: float = 0.5) -> bool:
    """Two answers equal, boxes within `tolerance` pixels on every coordinate."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(boxes_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(boxes_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= tolerance
    return a == b

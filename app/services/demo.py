"""The demo: projects, images and part of their ground truth from `assets/demo/manifest.json`.

Ground truth is stored (as `import` annotations) for every held-out eval item, so each model version can be scored at
once, and for about half of the train items, chosen by content hash, so the model has examples to learn from and the
reviewers have items left to annotate. Running it again changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.runtime import Runtime
from app.services.imports import ImportSummary, SkippedFile, import_paths
from app.services.jobs import JobRequestError, set_retrain_settings
from app.services.projects import create_project, project_with_id
from db.crud import projects as crud
from db.models import Project, Split
from rise.tasks import TaskType

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "assets" / "demo" / "manifest.json"
# The committed demo base model (`rise model build-demo`): it sees the scenes but knows no project's rule.
DEFAULT_DEMO_MODEL = Path(__file__).resolve().parents[2] / "assets" / "demo-model"
TRAIN_LABELLED_FRACTION = 0.5
GROUND_TRUTH_AUTHOR = "demo ground truth"

# (project name, done, total), called after each image.
DemoProgress = Callable[[str, int, int], None]


class DemoError(AppError, ValueError):
    """The demo manifest is missing or malformed, or clashes with an existing project."""


@dataclass
class DemoProjectSummary:
    id: int
    name: str
    task_type: TaskType
    created: bool
    imported: ImportSummary
    annotations_added: int = 0
    bad_answers: list[SkippedFile] = field(default_factory=list)


@dataclass
class DemoSummary:
    manifest: Path
    projects: list[DemoProjectSummary]


def load_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DemoError(
            f"Demo manifest not found at {path}. Name another manifest, or regenerate the demo assets.",
            setting="manifest",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DemoError(f"Cannot read the demo manifest {path}: {error}") from None
    projects = manifest.get("projects") if isinstance(manifest, dict) else None
    if not isinstance(projects, list) or not projects:
        raise DemoError(f'{path} has no "projects" list; see the manifest format in assets/demo/.')
    for index, project in enumerate(projects):
        if not isinstance(project, dict) or not {"name", "task_type", "items"} <= project.keys():
            raise DemoError(f'{path}: project #{index} needs "name", "task_type" and "items".')
        if not all(isinstance(item, dict) and isinstance(item.get("file"), str) for item in project["items"]):
            raise DemoError(f'{path}: every item of project {project["name"]!r} needs a "file" string.')
    return manifest


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _box_problem(box: Any, width: int, height: int) -> str | None:
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        return f"a box must be [x1, y1, x2, y2] numbers, got {box!r}"
    x1, y1, x2, y2 = box
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        return f"box {box} is empty or outside the {width}×{height} image"
    return None


def answer_problem(project: Project, answer: Any, width: int, height: int) -> str | None:
    """Why `answer` is not a valid answer for the project (shapes in `rise.tasks`), or None when it is."""
    labels = list(project.labels)
    task_type = TaskType(project.task_type)
    if task_type is TaskType.classification:
        if project.distribution:
            if not (isinstance(answer, dict) and set(answer) == set(labels)):
                return f"expected a probability for each of {labels}"
            if not all(_is_number(p) and p >= 0 for p in answer.values()) or abs(sum(answer.values()) - 1) > 1e-3:
                return "probabilities must be non-negative and sum to 1"
            return None
        return None if answer in labels else f"{answer!r} is not one of {labels}"
    if task_type is TaskType.grounding:
        return _box_problem(answer, width, height)
    if not isinstance(answer, list):
        return f"expected a list of {{label, box}} objects, got {answer!r}"
    for obj in answer:
        if not isinstance(obj, dict) or obj.get("label") not in labels:
            return f"{obj!r} needs a label from {labels}"
        problem = _box_problem(obj.get("box"), width, height)
        if problem:
            return problem
    return None


def _labelled_in_train(sha256: str, fraction: float) -> bool:
    # Bits 64..128 of the hash, independent of the first 64 that decide the train/eval split.
    return int(sha256[16:32], 16) / 16**16 < fraction


def _ensure_project(runtime: Runtime, spec: dict[str, Any]) -> tuple[int, bool]:
    """Create the project unless it exists with the same task; returns its id and whether it was created."""
    with runtime.sessions.begin() as session:
        existing = crud.get_project_by_name(session=session, name=spec["name"])
        if existing is not None:
            if existing.task_type != spec["task_type"]:
                raise DemoError(
                    f"A project named {spec['name']!r} already exists with task {existing.task_type}, not "
                    f"{spec['task_type']}. Rename or delete it, or use another RISE_DATA_DIR for the demo."
                )
            return existing.id, False
    project = create_project(
        runtime,
        spec["name"],
        spec["task_type"],
        spec.get("labels") or [],
        description=spec.get("description") or "",
        eval_fraction=float(spec.get("eval_fraction", 0.1)),
        distribution=bool(spec.get("distribution", False)),
    )
    if spec.get("retrain_settings"):
        try:
            set_retrain_settings(runtime, project.id, spec["retrain_settings"])
        except JobRequestError as error:
            raise DemoError(f"Project {spec['name']!r} in the demo manifest: {error}") from None
    return project.id, True


def _store_ground_truth(
    runtime: Runtime, project_id: int, answers: dict[str, Any], item_ids: dict[str, int], train_fraction: float
) -> tuple[int, list[SkippedFile]]:
    added = 0
    bad: list[SkippedFile] = []
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, DemoError)
        items = {item.id: item for item in crud.list_items(session=session, project_id=project.id)}
        annotated = crud.annotated_item_ids(session=session, project_id=project.id)
        for path, answer in answers.items():
            item = items.get(item_ids.get(path, -1))
            if item is None or item.id in annotated:
                continue
            if item.split is Split.train and not _labelled_in_train(item.sha256, train_fraction):
                continue
            problem = answer_problem(project, answer, item.width, item.height)
            if problem:
                bad.append(SkippedFile(path, f"ground truth not stored: {problem}"))
                continue
            crud.create_imported_annotation(
                session=session, item_id=item.id, answer=answer, created_by_name=GROUND_TRUTH_AUTHOR
            )
            annotated.add(item.id)
            added += 1
    return added, bad


def setup_demo(
    runtime: Runtime,
    manifest_path: Path | None = None,
    *,
    progress: DemoProgress | None = None,
    train_labelled_fraction: float = TRAIN_LABELLED_FRACTION,
) -> DemoSummary:
    """Create the demo projects from the manifest (if missing), import their images and part of their ground truth."""
    manifest_path = Path(manifest_path or DEFAULT_MANIFEST)
    manifest = load_manifest(manifest_path)
    base = manifest_path.parent
    summaries: list[DemoProjectSummary] = []
    for spec in manifest["projects"]:
        name = spec["name"]
        project_id, created = _ensure_project(runtime, spec)
        paths = [base / item["file"] for item in spec["items"]]
        pairs = list(zip(paths, spec["items"], strict=True))
        queries = {str(path.resolve()): item["query"] for path, item in pairs if item.get("query")}
        answers = {str(path): item["answer"] for path, item in pairs if item.get("answer") is not None}
        report = None if progress is None else (lambda done, total, name=name: progress(name, done, total))
        imported = import_paths(runtime, project_id, paths, queries=queries, progress=report)
        added, bad = _store_ground_truth(runtime, project_id, answers, imported.item_ids, train_labelled_fraction)
        task_type = TaskType(spec["task_type"])
        summaries.append(
            DemoProjectSummary(
                project_id, name, task_type, created, imported, annotations_added=added, bad_answers=bad
            )
        )
    return DemoSummary(manifest=manifest_path, projects=summaries)


def annotate_demo(
    runtime: Runtime,
    project_ids: list[int],
    model: str | Path = DEFAULT_DEMO_MODEL,
    *,
    progress: DemoProgress | None = None,
) -> list[Any]:
    """Make `model` the default model of the demo projects (`project_ids`) that have none, and store its predictions
    (answer and reasoning) for every item without one and without a trusted annotation. Resumable: a rerun annotates
    nothing new.

    Returns:
        `list[AnnotationRunSummary]`, one per project.
    """
    # Imported here: torch and transformers take seconds to import, which setting up the projects never needs.
    from app.services.annotation import run_annotation
    from rise.annotate import GenerationSettings

    model_path = Path(model).expanduser().resolve()
    if not (model_path / "config.json").is_file():
        raise DemoError(f"No model folder at {model_path}. Build the demo model first.", setting="demo_model")
    names = {}
    for project_id in project_ids:
        with runtime.sessions.begin() as session:
            project = project_with_id(session, project_id, DemoError)
            names[project_id] = project.name  # what `progress` reports by
            if not project.default_model:
                project.default_model = str(model_path)
    settings = GenerationSettings(batch_size=16, max_new_tokens=256)
    summaries = []
    for project_id in project_ids:
        name = names[project_id]
        report = None if progress is None else (lambda done, total, name=name: progress(name, done, total))
        summaries.append(run_annotation(runtime, project_id, str(model_path), settings=settings, progress=report))
    return summaries

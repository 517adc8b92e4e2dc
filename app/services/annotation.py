"""Annotate a project's unannotated items with a model and store the predictions.

Items are read once, then annotated in batches; each batch's predictions commit in their own transaction as soon as
the batch is done, so an interrupted run keeps what it finished, and running it again picks up exactly the items
that still have no prediction from this model (items with a trusted annotation are never sent to the model).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from app.runtime import Runtime
from app.services.projects import ProjectError, project_model, project_with_id, task_spec_for
from db.crud import predictions as crud
from rise.annotate import AnnotationInput, GenerationSettings, PredictionResult, annotate_images
from rise.modeling import load_model_and_processor


@dataclass(frozen=True)
class SkippedItem:
    item_id: int
    name: str
    reason: str


@dataclass
class AnnotationRunSummary:
    """What one `run_annotation` call did."""

    project: str
    model: str
    pending: int = 0  # items that needed a prediction when the run started (after `limit`)
    stored: int = 0  # predictions written
    parsed: int = 0  # of those, with a valid answer
    failed: int = 0  # of those, with a parse error (the raw text is kept for review)
    skipped: list[SkippedItem] = field(default_factory=list)  # images that could not be opened; retried next run
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _ModelChoice:
    base: str
    adapter: str | None
    prediction_name: str  # what Prediction.model_name records, and what "already annotated" is checked against
    version_id: int | None


def _resolve_model(session: Any, project_id: int, model: str, adapter: str | None) -> _ModelChoice:
    """`model` names a registered model version of the project, or else a Hub id or model folder."""
    version = crud.find_model_version(session=session, project_id=project_id, name=model)
    if version is not None and adapter is None:
        return _ModelChoice(version.base_model, version.adapter_path, version.name, version.id)
    local = Path(model).expanduser()
    # A folder is recorded by its absolute path, so a run resumed from another directory finds its predictions.
    base = str(local.resolve()) if local.is_dir() else model
    name = base if adapter is None else f"{base}+{Path(adapter).expanduser().resolve()}"
    return _ModelChoice(base, adapter, name, None)


def _open_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def _load_batch(media_dir: Path, batch: list[crud.ItemToAnnotate]) -> tuple[list, list[SkippedItem]]:
    loaded, skipped = [], []
    for item in batch:
        try:
            image = _open_image(media_dir / item.media_path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append(
                SkippedItem(item.id, item.original_name or item.media_path, f"image could not be read: {exc}")
            )
            continue
        loaded.append((item, AnnotationInput(image=image, query=item.query)))
    return loaded, skipped


def _to_new_prediction(item_id: int, choice: _ModelChoice, result: PredictionResult) -> crud.NewPrediction:
    return crud.NewPrediction(
        item_id=item_id,
        model_name=choice.prediction_name,
        model_version_id=choice.version_id,
        raw_text=result.raw_text,
        cot=result.cot,
        answer=result.answer,
        parse_error=result.error,
        score=result.score,
    )


def run_annotation(
    runtime: Runtime,
    project_id: int,
    model: str | None,
    *,
    settings: GenerationSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    adapter: str | None = None,
    limit: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> AnnotationRunSummary:
    """Store a prediction from `model` for every item of the project that has neither one nor a trusted annotation.

    Args:
        model: a model version registered for the project, a Hub id or a model folder; None: the project's
            serving version, else its default model (`app.services.projects.project_model`).
        settings: batching and sampling (`rise.annotate.GenerationSettings`).
        progress: called with (items done, items pending) after each batch.
        adapter: a PEFT adapter folder to apply on top of `model`.
        limit: annotate at most this many items (oldest first).

    Raises:
        `ProjectError` for an unknown project or one with no model to default to, `ModelLoadError` when the model
        cannot be loaded.
    """
    settings = settings or GenerationSettings()
    started = time.perf_counter()
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, ProjectError)
        name = project.name
        spec = task_spec_for(project)
        choice = _resolve_model(session, project.id, model or project_model(session, project), adapter)
        pending = crud.items_to_annotate(
            session=session, project_id=project.id, model_name=choice.prediction_name, limit=limit
        )
    summary = AnnotationRunSummary(project=name, model=choice.prediction_name, pending=len(pending))
    if not pending:
        return summary
    loaded_model, processor = load_model_and_processor(choice.base, adapter=choice.adapter, device=device, dtype=dtype)
    done = 0
    for number, start in enumerate(range(0, len(pending), settings.batch_size)):
        batch = pending[start : start + settings.batch_size]
        loaded, skipped = _load_batch(runtime.settings.media_dir, batch)
        summary.skipped.extend(skipped)
        if loaded:
            # A different seed per batch, so batches do not all draw the same random stream.
            batch_settings = (
                settings if settings.seed is None else dataclasses.replace(settings, seed=settings.seed + number)
            )
            results = annotate_images(loaded_model, processor, spec, [inp for _, inp in loaded], batch_settings)
            with runtime.sessions.begin() as session:
                rows = crud.create_predictions(
                    session=session,
                    predictions=[
                        _to_new_prediction(item.id, choice, r) for (item, _), r in zip(loaded, results, strict=True)
                    ],
                )
                summary.stored += len(rows)
                summary.failed += sum(1 for row in rows if row.parse_error is not None)
                summary.parsed += sum(1 for row in rows if row.parse_error is None)
        done += len(batch)
        if progress is not None:
            progress(done, len(pending))
    summary.seconds = time.perf_counter() - started
    return summary

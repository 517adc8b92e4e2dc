"""Snapshot a project's training data from its verdicts: the input of every RISE training stage.

For each item the snapshot holds the trusted annotation (imported, accepted or corrected: the newest one; undoing a
verdict removes the annotation it made), its reasoning (an accepted prediction's, unless the reviewer flagged it as
wrong, or the one a reviewer wrote with a correction), and the answers reviewers rejected. Held-out items
(`Item.split == eval`) go to a separate `eval` split that only evaluation reads; nothing of theirs reaches the
training split.

    summary = snapshot_training_data(runtime, "shapes", Path("runs/shapes/data"))

The snapshot is a folder (a Hugging Face dataset with the images embedded), so training runs where there is no
database and no media folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from app.services.projects import ProjectError, project_with_id, task_spec_for
from db.crud.exchange import ItemRecord, iter_item_records
from db.models import AnnotationSource, Split
from rise.answers import normalize_answer
from rise.tasks import TaskSpec
from rise.training.records import TrainingRecord, write_snapshot

# Annotations whose CoT is SFT data: an accepted prediction's reasoning or the one a reviewer wrote with a correction.
REVIEWED_SOURCES = (AnnotationSource.accept.value, AnnotationSource.correct.value)


@dataclass
class TrainingDataSummary:
    """What a snapshot holds, and the items left out with the reason."""

    project: str
    path: Path
    default_model: str | None = None  # the project's model, when one is set
    train_items: int = 0
    eval_items: int = 0
    with_answer: int = 0
    with_cot: int = 0
    with_rejections: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)


def _answer_or_reason(value: Any, spec: TaskSpec, item: ItemRecord) -> tuple[Any, str | None]:
    try:
        return normalize_answer(value, spec, item.width, item.height), None
    except ValueError as error:
        return None, str(error)


def _record_for(item: ItemRecord, spec: TaskSpec, media_dir: Path) -> tuple[TrainingRecord | None, str | None]:
    """The item's training record, or `None` and why it is left out (`None, None`: nothing to learn from it)."""
    trusted = item.annotations[-1] if item.annotations else None  # newest last: ordered by id
    answer, problem = (None, None)
    if trusted is not None:
        answer, problem = _answer_or_reason(trusted.answer, spec, item)
        if problem:
            return None, f"its trusted annotation is invalid: {problem}"
    cot = None
    reviewed = trusted is not None and trusted.source in REVIEWED_SOURCES
    if reviewed and not trusted.reasoning_wrong and item.split == Split.train.value:
        cot = (trusted.cot or "").strip() or None
    rejected: list[Any] = []
    if item.split == Split.train.value:
        answers_by_prediction = {p.id: p.answer for p in item.predictions}
        for review in item.reviews:
            value = answers_by_prediction.get(review.prediction_id) if review.verdict == "reject" else None
            if value is None:
                continue
            normalized, _ = _answer_or_reason(value, spec, item)
            if normalized is not None and normalized not in rejected:  # an unreadable rejected answer teaches nothing
                rejected.append(normalized)
    if answer is None and (item.split == Split.eval.value or not rejected):
        return None, None
    image = media_dir / item.media_path
    if not image.is_file():
        return None, f"its image {item.media_path} is missing from the media folder"
    record = TrainingRecord(
        item_id=item.id,
        image=image,
        width=item.width,
        height=item.height,
        split=item.split,
        answer=answer,
        answer_source=trusted.source if trusted is not None else None,
        query=item.query,
        cot=cot,
        rejected_answers=rejected,
    )
    return record, None


def snapshot_training_data(runtime: Runtime, project_id: int, out_dir: Path) -> TrainingDataSummary:
    """Write the project's training data (both splits) to `out_dir`, replacing an earlier snapshot there.

    Items without a trusted annotation or a rejected answer carry no signal and are not included; items with an
    invalid stored answer or a missing image are left out and listed in `skipped`.

    Raises:
        `ProjectError`: no such project.
    """
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, ProjectError)
        spec = task_spec_for(project)
        name = project.name
        default_model = project.default_model
        records: list[TrainingRecord] = []
        skipped: list[tuple[int, str]] = []
        for item in iter_item_records(session=session, project_id=project_id):
            record, reason = _record_for(item, spec, runtime.settings.media_dir)
            if record is not None:
                records.append(record)
            elif reason is not None:
                skipped.append((item.id, reason))
    info = {"project": name, "project_id": project_id, "skipped": [[i, r] for i, r in skipped]}
    write_snapshot(out_dir, spec, records, info)
    train = [r for r in records if r.split == Split.train.value]
    return TrainingDataSummary(
        project=name,
        path=Path(out_dir),
        default_model=default_model,
        train_items=len(train),
        eval_items=len(records) - len(train),
        with_answer=sum(r.answer is not None for r in train),
        with_cot=sum(r.cot is not None for r in train),
        with_rejections=sum(bool(r.rejected_answers) for r in train),
        skipped=skipped,
    )

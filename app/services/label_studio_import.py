"""Import Label Studio tasks: a JSON export file, or a pull from a live server through a snapshot export.

Each task's image is found (see `ImageResolver`), stored like any imported image and becomes an item; its
annotations become trusted annotations (source `import`, author and time kept where the export has them) and its
predictions become predictions. Each task is checked whole before anything of it is written: one with an unknown
label, a rotated box, a missing image or a malformed entry is skipped whole and reported with its reasons, and the
tasks beside it are imported all the same. Nothing already stored is changed. Importing the same tasks again adds
nothing: an item with the same image content is reused and an identical annotation or prediction is not added twice.
"""

from __future__ import annotations

import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.errors import AppError
from app.export import label_studio as ls
from app.export.jsonstream import JsonArrayError, SkippedElement, iter_json_array
from app.export.label_studio_config import LabelingConfigError, parse_labeling_config
from app.media import ImageRejected, PreparedImage, prepare_image, sha256_hex, write_media
from app.runtime import Runtime
from app.services.imports import split_for
from app.services.label_studio_images import ImageMissing, ImageResolver
from app.services.projects import ProjectError, create_project, project_id_called, project_with_id, task_spec_for
from db.crud import exchange
from db.crud import projects as project_crud
from db.crud.projects import NewItem, ProjectNotFoundError
from db.models import storable_text
from rise.answers import normalize_answer
from rise.parsing import format_answer
from rise.tasks import TaskSpec, TaskType

TASK_BATCH = 100  # tasks per transaction
# A Label Studio task is about 8 levels deep (task, annotations, annotation, result, region, value, labels, label);
# one far deeper is not a task, and checking it would only spend the stack.
MAX_TASK_DEPTH = 32
# The length of the columns that imported file and model names go to (db.models); a longer name is cut to fit.
NAME_CHARS = 1024


class LabelStudioImportError(AppError, ValueError):
    """The import as a whole cannot run (unknown project, unreadable file); the message says what to fix."""


@dataclass
class SkippedTask:
    index: int  # position in the export, from 0
    task_id: Any  # Label Studio's task id, when the export has one
    reasons: list[str]

    def __str__(self) -> str:
        name = f"task {self.task_id}" if self.task_id is not None else f"task #{self.index}"
        return f"{name}: " + "; ".join(self.reasons)


@dataclass
class LabelStudioImportReport:
    tasks: int = 0
    items_added: int = 0
    items_existing: int = 0
    annotations_added: int = 0
    predictions_added: int = 0
    # Annotations and predictions identical to ones already stored for the item (a repeated import).
    duplicates: int = 0
    cancelled_annotations: int = 0
    skipped: list[SkippedTask] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# Reading one task


@dataclass
class _Entry:
    answer: Any
    cot: str | None
    author: str = ""
    created_at: datetime | None = None
    model_version: str = ""
    score: float | None = None


@dataclass
class _ParsedTask:
    image_ref: Any
    sha256: Any
    query: str | None
    original_name: str
    annotations: list[_Entry]
    predictions: list[_Entry]
    cancelled: int = 0


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Stored as naive UTC, like every timestamp in the database.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _author(annotation: dict[str, Any]) -> str:
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("username") or completed_by.get("id") or "")
    if annotation.get("created_username"):
        return str(annotation["created_username"])
    return f"label-studio user {completed_by}" if completed_by is not None else "label-studio"


def _read_entry(
    results: Any, spec: TaskSpec, width: int, height: int, what: str, problems: list[str]
) -> _Entry | None:
    read = ls.results_to_answer(results, spec.task_type, spec.labels, width, height, distribution=spec.distribution)
    if read.problems:
        problems.extend(f"{what}: {problem}" for problem in read.problems)
        return None
    try:
        answer = normalize_answer(read.answer, spec, width, height)
    except ValueError as error:
        problems.append(f"{what}: {error}")
        return None
    return _Entry(answer=answer, cot=read.cot)


def _parse_task(
    task: Any, spec: TaskSpec, width: int, height: int, notes: set[str]
) -> tuple[_ParsedTask | None, list]:
    """Read a task's annotations and predictions against the image size; (None, problems) when any is bad."""
    problems: list[str] = []
    data, meta = task.get("data"), task.get("meta") or {}
    rise_meta = meta.get("rise") if isinstance(meta, dict) and isinstance(meta.get("rise"), dict) else {}
    provenance = rise_meta.get("annotations") if isinstance(rise_meta.get("annotations"), list) else []
    raw_annotations = task.get("annotations") or []
    raw_predictions = task.get("predictions") or []
    if not isinstance(raw_annotations, list) or not isinstance(raw_predictions, list):
        return None, ["`annotations` and `predictions` must be lists"]
    parsed = _ParsedTask(
        image_ref=data.get(ls.IMAGE),
        sha256=rise_meta.get("sha256"),
        query=data.get(ls.QUERY) if isinstance(data.get(ls.QUERY), str) else None,
        original_name=str(rise_meta.get("original_name") or "")[:NAME_CHARS],
        annotations=[],
        predictions=[],
    )
    if spec.task_type is TaskType.grounding and not (parsed.query or "").strip():
        problems.append("a grounding task needs its query in data.query")
    use_provenance = len(provenance) == len(raw_annotations)
    for index, annotation in enumerate(raw_annotations):
        if not isinstance(annotation, dict):
            problems.append(f"annotation {index + 1}: not an object")
            continue
        if annotation.get("was_cancelled"):
            parsed.cancelled += 1
            continue
        entry = _read_entry(annotation.get("result"), spec, width, height, f"annotation {index + 1}", problems)
        if entry is None:
            continue
        origin = provenance[index] if use_provenance and isinstance(provenance[index], dict) else {}
        entry.author = str(origin.get("author") or _author(annotation))
        entry.created_at = _parse_time(origin.get("created_at")) or _parse_time(annotation.get("created_at"))
        parsed.annotations.append(entry)
    for index, prediction in enumerate(raw_predictions):
        if isinstance(prediction, int):
            notes.add("predictions came as ids only (Label Studio's quick export); export a snapshot to keep them")
            continue
        if not isinstance(prediction, dict):
            problems.append(f"prediction {index + 1}: not an object")
            continue
        entry = _read_entry(prediction.get("result"), spec, width, height, f"prediction {index + 1}", problems)
        if entry is None:
            continue
        entry.model_version = str(prediction.get("model_version") or "label-studio")[:NAME_CHARS]
        score = prediction.get("score")
        entry.score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
        parsed.predictions.append(entry)
    return (None, problems) if problems else (parsed, [])


# Storing


def same_answer(a: Any, b: Any, tolerance: float = 0.01) -> bool:
    """Equal answers, numbers within `tolerance` (a box that went through percent and back differs in the last
    digits from the stored one, and stored boxes keep two decimals)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_answer(a[key], b[key], tolerance) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answer(x, y, tolerance) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tolerance
    return a == b


@dataclass(frozen=True)
class _Target:
    project_id: int
    spec: TaskSpec
    eval_fraction: float


def _raw_text(entry: _Entry, spec: TaskSpec, width: int, height: int) -> str:
    """The completion as the model would have written it, so imported predictions look like our own."""
    answer_text = format_answer(entry.answer, spec, width, height)
    return f"<think>{entry.cot.strip()}</think><answer>{answer_text}</answer>" if entry.cot else answer_text


def _store_task(runtime: Runtime, session, target: _Target, parsed: _ParsedTask, image, sha: str, report) -> None:
    item_ids = project_crud.item_ids_by_sha(session=session, project_id=target.project_id, shas=[sha])
    if sha in item_ids:
        item_id = item_ids[sha]
        report.items_existing += 1
        stored_annotations, stored_predictions = exchange.existing_answers(session=session, item_id=item_id)
    else:
        relpath = write_media(runtime.settings.media_dir, sha, image)
        name = parsed.original_name or Path(urllib.parse.unquote(str(parsed.image_ref or ""))).name[:200]
        new = NewItem(
            sha256=sha,
            media_path=relpath,
            original_name=name if not str(parsed.image_ref or "").startswith("data:") else "",
            width=image.width,
            height=image.height,
            split=split_for(sha, target.eval_fraction),
            query=parsed.query if target.spec.task_type is TaskType.grounding else None,
        )
        item_id = project_crud.create_items(session=session, project_id=target.project_id, items=[new])[0].id
        report.items_added += 1
        stored_annotations, stored_predictions = [], []
    for entry in parsed.annotations:
        if any(same_answer(entry.answer, stored) for stored in stored_annotations):
            report.duplicates += 1
            continue
        exchange.create_imported_annotation(
            session=session,
            item_id=item_id,
            answer=entry.answer,
            cot=entry.cot,
            author=entry.author,
            created_at=entry.created_at,
        )
        stored_annotations.append(entry.answer)
        report.annotations_added += 1
    for entry in parsed.predictions:
        if any(name == entry.model_version and same_answer(entry.answer, a) for name, a in stored_predictions):
            report.duplicates += 1
            continue
        exchange.create_imported_prediction(
            session=session,
            item_id=item_id,
            model_name=entry.model_version,
            raw_text=_raw_text(entry, target.spec, image.width, image.height),
            cot=entry.cot,
            answer=entry.answer,
            score=entry.score,
        )
        stored_predictions.append((entry.model_version, entry.answer))
        report.predictions_added += 1


def _open_target(runtime: Runtime, project_id: int) -> _Target:
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, LabelStudioImportError)
        return _Target(project.id, task_spec_for(project), project.eval_fraction)


def import_label_studio_tasks(
    runtime: Runtime,
    project_id: int,
    tasks: Iterable[Any],
    resolver: ImageResolver,
    *,
    progress: Callable[[int], None] | None = None,
) -> LabelStudioImportReport:
    """Import Label Studio tasks into the project; see the module docstring."""
    target = _open_target(runtime, project_id)
    report = LabelStudioImportReport()
    notes: set[str] = set()
    max_pixels = runtime.settings.max_image_pixels
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        # One transaction per batch: an interrupted import keeps the batches before it, and a re-run skips them.
        with runtime.sessions.begin() as session:
            for index, task in batch:
                checked = _check_task(index, task, target.spec, resolver, max_pixels, notes)
                if isinstance(checked, SkippedTask):
                    report.skipped.append(checked)
                else:
                    _store_checked(runtime, session, target, checked, report)
        batch.clear()

    try:
        for index, task in enumerate(tasks):
            report.tasks += 1
            batch.append((index, task))
            if len(batch) >= TASK_BATCH:
                flush()
                if progress is not None:
                    progress(report.tasks)
    except JsonArrayError as error:
        if report.tasks == 0:
            raise  # not a list of tasks at all: the caller says so
        report.notes.append(f"stopped reading the file: {error}")
    if batch:
        flush()
    report.notes.extend(sorted(notes))
    return report


@dataclass
class _CheckedTask:
    """A task that passed every check, with what storing it needs."""

    index: int
    task_id: Any
    parsed: _ParsedTask
    image: PreparedImage
    sha256: str


def _task_id(task: Any) -> Any:
    """The task's id for the report: a number or a short text, as given."""
    raw = task.get("id") if isinstance(task, dict) else None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return storable_text(raw)[:100] if isinstance(raw, str) else None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests lists and objects more than `limit` levels deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
    return False


def _check_task(
    index: int, task: Any, spec: TaskSpec, resolver: ImageResolver, max_pixels: int, notes: set[str]
) -> _CheckedTask | SkippedTask:
    """The task read and checked whole (its image found and decoded, every entry read), or why it is skipped."""
    if isinstance(task, SkippedElement):
        return SkippedTask(index, None, [task.reason])
    task_id = _task_id(task)
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        return SkippedTask(index, task_id, ["not a task object with a `data` object"])
    if _deeper_than(task, MAX_TASK_DEPTH):
        return SkippedTask(index, task_id, [f"nested more than {MAX_TASK_DEPTH} levels deep"])
    meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    sha_hint = (meta.get("rise") or {}).get("sha256") if isinstance(meta.get("rise"), dict) else None
    try:
        raw = resolver.fetch(task["data"].get(ls.IMAGE), sha_hint)
        image = prepare_image(raw, max_pixels=max_pixels)
    except ImageMissing as missing:
        return SkippedTask(index, task_id, [f"missing image: {missing}"])
    except ImageRejected as rejected:
        return SkippedTask(index, task_id, [f"unusable image: {rejected.reason}"])
    try:
        parsed, problems = _parse_task(task, spec, image.width, image.height, notes)
    except (TypeError, ValueError, LookupError, AttributeError, RecursionError) as error:
        # The readers check every shape they know; a task shaped in a way nobody foresaw is still only this task.
        return SkippedTask(index, task_id, [f"a malformed entry that could not be read ({type(error).__name__})"])
    if parsed is None:
        return SkippedTask(index, task_id, problems)
    return _CheckedTask(index, task_id, parsed, image, sha256_hex(raw))


def _store_checked(
    runtime: Runtime, session, target: _Target, checked: _CheckedTask, report: LabelStudioImportReport
) -> None:
    """Store a checked task in a savepoint of the batch's transaction: should the database still refuse it, only
    this task is undone and reported, and its counts are added only once it is stored."""
    added = LabelStudioImportReport(cancelled_annotations=checked.parsed.cancelled)
    try:
        with session.begin_nested():
            _store_task(runtime, session, target, checked.parsed, checked.image, checked.sha256, added)
    except SQLAlchemyError as error:
        reason = f"the database refused it ({type(error).__name__})"
        report.skipped.append(SkippedTask(checked.index, checked.task_id, [reason]))
        return
    for name in ("items_added", "items_existing", "annotations_added", "predictions_added", "duplicates"):
        setattr(report, name, getattr(report, name) + getattr(added, name))
    report.cancelled_annotations += added.cancelled_annotations


# Entry points


def _ensure_project(runtime: Runtime, project_name: str, config_xml: str | None) -> int:
    """The id of the project called `project_name`, created from a labeling config when it does not exist yet."""
    try:
        return project_id_called(runtime, project_name)
    except ProjectNotFoundError as missing:
        if not config_xml:
            # Kept as the cause, so that a caller can add how its users create a project.
            raise LabelStudioImportError(
                f"{missing} Or give the Label Studio labeling config, and the project is created from it.",
                setting="label_studio_config",
            ) from missing
    try:
        summary = parse_labeling_config(config_xml)
        project = create_project(
            runtime, project_name, summary.task_type, summary.labels, distribution=summary.distribution
        )
    except (LabelingConfigError, ProjectError) as error:
        raise LabelStudioImportError(str(error)) from None
    return project.id


def import_label_studio_file(
    runtime: Runtime,
    project_name: str,
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    label_studio_media: str | Path | None = None,
    config_xml: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> LabelStudioImportReport:
    """Import a Label Studio JSON export file (a JSON array of tasks), read as a stream, into the project called
    `project_name`: by name, since it is created from the labeling config (`config_xml`, else the file beside the
    tasks that `export_label_studio` writes) when it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise LabelStudioImportError(f"No such file: {path}")
    if config_xml is None:
        # `rise export label-studio` writes the labeling config beside the tasks.
        beside = path.with_name(path.stem + ".label_config.xml")
        config_xml = beside.read_text(encoding="utf-8") if beside.is_file() else None
    project_id = _ensure_project(runtime, project_name, config_xml)
    resolver = ImageResolver(
        media_dir=runtime.settings.media_dir,
        image_root=Path(image_root) if image_root else path.parent,
        label_studio_media=Path(label_studio_media) if label_studio_media else None,
    )
    with path.open(encoding="utf-8-sig") as handle:
        try:
            tasks: Iterator[Any] = iter_json_array(handle)
            return import_label_studio_tasks(runtime, project_id, tasks, resolver, progress=progress)
        except JsonArrayError as error:
            raise LabelStudioImportError(f"{path} is not a Label Studio JSON export: {error}") from None


def pull_from_label_studio(
    runtime: Runtime,
    project_name: str,
    label_studio_project: int | str,
    *,
    url: str | None = None,
    api_key: str | None = None,
    image_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> LabelStudioImportReport:
    """Import a project from a live Label Studio server (by id or title) through a snapshot export; the RISE
    project is created from the server's labeling config when it does not exist."""
    from app.export.label_studio_push import LabelStudioError, LabelStudioServer, resolve_credentials

    credentials = resolve_credentials(url, api_key)
    with LabelStudioServer(credentials) as server, tempfile.TemporaryDirectory(prefix="rise-ls-pull-") as tmp:
        try:
            if isinstance(label_studio_project, int) or str(label_studio_project).isdigit():
                source = int(label_studio_project)
            else:
                found = server.find_project(str(label_studio_project))
                if found is None:
                    raise LabelStudioImportError(f"No Label Studio project titled {label_studio_project!r}.")
                source = found
            project_id = _ensure_project(runtime, project_name, server.project_label_config(source))
            export_path = server.snapshot_export(source, Path(tmp) / "export.json")
        except LabelStudioError as error:
            raise LabelStudioImportError(str(error)) from None
        resolver = ImageResolver(
            media_dir=runtime.settings.media_dir,
            image_root=Path(image_root) if image_root else None,
            download=server.download,
            server_url=credentials.url,
        )
        with export_path.open(encoding="utf-8") as handle:
            return import_label_studio_tasks(runtime, project_id, iter_json_array(handle), resolver, progress=progress)

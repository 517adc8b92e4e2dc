"""Export use cases: Label Studio task JSON and labeling config, COCO detection JSON, Hugging Face datasets, and
the push of a project to a live Label Studio server.

Every export streams: items are read a page at a time (`db.crud.exchange.iter_item_records`) and written as they
come, so a project of 100,000 items exports in the same memory as one of 100. Each export reads inside one
transaction, so it sees one consistent snapshot of the project even while reviewers keep working.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.export import coco
from app.export import label_studio as ls
from app.export.jsonstream import write_json_array
from app.export.label_studio_config import labeling_config
from app.runtime import Runtime
from app.services.projects import project_with_id, task_spec_for
from db.crud import exchange
from db.crud.exchange import ItemRecord
from rise.tasks import TaskSpec, TaskType

# Local files as Label Studio serves them: set LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and
# LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT to the RISE data folder, and `d` is the path below that folder.
LOCAL_FILES_PREFIX = "/data/local-files/?d="
PAGE_SIZE = 1000


class ExportError(AppError, ValueError):
    """The export cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    spec: TaskSpec
    description: str

    @property
    def task_type(self) -> TaskType:
        return self.spec.task_type


@dataclass
class ExportSummary:
    path: Path
    tasks: int = 0
    predictions: int = 0
    annotations: int = 0
    # Predictions whose text could not be read as an answer: nothing to show in Label Studio, so left out.
    predictions_without_answer: int = 0
    problems: list[str] = field(default_factory=list)


def project_info(runtime: Runtime, project_id: int) -> ProjectInfo:
    with runtime.sessions.begin() as session:
        project = project_with_id(session, project_id, ExportError)
        return ProjectInfo(project.id, project.name, task_spec_for(project), project.description)


def label_studio_config(runtime: Runtime, project_id: int) -> str:
    """The Label Studio labeling config (XML) for the project."""
    info = project_info(runtime, project_id)
    return labeling_config(info.task_type, info.spec.labels, distribution=info.spec.distribution)


# Label Studio tasks


def image_reference(runtime: Runtime, image_root_url: str | None) -> Callable[[ItemRecord], str]:
    """How a task names its image: under `image_root_url` (a server that serves the media folder), or by default
    as a Label Studio local file below the RISE data folder."""
    if image_root_url:
        root = image_root_url.rstrip("/") + "/"
        return lambda record: root + record.media_path
    media_dir = runtime.settings.media_dir.resolve()
    data_dir = runtime.settings.data_dir.resolve()
    below = media_dir.relative_to(data_dir).as_posix() + "/" if media_dir.is_relative_to(data_dir) else ""
    if not below:
        # The media folder lives elsewhere: point Label Studio's document root at the media folder itself.
        return lambda record: LOCAL_FILES_PREFIX + record.media_path
    return lambda record: LOCAL_FILES_PREFIX + below + record.media_path


def inline_image(media_dir: Path) -> Callable[[ItemRecord], str]:
    """The image itself as a data URI: self-contained tasks, for small images and servers without shared storage."""

    def reference(record: ItemRecord) -> str:
        mime = mimetypes.guess_type(record.media_path)[0] or "image/png"
        payload = base64.b64encode((media_dir / record.media_path).read_bytes()).decode("ascii")
        return f"data:{mime};base64,{payload}"

    return reference


@dataclass
class TaskCounts:
    predictions: int = 0
    annotations: int = 0
    predictions_without_answer: int = 0


def build_task(record: ItemRecord, spec: TaskSpec, image: str, counts: TaskCounts) -> dict[str, Any]:
    """The Label Studio task for one item: every prediction that has an answer, every trusted annotation."""

    def results_of(answer: Any, region_prefix: str) -> list[dict[str, Any]]:
        return ls.answer_to_results(
            answer,
            spec.task_type,
            spec.labels,
            record.width,
            record.height,
            distribution=spec.distribution,
            region_prefix=region_prefix,
        )

    predictions = []
    for prediction in record.predictions:
        if prediction.answer is None:
            counts.predictions_without_answer += 1
            continue
        results = results_of(prediction.answer, f"p{prediction.id}_")
        predictions.append(
            ls.prediction_json(
                results=results,
                cot=prediction.cot,
                model_version=prediction.model_name,
                score=prediction.score,
                created_at=prediction.created_at,
            )
        )
    annotations, provenance = [], []
    for annotation in record.annotations:
        results = results_of(annotation.answer, f"a{annotation.id}_")
        author = annotation.author or ("import" if annotation.source == "import" else "reviewer")
        annotations.append(
            ls.annotation_json(
                results=results,
                cot=annotation.cot,
                author=author,
                created_at=annotation.created_at,
                ground_truth=annotation.source == "import",
                lead_time_s=None if annotation.time_spent_ms is None else annotation.time_spent_ms / 1000.0,
            )
        )
        provenance.append(ls.AnnotationProvenance(author, annotation.source, annotation.created_at))
    reviews = [
        {
            "verdict": review.verdict,
            "reviewer": review.reviewer,
            "created_at": ls.timestamp(review.created_at),
            "prediction_index": next(
                (i for i, p in enumerate(record.predictions) if p.id == review.prediction_id and p.answer is not None),
                None,
            ),
            "reasoning_wrong": review.reasoning_wrong,
            "comment": review.comment,
        }
        for review in record.reviews
    ]
    counts.predictions += len(predictions)
    counts.annotations += len(annotations)
    return ls.task_json(
        image=image,
        sha256=record.sha256,
        query=record.query if spec.task_type is TaskType.grounding else None,
        predictions=predictions,
        annotations=annotations,
        provenance=provenance,
        reviews=reviews,
        item_id=record.id,
        original_name=record.original_name,
    )


def iter_label_studio_tasks(
    runtime: Runtime,
    info: ProjectInfo,
    image: Callable[[ItemRecord], str],
    counts: TaskCounts,
    *,
    page_size: int = PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    with runtime.sessions.begin() as session:
        for record in exchange.iter_item_records(session=session, project_id=info.id, batch_size=page_size):
            yield build_task(record, info.spec, image(record), counts)


def export_label_studio(
    runtime: Runtime,
    project_id: int,
    out_path: str | Path,
    *,
    image_root_url: str | None = None,
    inline_images: bool = False,
    page_size: int = PAGE_SIZE,
) -> ExportSummary:
    """Write the project as Label Studio task JSON (`predictions` and `annotations` per task) to `out_path`, and
    its labeling config beside it as `<out_path stem>.label_config.xml`."""
    info = project_info(runtime, project_id)
    out_path = Path(out_path)
    config = labeling_config(info.task_type, info.spec.labels, distribution=info.spec.distribution)
    image = inline_image(runtime.settings.media_dir) if inline_images else image_reference(runtime, image_root_url)
    counts = TaskCounts()
    tasks = write_json_array(out_path, iter_label_studio_tasks(runtime, info, image, counts, page_size=page_size))
    out_path.with_name(out_path.stem + ".label_config.xml").write_text(config, encoding="utf-8")
    return ExportSummary(
        path=out_path,
        tasks=tasks,
        predictions=counts.predictions,
        annotations=counts.annotations,
        predictions_without_answer=counts.predictions_without_answer,
    )


# COCO


def export_coco(
    runtime: Runtime, project_id: int, out_path: str | Path, *, source: str = "annotations"
) -> coco.CocoSummary:
    """Write the project's boxes as COCO detection JSON: the latest trusted annotation of each item (`source=
    "annotations"`) or the latest prediction with an answer (`source="predictions"`, with its score)."""
    info = project_info(runtime, project_id)
    if info.task_type is TaskType.classification:
        raise ExportError(f"{info.name!r} is a classification project; COCO detection needs boxes.")
    if source not in coco.SOURCES:
        raise ExportError(f"Unknown source {source!r}; choose one of {', '.join(coco.SOURCES)}.")
    categories = ls.box_labels(info.task_type, info.spec.labels)
    with runtime.sessions.begin() as session:
        records = exchange.iter_item_records(session=session, project_id=info.id, with_reviews=False)
        return coco.write_coco(Path(out_path), records, categories, info.task_type, source=source)


# Hugging Face datasets


def export_hf_dataset(
    runtime: Runtime,
    project_id: int,
    out_dir: str | Path,
    *,
    kind: str = "sft",
    repo_id: str | None = None,
    token: str | None = None,
    private: bool = True,
):
    """Save the project's SFT data (`kind="sft"`) or trusted annotations (`kind="annotations"`) as a Hugging Face
    dataset under `out_dir`; with `repo_id` and `token`, also push it to the Hub."""
    # datasets pulls in pyarrow and pandas: imported here so the other exports stay light.
    from app.export import hf_dataset

    info = project_info(runtime, project_id)
    if kind not in hf_dataset.KINDS:
        raise ExportError(f"Unknown dataset kind {kind!r}; choose one of {', '.join(hf_dataset.KINDS)}.")
    if bool(repo_id) != bool(token):
        raise ExportError("Pushing to the Hub needs both a repository id and a token.", setting="hub_repository")

    def records() -> Iterator[ItemRecord]:
        with runtime.sessions.begin() as session:
            yield from exchange.iter_item_records(session=session, project_id=info.id)

    try:
        return hf_dataset.build_and_save(
            records,
            info.spec,
            runtime.settings.media_dir,
            Path(out_dir),
            kind=kind,
            repo_id=repo_id,
            token=token,
            private=private,
        )
    except hf_dataset.EmptyDatasetError as error:
        raise ExportError(str(error)) from None


# Push to a live Label Studio server


@dataclass
class PushSummary:
    url: str
    project_id: int
    project_title: str
    created_project: bool
    tasks: int = 0
    predictions: int = 0
    annotations: int = 0
    images_uploaded: int = 0
    # Items whose image the Label Studio project already has (a task with the same content hash): left alone.
    already_there: int = 0
    predictions_without_answer: int = 0

    @property
    def project_url(self) -> str:
        return f"{self.url}/projects/{self.project_id}/data"


IMAGE_MODES = ("upload", "url", "inline")


def push_to_label_studio(
    runtime: Runtime,
    project_id: int,
    *,
    url: str | None = None,
    api_key: str | None = None,
    title: str | None = None,
    image_mode: str = "upload",
    image_root_url: str | None = None,
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> PushSummary:
    """Create (or reuse, by title) a Label Studio project with our labeling config and import every item as a task
    with its predictions and annotations. Items already pushed (same content hash) are skipped, so a push can be
    repeated after new items arrive.

    Args:
        image_mode: `upload` sends the image files to the server; `url` references them under `image_root_url`
            (a server that serves the media folder); `inline` embeds them in the task as data URIs.
    """
    from app.export.label_studio_push import LabelStudioServer, batched, resolve_credentials

    if image_mode not in IMAGE_MODES:
        raise ExportError(f"Unknown image mode {image_mode!r}; choose one of {', '.join(IMAGE_MODES)}.")
    if image_mode == "url" and not image_root_url:
        raise ExportError(
            "Images by URL need the URL that serves the media folder (image_root_url), e.g. "
            "https://files.example.com/rise-media/",
            setting="image_root_url",
        )
    credentials = resolve_credentials(url, api_key)
    info = project_info(runtime, project_id)
    config = labeling_config(info.task_type, info.spec.labels, distribution=info.spec.distribution)
    media_dir = runtime.settings.media_dir
    title = title or info.name
    if len(title) < 3:
        title = f"RISE {title}"  # Label Studio refuses titles shorter than three characters
    with LabelStudioServer(credentials) as server:
        server.check()
        ls_project, created = server.ensure_project(title, config, info.description)
        summary = PushSummary(credentials.url, ls_project, title, created)
        known = set() if created else server.task_keys(ls_project)
        counts = TaskCounts()
        with runtime.sessions.begin() as session:
            total = exchange.count_items(session=session, project_id=info.id)
            done = 0
            records = exchange.iter_item_records(session=session, project_id=info.id, batch_size=batch_size)
            for batch in batched(records, batch_size):
                done += len(batch)
                fresh = [record for record in batch if record.sha256 not in known]
                summary.already_there += len(batch) - len(fresh)
                if fresh:
                    images = _push_images(server, ls_project, fresh, media_dir, image_mode, image_root_url, runtime)
                    summary.images_uploaded += len(images) if image_mode == "upload" else 0
                    tasks = [build_task(record, info.spec, images[record.sha256], counts) for record in fresh]
                    added, _, _ = server.import_tasks(ls_project, tasks)
                    summary.tasks += added
                    known.update(record.sha256 for record in fresh)
                if progress is not None:
                    progress(done, total)
        summary.predictions = counts.predictions
        summary.annotations = counts.annotations
        summary.predictions_without_answer = counts.predictions_without_answer
    return summary


def _push_images(
    server, project_id: int, records: list[ItemRecord], media_dir: Path, mode: str, root: str | None, runtime
) -> dict[str, str]:
    """sha256 -> the image reference for each record's task."""
    if mode == "url":
        reference = image_reference(runtime, root)
        return {record.sha256: reference(record) for record in records}
    if mode == "inline":
        reference = inline_image(media_dir)
        return {record.sha256: reference(record) for record in records}
    files = []
    for record in records:
        name = Path(record.media_path).name  # "<sha256>.<ext>": unique, and the upload keeps it as a suffix
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append((name, (media_dir / record.media_path).read_bytes(), mime))
    urls = server.upload_images(project_id, files)
    return {record.sha256: urls[Path(record.media_path).name] for record in records}

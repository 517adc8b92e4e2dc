"""Projects, their items and the imported (ground-truth) annotations of those items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.errors import DbError
from db.models import TASK_TYPES, Annotation, AnnotationSource, Item, Project, Split

# SQLite allows 32,766 bound parameters per statement; stay far below it for `IN (...)` lists.
_IN_CHUNK = 500


class ProjectError(DbError, ValueError):
    """A project cannot be created or found as asked. The message says why and what to do in words any caller (the
    command line, the web UI) can show; `setting` names the input at fault ("name", "task_type", "labels" or
    "eval_fraction"), so that a caller can add how its own users write that input."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class ProjectNotFoundError(ProjectError):
    """No project has the name asked for (`name`)."""

    def __init__(self, name: str, existing: Sequence[str]) -> None:
        known = ", ".join(existing) if existing else "none yet"
        super().__init__(f"No project named {name!r} (existing: {known}). Create it first.")
        self.name = name


@dataclass(frozen=True)
class NewItem:
    """One validated, stored image ready to become an `Item` row."""

    sha256: str
    media_path: str
    original_name: str
    width: int
    height: int
    split: Split
    query: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def get_project_by_name(*, session: Session, name: str) -> Project | None:
    return session.scalars(select(Project).where(Project.name == name)).one_or_none()


def require_project(*, session: Session, name: str) -> Project:
    """The project called `name`, or a `ProjectNotFoundError` listing the names that do exist."""
    project = get_project_by_name(session=session, name=name)
    if project is None:
        raise ProjectNotFoundError(name, [p.name for p in list_projects(session=session)])
    return project


def list_projects(*, session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))


def create_project(
    *,
    session: Session,
    name: str,
    task_type: str,
    labels: Sequence[str] = (),
    description: str = "",
    eval_fraction: float = 0.1,
    distribution: bool = False,
    label_synonyms: dict[str, str] | None = None,
) -> Project:
    """Add a project. Checks what the database itself must guarantee (a unique name, a sane label list); the
    task-specific rules (e.g. classification needs two labels) belong to `rise.tasks.TaskSpec`, checked by the
    calling service."""
    name = name.strip()
    if not name:
        raise ProjectError("A project needs a name.", setting="name")
    if len(name) > 255:
        raise ProjectError(f"Project names are limited to 255 characters; this one has {len(name)}.", setting="name")
    if get_project_by_name(session=session, name=name) is not None:
        raise ProjectError(
            f"A project named {name!r} already exists. Pick another name or import into that one.", setting="name"
        )
    if task_type not in TASK_TYPES:
        raise ProjectError(
            f"Unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}.", setting="task_type"
        )
    if not 0.0 <= eval_fraction < 1.0:
        raise ProjectError(f"eval_fraction must be in [0, 1), got {eval_fraction}.", setting="eval_fraction")
    clean_labels = [label.strip() for label in labels]
    if any(not label for label in clean_labels):
        raise ProjectError(f"Labels must not be empty, got {list(labels)}.", setting="labels")
    duplicates = sorted({label for label in clean_labels if clean_labels.count(label) > 1})
    if duplicates:
        raise ProjectError(f"Labels must be unique; repeated: {duplicates}.", setting="labels")
    project = Project(
        name=name,
        task_type=str(task_type),  # a `rise.tasks.TaskType` member or its value: the row keeps the plain value
        labels=clean_labels,
        label_synonyms=dict(label_synonyms or {}),
        description=description,
        eval_fraction=eval_fraction,
        distribution=distribution,
    )
    session.add(project)
    session.flush()
    return project


def item_shas(*, session: Session, project_id: int) -> set[str]:
    """Content hashes already in the project: the import's duplicate check, one query for the whole run."""
    return set(session.scalars(select(Item.sha256).where(Item.project_id == project_id)))


def item_ids_by_sha(*, session: Session, project_id: int, shas: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(shas))
    found: dict[str, int] = {}
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(Item.sha256, Item.id).where(Item.project_id == project_id, Item.sha256.in_(chunk))
        )
        found.update({sha: item_id for sha, item_id in rows})
    return found


def create_items(*, session: Session, project_id: int, items: Sequence[NewItem]) -> list[Item]:
    rows = [
        Item(
            project_id=project_id,
            sha256=new.sha256,
            media_path=new.media_path,
            original_name=new.original_name,
            width=new.width,
            height=new.height,
            split=new.split,
            query=new.query,
            meta=dict(new.meta),
        )
        for new in items
    ]
    session.add_all(rows)
    session.flush()
    return rows


def list_items(*, session: Session, project_id: int, split: Split | None = None) -> list[Item]:
    stmt = select(Item).where(Item.project_id == project_id)
    if split is not None:
        stmt = stmt.where(Item.split == split)
    return list(session.scalars(stmt.order_by(Item.id)))


def no_items() -> dict[Split, int]:
    return {split: 0 for split in Split}


def count_items_by_split_per_project(*, session: Session) -> dict[int, dict[Split, int]]:
    """Items per split of every project that has items, in one query."""
    rows = session.execute(select(Item.project_id, Item.split, func.count()).group_by(Item.project_id, Item.split))
    counts: dict[int, dict[Split, int]] = {}
    for project_id, split, n in rows:
        counts.setdefault(project_id, no_items())[Split(split)] = n
    return counts


def annotated_item_ids(*, session: Session, project_id: int) -> set[int]:
    """Items of the project that hold at least one trusted annotation, whatever its source."""
    stmt = select(Annotation.item_id).join(Item, Item.id == Annotation.item_id).where(Item.project_id == project_id)
    return set(session.scalars(stmt.distinct()))


def count_annotated_items_per_project(*, session: Session) -> dict[int, int]:
    """Items holding at least one trusted annotation, per project that has any, in one query."""
    stmt = (
        select(Item.project_id, func.count(Annotation.item_id.distinct()))
        .join(Item, Item.id == Annotation.item_id)
        .group_by(Item.project_id)
    )
    return {project_id: n for project_id, n in session.execute(stmt)}


def create_imported_annotation(
    *, session: Session, item_id: int, answer: Any, created_by_name: str = ""
) -> Annotation:
    """Record imported ground truth for an item (source `import`); `answer` is already validated JSON in pixels."""
    annotation = Annotation(
        item_id=item_id, answer=answer, source=AnnotationSource.imported, created_by_name=created_by_name
    )
    session.add(annotation)
    session.flush()
    return annotation

"""Project use cases: create a project with its task rules checked, list projects with their item counts, and find
a project by its id (as the services address projects) or by its name (as the command line does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.runtime import Runtime
from db.crud import model_versions as version_crud
from db.crud import projects as crud
from db.crud.projects import ProjectError
from db.models import Project, Split
from rise.tasks import TaskSpec, TaskType

__all__ = [
    "ProjectError",
    "ProjectOverview",
    "create_project",
    "list_projects",
    "project_id_called",
    "project_model",
    "project_with_id",
    "task_spec_for",
]


@dataclass(frozen=True)
class ProjectOverview:
    id: int
    name: str
    task_type: TaskType
    labels: list[str]
    eval_fraction: float
    train_items: int
    eval_items: int
    annotated_items: int
    created_at: datetime

    @property
    def items(self) -> int:
        return self.train_items + self.eval_items


def task_spec_for(project: Project) -> TaskSpec:
    """The `rise` view of a project: plain values only, so `rise` never sees an ORM object."""
    return TaskSpec(
        task_type=TaskType(project.task_type),
        labels=tuple(project.labels),
        synonyms=dict(project.label_synonyms),
        distribution=project.distribution,
        prompt_overrides=dict(project.prompt_overrides),
    )


def project_model(session: Session, project: Project) -> str:
    """The model a project annotates with when none is named: its serving version, else its default model."""
    serving = version_crud.serving_version(session=session, project_id=project.id)
    if serving is not None:
        return serving.name
    if project.default_model:
        return project.default_model
    raise ProjectError(
        f"Project {project.name!r} has no serving model version and no default model: name a model "
        "(a Hub id such as Qwen/Qwen2-VL-2B-Instruct, or a model folder)."
    )


def project_with_id(session: Session, project_id: int, error: type[Exception]) -> Project:
    """The project with this id; else the calling service's own `error`. Services address projects by id; only the
    edges (command line, URLs) know them by name, and look the id up once (`project_id_called`)."""
    project = session.get(Project, project_id)
    if project is None:
        raise error(f"Project #{project_id} does not exist.")
    return project


def project_id_called(runtime: Runtime, name: str) -> int:
    """The id of the project called `name`, for callers that know projects by name; `ProjectNotFoundError` (a
    `ProjectError` listing the names that exist) when there is none."""
    with runtime.sessions.begin() as session:
        return crud.require_project(session=session, name=name).id


def _check_task_rules(task_type: TaskType, labels: Sequence[str], distribution: bool) -> None:
    # The two most common mistakes get their own messages, naming the setting so that each caller can add how its
    # users write labels; TaskSpec checks the rest.
    if task_type is TaskType.classification and len(labels) < 2:
        raise ProjectError(
            f"A classification project needs at least two labels, got {list(labels)}.", setting="labels"
        )
    if task_type is TaskType.detection and not labels:
        raise ProjectError("A detection project needs at least one box label.", setting="labels")
    try:
        TaskSpec(task_type=task_type, labels=tuple(labels), distribution=distribution)
    except ValueError as error:
        raise ProjectError(str(error)) from None


def create_project(
    runtime: Runtime,
    name: str,
    task_type: TaskType | str,
    labels: Sequence[str] = (),
    *,
    description: str = "",
    eval_fraction: float = 0.1,
    distribution: bool = False,
) -> ProjectOverview:
    """Create a project; `ProjectError` says the fix when the name is taken or the labels do not fit the task."""
    try:
        task_type = TaskType(task_type)
    except ValueError:
        choices = ", ".join(t.value for t in TaskType)
        raise ProjectError(f"Unknown task {task_type!r}; choose one of {choices}.", setting="task_type") from None
    labels = [label.strip() for label in labels]
    _check_task_rules(task_type, labels, distribution)
    with runtime.sessions.begin() as session:
        project = crud.create_project(
            session=session,
            name=name,
            task_type=task_type.value,
            labels=labels,
            description=description,
            eval_fraction=eval_fraction,
            distribution=distribution,
        )
        return _overview(project, crud.no_items(), 0)


def _overview(project: Project, items: dict[Split, int], annotated: int) -> ProjectOverview:
    return ProjectOverview(
        id=project.id,
        name=project.name,
        task_type=TaskType(project.task_type),
        labels=list(project.labels),
        eval_fraction=project.eval_fraction,
        train_items=items[Split.train],
        eval_items=items[Split.eval],
        annotated_items=annotated,
        created_at=project.created_at,
    )


def list_projects(runtime: Runtime) -> list[ProjectOverview]:
    """Every project with its item counts: three queries however many projects there are."""
    with runtime.sessions.begin() as session:
        items = crud.count_items_by_split_per_project(session=session)
        annotated = crud.count_annotated_items_per_project(session=session)
        return [
            _overview(project, items.get(project.id, crud.no_items()), annotated.get(project.id, 0))
            for project in crud.list_projects(session=session)
        ]

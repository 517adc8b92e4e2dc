"""The project service: the overview of every project at a cost that does not grow per project, and a project found
by its id (as the services take it) or by its name (as the command line gives it)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from app.services import projects as project_service
from db.crud.projects import ProjectNotFoundError, create_imported_annotation
from db.models import Split
from tests.utils.factories import make_item, make_project


def _count_statements(runtime, action):
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (before_cursor_execute's statement)
    event.listen(runtime.engine, "before_cursor_execute", listener)
    try:
        result = action()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", listener)
    return result, len(statements)


def _seed(runtime, names):
    with runtime.sessions.begin() as session:
        for n, name in enumerate(names):
            project = make_project(session, name)
            for seed in range(n + 1):
                item = make_item(session, project, seed=seed, split=Split.eval if seed == 0 else Split.train)
            create_imported_annotation(session=session, item_id=item.id, answer="circle")


def test_every_project_is_listed_with_its_own_counts(runtime):
    _seed(runtime, ["a", "b", "c"])
    with runtime.sessions.begin() as session:
        make_project(session, "empty")
    overviews = {p.name: p for p in project_service.list_projects(runtime)}
    assert {name: (p.train_items, p.eval_items, p.annotated_items) for name, p in overviews.items()} == {
        "a": (0, 1, 1),
        "b": (1, 1, 1),
        "c": (2, 1, 1),
        "empty": (0, 0, 0),
    }


def test_listing_projects_costs_the_same_queries_for_two_projects_as_for_twenty(runtime):
    _seed(runtime, ["a", "b"])
    _, few = _count_statements(runtime, lambda: project_service.list_projects(runtime))
    _seed(runtime, [f"p{n}" for n in range(18)])
    listed, many = _count_statements(runtime, lambda: project_service.list_projects(runtime))
    assert len(listed) == 20 and many == few


def test_a_name_from_the_command_line_is_looked_up_once_and_an_unknown_one_lists_the_projects(runtime):
    _seed(runtime, ["a", "b"])
    ids = {p.name: p.id for p in project_service.list_projects(runtime)}
    project_id, statements = _count_statements(runtime, lambda: project_service.project_id_called(runtime, "b"))
    assert project_id == ids["b"] and statements == 1
    with pytest.raises(ProjectNotFoundError, match=r"No project named 'c' \(existing: a, b\)"):
        project_service.project_id_called(runtime, "c")


def test_a_missing_id_raises_the_calling_services_own_error(runtime):
    class ServiceError(ValueError):
        pass

    _seed(runtime, ["a"])
    [project] = project_service.list_projects(runtime)
    with runtime.sessions.begin() as session:
        assert project_service.project_with_id(session, project.id, ServiceError).name == "a"
        with pytest.raises(ServiceError, match=f"Project #{project.id + 1} does not exist"):
            project_service.project_with_id(session, project.id + 1, ServiceError)

"""The project service: the overview of every project and the name of one, at a cost that does not grow per project."""

from __future__ import annotations

from sqlalchemy import event

from app.services import projects as project_service
from db.crud.projects import create_imported_annotation
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


def test_a_project_name_is_one_query_and_none_for_an_unknown_id(runtime):
    _seed(runtime, ["a"])
    [project] = project_service.list_projects(runtime)
    name, statements = _count_statements(runtime, lambda: project_service.project_name(runtime, project.id))
    assert name == "a" and statements == 1
    assert project_service.project_name(runtime, project.id + 1) is None

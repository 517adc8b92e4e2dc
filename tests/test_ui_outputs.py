"""Handlers answer with dicts keyed by component, and a full update names every output of its event: an update that
misses a component, or names one the event does not list, fails here instead of leaving the page half changed."""

from __future__ import annotations

import inspect
from typing import Any

from app.services import auth
from app.ui import dashboard
from app.ui.web_app import build_web_app
from tests.utils.retrain import make_ready_project


def _event(demo, handler_name: str) -> Any:
    [event] = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == handler_name]
    return event


def _assert_names_every_output(event: Any, update: dict[Any, Any]) -> None:
    named = {block._id for block in update}
    listed = {block._id for block in event.outputs}
    missing = [type(block).__name__ for block in event.outputs if block._id not in named]
    assert not missing, f"{event.name} leaves out {missing}"
    assert named <= listed, f"{event.name} updates components its event does not list"


def test_signing_in_and_out_set_every_session_output(runtime):
    demo = build_web_app(runtime, require_login=True)
    boss = auth.get_user_info(runtime, auth.create_user(runtime, "boss", "boss-password", role="admin").id)
    _assert_names_every_output(_event(demo, "on_page_load"), _event(demo, "on_page_load").fn(boss))
    logout = _event(demo, "on_logout")
    _assert_names_every_output(logout, logout.fn(None, None, ""))


def test_the_first_retrain_refresh_sets_every_component_it_lists(runtime):
    with runtime.sessions.begin() as session:
        project_id = make_ready_project(session).id
    boss = auth.get_user_info(runtime, auth.create_user(runtime, "boss", "boss-password", role="admin").id)
    demo = build_web_app(runtime, require_login=True)
    [refresh] = [fn for fn in demo.fns.values() if fn.api_name == "retrain_refresh"]
    _assert_names_every_output(refresh, refresh.fn(boss, project_id, 0, None))


def test_every_dashboard_refresh_sets_every_component_it_lists(runtime):
    with runtime.sessions.begin() as session:
        project_id = make_ready_project(session).id
    boss = auth.get_user_info(runtime, auth.create_user(runtime, "boss", "boss-password", role="admin").id)
    demo = build_web_app(runtime, require_login=True)
    handlers = [fn for fn in demo.fns.values() if fn.fn is not None]
    events = [fn for fn in handlers if getattr(inspect.unwrap(fn.fn), "func", None) is dashboard.on_refresh]
    assert len(events) == 3  # its button, the project menu and opening the tab
    for event in events:
        for user, chosen in ((boss, project_id), (boss, None), (boss, project_id + 1), (None, project_id)):
            _assert_names_every_output(event, event.fn(user, chosen))

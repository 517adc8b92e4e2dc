"""The web app (Gradio): `build_web_app(runtime)` returns the Blocks that `rise serve` launches through
`app.ui.server.serve_web_app`, which also puts the HTTP guard in front of it.

    web_app = build_web_app(runtime)            # login required unless the server is bound to loopback

Tabs: Review (everyone), Dashboard (everyone), Projects, Users, Runs and Retrain (admins only: hidden for reviewers,
and every admin handler refuses a reviewer anyway). Handlers call `app.services`; nothing here touches SQL or torch.
Every event gets the signed-in user as the database has them now (`app.ui.session.read_user_for_every_event`).

Signing in also gives the browser a cookie with a token (`app.services.browser_sessions`), for the requests that
are not the app's events: images, downloads and uploads.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import gradio as gr

from app.errors import AppError
from app.runtime import Runtime
from app.services import review as review_service
from app.services.browser_sessions import BrowserSessions
from app.services.login_throttle import LoginThrottle
from app.services.review import ReviewTask
from app.settings import Settings
from app.ui import admin, dashboard, login, projects, review
from app.ui.export_tab import build_export_controls
from app.ui.retrain_tab import build_retrain_tab
from app.ui.session import UserInfo, is_admin, read_user_for_every_event
from app.ui.shortcuts import listener_js
from app.ui.theme import style_installer_js

__all__ = ["LoginRequiredError", "build_web_app", "login_required", "page_load_js"]


class LoginRequiredError(AppError, ValueError):
    """The app was asked to run without login on an address other machines can reach."""


def page_load_js() -> str:
    """Runs once when a page opens: installs the stylesheet and the review key listener."""
    return f"() => {{ {style_installer_js()} ({listener_js()})(); }}"


def login_required(settings: Settings, require_login: bool | None) -> bool:
    """Whether the app asks who is there: as asked, and by default unless the server listens on loopback only.

    Raises:
        LoginRequiredError: `require_login=False` while the configured host is reachable from other machines.
    """
    loopback = settings.is_loopback
    if require_login is None:
        return not loopback
    if not require_login and not loopback:
        raise LoginRequiredError(
            f"Refusing to run without login on {settings.host}: anyone who can reach it could review and "
            "administer. Bind to 127.0.0.1 (RISE_HOST=127.0.0.1 or --host 127.0.0.1), or keep login on."
        )
    return require_login


def cookie_js(cookie_name: str) -> str:
    """Stores the sign-in token the login event returned as a cookie for this site, or removes it (no token)."""
    return f"""(token) => {{
        const secure = location.protocol === "https:" ? "; Secure" : "";
        document.cookie = token
            ? `{cookie_name}=${{token}}; Path=/; SameSite=Strict${{secure}}`
            : `{cookie_name}=; Path=/; Max-Age=0; SameSite=Strict${{secure}}`;
    }}"""


def build_web_app(
    runtime: Runtime,
    *,
    require_login: bool | None = None,
    browser_sessions: BrowserSessions | None = None,
    throttle: LoginThrottle | None = None,
) -> gr.Blocks:
    """The whole app.

    Args:
        require_login: default: required unless `runtime.settings.host` is a loopback address. Without login the
            app acts as the local admin (`app.services.auth.local_user`), which is only allowed on loopback.
        browser_sessions: where sign-ins register the browser's token; the HTTP guard of the server reads it.
        throttle: the back-off for failed sign-ins.

    Raises:
        LoginRequiredError: `require_login=False` while the configured host is reachable from other machines.
    """
    require_login = login_required(runtime.settings, require_login)
    browser_sessions = browser_sessions or BrowserSessions()
    throttle = throttle or LoginThrottle()
    initial_user = None if require_login else admin.local_user(runtime)

    with gr.Blocks(title="RISE Annotate", fill_width=True) as demo:
        user_state = gr.State(initial_user)
        # The sign-in token, kept hidden on the page until `cookie_js` has stored it.
        session_token = gr.Textbox("", visible="hidden", elem_id="session-token", label="Session")
        with gr.Column(visible=require_login, elem_id="login-box") as login_view:
            form = login.build_login_form()
        with gr.Column(visible=not require_login, elem_id="main-view") as main_view:
            with gr.Row(equal_height=True, elem_id="app-header"):
                gr.HTML(
                    '<div class="rise-header"><h1>RISE Annotate</h1></div>'
                    '<div class="rise-brand-sub">Review what the model proposes; every verdict teaches it.</div>',
                    js_on_load=None,
                    scale=2,
                )
                project = gr.Dropdown([], label="Project", scale=2, elem_id="project-select")
                with gr.Column(scale=1, min_width=180):
                    badge = gr.HTML(login.user_badge_html(initial_user), js_on_load=None)
                    logout = gr.Button("Sign out", size="sm", visible=require_login, elem_id="logout")
            with gr.Tabs():
                with gr.Tab("Review", id="review"):
                    review_tab = review.build_review_tab(runtime, user_state=user_state, project=project)
                with gr.Tab("Dashboard", id="dashboard") as dashboard_tab:
                    board = dashboard.build_dashboard_tab(runtime, user_state=user_state, project=project)
                with gr.Tab("Projects", id="projects", visible=is_admin(initial_user)) as projects_tab:
                    project_tab = projects.build_projects_tab(runtime, user_state=user_state, project=project)
                    build_export_controls(runtime, user_state=user_state, project=project)
                with gr.Tab("Users", id="users", visible=is_admin(initial_user)) as users_tab:
                    users_table = admin.build_users_tab(runtime, user_state=user_state)
                with gr.Tab("Runs", id="runs", visible=is_admin(initial_user)) as runs_tab:
                    admin.build_runs_tab(runtime, user_state=user_state, tab=runs_tab)
                with gr.Tab("Retrain", id="retrain", visible=is_admin(initial_user)) as retrain_tab:
                    build_retrain_tab(runtime, user_state=user_state, project=project, tab=retrain_tab)

        admin_tabs = [projects_tab, users_tab, runs_tab, retrain_tab]
        session_outputs = [user_state, login_view, main_view, badge, project, project_tab.table, *admin_tabs]

        # Every handler below returns a dict keyed by component: Gradio updates what the dict names and leaves the
        # rest of the outputs as they are, so no update can land on the wrong component.
        def show_session(user: UserInfo | None) -> dict[Any, Any]:
            signed_in = user is not None
            choices = projects.project_choices(runtime) if signed_in else []
            return {
                user_state: user,
                login_view: gr.update(visible=not signed_in),
                main_view: gr.update(visible=signed_in),
                badge: login.user_badge_html(user),
                project: gr.update(choices=choices, value=choices[0][1] if choices else None),
                project_tab.table: projects.project_rows(runtime) if is_admin(user) else [],
                **{tab: gr.update(visible=is_admin(user)) for tab in admin_tabs},
            }

        def on_page_load(user: UserInfo | None) -> dict[Any, Any]:
            if user is None:
                # The page is built signed out. On a busy server this event can finish after a quick sign-in, and
                # answering it would sign that reviewer out again; so it changes nothing.
                return {}
            return show_session(user)

        def on_login(username: str, password: str, request: gr.Request) -> dict[Any, Any]:
            address = login.client_address(request)
            user, message = login.sign_in(runtime, username, password, throttle=throttle, address=address)
            if user is None:
                return {form.message: message}
            return {
                **show_session(user),
                form.message: "",
                form.password: "",
                session_token: browser_sessions.issue(user),
            }

        def on_logout(user: UserInfo | None, task: ReviewTask | None, token: str) -> dict[Any, Any]:
            if user is not None and task is not None:
                # Hand the item on screen back to the queue at once instead of holding it until the lease expires.
                review_service.release_task(runtime, user_id=user.id, item_id=task.item_id)
            browser_sessions.revoke(token)
            return {**show_session(None), form.message: "", form.password: "", session_token: ""}

        login_outputs = [*session_outputs, form.message, form.password, session_token]
        # The page keeps the targets of every event's progress and re-reads each of them, with everything inside it,
        # on every later event: with the app's views and tabs as targets, each review key press would re-read the
        # whole app. Progress of the session's events shows on the sign-in message or the badge instead, and on the
        # project menu, which stays busy until the session's projects are in it: a pick made before could be undone.
        sign_in_progress, session_progress = [form.message, project], [badge, project]
        store_cookie = cookie_js(browser_sessions.cookie_name)
        login_inputs = [form.username, form.password]
        form.submit.click(
            on_login, login_inputs, login_outputs, api_name="login", show_progress_on=sign_in_progress
        ).then(None, [session_token], None, js=store_cookie)
        form.password.submit(on_login, login_inputs, login_outputs, show_progress_on=sign_in_progress).then(
            None, [session_token], None, js=store_cookie
        )
        logout.click(
            on_logout,
            [user_state, review_tab.task, session_token],
            login_outputs,
            api_name="logout",
            show_progress_on=session_progress,
        ).then(None, [session_token], None, js=store_cookie)
        dashboard_tab.select(
            partial(dashboard.on_refresh, runtime, board),
            [user_state, project],
            board.outputs(),
            show_progress_on=board.progress_target(),
        )
        users_tab.select(partial(admin.on_refresh_users, runtime), [user_state], [users_table])
        demo.load(
            on_page_load, [user_state], session_outputs, api_visibility="private", show_progress_on=session_progress
        )
        demo.load(None, js=page_load_js())
    # Gradio's queue keeps a record of its last 10,000 events and, by default, summarises all of them with pandas
    # after every single event, for its monitoring page: more work than a review round trip itself. Summarise
    # seldom, over fewer records (the queue reads these when it is created; an operator can still set them).
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")
    read_user_for_every_event(demo, user_state, runtime)
    # Gradio runs one event of each kind at a time by default; reviewers should not wait for each other's clicks.
    demo.queue(default_concurrency_limit=8)
    return demo

"""The sign-in form, backed by `app.services.auth.authenticate`.

A failed attempt waits a moment before answering, which makes guessing passwords through the form slow without
bothering someone who mistyped once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gradio as gr

from app.runtime import Runtime
from app.services import auth
from app.ui.render import escape
from app.ui.session import UserInfo

FAILED_LOGIN_DELAY_S = 0.5


@dataclass
class LoginForm:
    username: gr.Textbox
    password: gr.Textbox
    submit: gr.Button
    message: gr.HTML


def build_login_form() -> LoginForm:
    gr.HTML(
        '<div class="rise-header"><h1>RISE Annotate</h1></div>'
        '<p class="rise-muted">Sign in to review the model\'s annotations.</p>',
        js_on_load=None,
    )
    username = gr.Textbox(label="Username", elem_id="login-username", autofocus=True)
    password = gr.Textbox(label="Password", type="password", elem_id="login-password")
    submit = gr.Button("Sign in", variant="primary", elem_id="login-submit")
    message = gr.HTML("", js_on_load=None, elem_id="login-message")
    return LoginForm(username=username, password=password, submit=submit, message=message)


def sign_in(runtime: Runtime, username: str, password: str) -> tuple[UserInfo | None, str]:
    """The user for these credentials and an (HTML) message for the form."""
    username = (username or "").strip()
    if not username or not password:
        return None, '<div class="rise-parse-error">Enter your username and password.</div>'
    user = auth.authenticate(runtime, username, password)
    if user is None:
        time.sleep(FAILED_LOGIN_DELAY_S)
        return None, '<div class="rise-parse-error">Wrong username or password.</div>'
    return user, ""


def user_badge_html(user: UserInfo | None) -> str:
    if user is None:
        return ""
    return (
        f'<div class="rise-muted" data-testid="signed-in-as">Signed in as <b>{escape(user.username)}</b> '
        f"({escape(str(user.role))})</div>"
    )

"""The sign-in form, backed by `app.services.auth.authenticate`.

Failed attempts are counted per account and per client address (`app.services.login_throttle`): past a few, each
one locks the account or address for twice as long as the last, so passwords cannot be guessed at speed while
someone who mistyped once is not bothered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from app.runtime import Runtime
from app.services import auth
from app.services.login_throttle import LoginThrottle
from app.ui.render import escape
from app.ui.session import UserInfo


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


def client_address(request: gr.Request | None) -> str:
    """The address a request came from, as the server saw it (behind a proxy on this machine: the forwarded one)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def _problem(text: str) -> str:
    return f'<div class="rise-parse-error">{escape(text)}</div>'


def sign_in(
    runtime: Runtime, username: str, password: str, *, throttle: LoginThrottle, address: str
) -> tuple[UserInfo | None, str]:
    """The user for these credentials and an (HTML) message for the form; refused unchecked while the account or
    the address `address` is locked after failed attempts."""
    username = (username or "").strip()
    if not username or not password:
        return None, _problem("Enter your username and password.")
    wait = throttle.wait_seconds(username, address)
    if wait > 0:
        return None, _problem(f"Too many failed sign-ins. Try again in {math.ceil(wait)} s.")
    user = auth.authenticate(runtime, username, password)
    if user is None:
        throttle.failed(username, address)
        return None, _problem("Wrong username or password.")
    throttle.succeeded(username, address)
    return user, ""


def user_badge_html(user: UserInfo | None) -> str:
    if user is None:
        return ""
    return (
        f'<div class="rise-muted" data-testid="signed-in-as">Signed in as <b>{escape(user.username)}</b> '
        f"({escape(str(user.role))})</div>"
    )

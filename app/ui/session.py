"""Who is signed in. The signed-in user lives in a server-side `gr.State`, so a browser cannot claim to be someone
else; every handler checks it again rather than trusting that a hidden button stays hidden."""

from __future__ import annotations

import gradio as gr

from app.services.auth import UserInfo

__all__ = ["UserInfo", "is_admin", "require_admin", "require_user"]


def is_admin(user: UserInfo | None) -> bool:
    return user is not None and str(user.role) == "admin"


def require_user(user: UserInfo | None) -> UserInfo:
    if user is None:
        raise gr.Error("Sign in first.")
    return user


def require_admin(user: UserInfo | None) -> UserInfo:
    user = require_user(user)
    if not is_admin(user):
        raise gr.Error("Only admins can do this. Ask an admin to change your role.")
    return user

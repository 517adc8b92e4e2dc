"""Who is signed in. The signed-in user lives in a server-side `gr.State`, so a browser cannot claim to be someone
else; every handler checks it again rather than trusting that a hidden button stays hidden.

The state holds the user as they were when they signed in. `read_user_for_every_event` makes every event that
reads the state get the user as the database has them now instead, or no user once the session has ended (the user
was deactivated, or their password or role changed since they signed in): rights never outlive a change.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.runtime import Runtime
from app.services.auth import UserInfo, current_user

__all__ = ["UserInfo", "is_admin", "read_user_for_every_event", "require_admin", "require_user"]


def is_admin(user: UserInfo | None) -> bool:
    return user is not None and str(user.role) == "admin"


def require_user(user: UserInfo | None) -> UserInfo:
    if user is None:
        raise gr.Error("Sign in first. A session ends when its account's password, role or access changes.")
    return user


def require_admin(user: UserInfo | None) -> UserInfo:
    user = require_user(user)
    if not is_admin(user):
        raise gr.Error("Only admins can do this. Ask an admin to change your role.")
    return user


def _is_special(parameter: inspect.Parameter) -> bool:
    """Whether Gradio fills this parameter itself (a progress tracker or the request), shifting the arguments."""
    annotation = str(parameter.annotation)
    return isinstance(parameter.default, gr.Progress) or "Request" in annotation or "EventData" in annotation


def _with_current_user(fn: Callable[..., Any], position: int, runtime: Runtime) -> Callable[..., Any]:
    parameters = list(inspect.signature(fn).parameters.values())
    named = [p for p in parameters[: position + 1] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    if any(_is_special(parameter) for parameter in named):
        raise TypeError(f"{fn!r}: the signed-in user must come before the parameters Gradio fills itself")
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
        raise TypeError(f"{fn!r}: an event handler that reads the signed-in user must be a plain function")

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        args_now = list(args)
        if position < len(args_now):
            args_now[position] = current_user(runtime, args_now[position])
        return fn(*args_now, **kwargs)

    return handler


def read_user_for_every_event(blocks: gr.Blocks, user_state: gr.State, runtime: Runtime) -> None:
    """Make every event of `blocks` that takes `user_state` as an input receive the current user (or None, once
    the session has ended) in its place. Call it once every event is registered."""
    for block_fn in blocks.fns.values():
        if block_fn.fn is None:
            continue
        positions = [index for index, block in enumerate(block_fn.inputs) if block is user_state]
        for position in positions:
            block_fn.fn = _with_current_user(block_fn.fn, position, runtime)

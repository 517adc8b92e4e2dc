"""Which browser is signed in as whom, for the requests that reach the web server outside the app's events: image
files and uploads. The app's events know their user from the session's state; a plain GET of an image does not, so
signing in also gives the browser a random token in a cookie, and the server looks the token up here.

Tokens live in the server's memory: a restart signs every browser out, as it does the app's sessions. A token is
worth what its user is worth now: `user` reads the user again, so a deactivated user's token opens nothing, and a
change of password or role ends it (`app.services.auth.current_user`).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable

from app.runtime import Runtime
from app.services.auth import UserInfo, current_user

# Tokens remembered at most; the oldest sign-ins are forgotten first (their browsers sign in again).
MAX_SESSIONS = 10_000


def cookie_name_for(port: int) -> str:
    """The cookie of the server on `port`: cookies do not tell ports apart, so two servers on one host need two
    names, or each sign-in would overwrite the other server's token."""
    return f"rise_session_{port}"


class BrowserSessions:
    """The signed-in browsers of one server, whose browsers keep their token in the cookie `cookie_name`."""

    def __init__(
        self,
        cookie_name: str = "rise_session",
        *,
        max_sessions: int = MAX_SESSIONS,
        on_sign_in: Callable[[int], None] | None = None,
    ) -> None:
        """`on_sign_in` is told, after each sign-in, how many different users are signed in."""
        self.cookie_name = cookie_name
        self._max_sessions = max_sessions
        self._on_sign_in = on_sign_in
        self._users: OrderedDict[str, UserInfo] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, user: UserInfo) -> str:
        """A new token for a browser that just signed in as `user`."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._users[token] = user
            while len(self._users) > self._max_sessions:
                self._users.popitem(last=False)
            signed_in = len({signed.id for signed in self._users.values()})
        if self._on_sign_in is not None:
            self._on_sign_in(signed_in)
        return token

    def revoke(self, token: str | None) -> None:
        with self._lock:
            self._users.pop(token or "", None)

    def user(self, runtime: Runtime, token: str | None) -> UserInfo | None:
        """The user the token's browser is signed in as, as the database has them now; None if it is not."""
        with self._lock:
            signed_in = self._users.get(token or "")
        return current_user(runtime, signed_in)

"""Accounts: create reviewers and admins, check passwords.

Passwords are hashed with scrypt (`hashlib.scrypt`, memory-hard) and a random 16-byte salt per user, stored as
`scrypt$<n>$<r>$<p>$<salt>$<hash>` so the cost can be raised later without invalidating existing hashes. Hashes are
compared in constant time, and an unknown username costs the same hash as a known one, so response times do not
reveal which usernames exist.

A signed-in session holds a `UserInfo` from the moment it signed in; `current_user` reads the user again for every
action, so a changed role counts at once. A change of password, role or active flag also ends every session signed
in before it (the user's session epoch is raised; see `db.crud.users.update_user`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.errors import AppError
from app.runtime import Runtime
from db.crud import users as crud
from db.models import Role, User

__all__ = [
    "AuthError",
    "UserInfo",
    "authenticate",
    "create_user",
    "current_user",
    "ensure_user",
    "get_user_info",
    "hash_password",
    "list_users",
    "set_active",
    "set_password",
    "set_role",
    "verify_password",
]

# scrypt cost: n=2**14, r=8 takes ~16 MiB and ~50 ms per check, the interactive-login setting from the scrypt paper.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
PASSWORD_MIN_LENGTH = 8
# scrypt's cost grows with the input; a cap keeps a huge "password" from tying up the server.
PASSWORD_MAX_LENGTH = 1024
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,149}")
# Stored for accounts that must not log in with a password (the local demo user); never a valid scrypt record.
UNUSABLE_PREFIX = "!"


class AuthError(AppError, ValueError):
    """An account cannot be created or changed as asked; the message says what to do instead."""


@dataclass(frozen=True)
class UserInfo:
    """A signed-in user as the UI sees it: plain values, no ORM object."""

    id: int
    username: str
    role: str  # "reviewer" or "admin"
    is_active: bool = True
    # The user's session epoch when this was read: a session holding an older one has ended.
    session_epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin.value


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=Role(user.role).value,
        is_active=user.is_active,
        session_epoch=user.session_epoch,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: OpenSSL's default 32 MiB limit is too tight for n=2**14, r=8 on some builds; allow twice the need.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=256 * n * r * p + 2**20
    )


def hash_password(password: str) -> str:
    """A salted scrypt record of `password`; two calls with the same password give different records.

    >>> hash_password("correct horse").startswith("scrypt$16384$8$1$")
    True
    """
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, record: str) -> bool:
    """Whether `password` matches a record from `hash_password`; `False` for any malformed or unusable record."""
    parts = record.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or len(password) > PASSWORD_MAX_LENGTH:
        return False
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        # Refuse absurd costs from a tampered record rather than exhaust memory.
        if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        actual = _scrypt(password, salt, n, r, p)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Hashed once, lazily: the record an unknown username is checked against, so it costs as much as a known one.
_DUMMY_RECORD: str | None = None


def _dummy_record() -> str:
    global _DUMMY_RECORD
    if _DUMMY_RECORD is None:
        _DUMMY_RECORD = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_RECORD


def check_username(username: str) -> str:
    username = username.strip()
    if not USERNAME_RE.fullmatch(username):
        raise AuthError(
            f"Username {username!r:.60} is not allowed: use 1-150 letters, digits and . _ @ -, starting with a letter "
            "or digit, e.g. 'ada' or 'ada.lovelace'."
        )
    return username


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AuthError(f"The password is too short: use at least {PASSWORD_MIN_LENGTH} characters.")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise AuthError(f"The password is too long: use at most {PASSWORD_MAX_LENGTH} characters.")
    return password


def check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise AuthError(f"Unknown role {role!r}; choose one of: {choices}.") from None


def create_user(runtime: Runtime, username: str, password: str, role: Role | str = Role.reviewer) -> UserInfo:
    """Create an account; `AuthError` when the name is taken or the name, password or role is not acceptable."""
    username = check_username(username)
    record = hash_password(check_password(password))
    role = check_role(role)
    try:
        with runtime.sessions.begin() as session:
            if crud.get_user_by_username(session=session, username=username) is not None:
                raise AuthError(f"A user named {username!r} already exists; pick another name.")
            return _info(crud.create_user(session=session, username=username, password_hash=record, role=role))
    except IntegrityError:
        # Another request created the same name between our check and our insert.
        raise AuthError(f"A user named {username!r} already exists; pick another name.") from None


def ensure_user(runtime: Runtime, username: str, role: Role | str = Role.admin) -> UserInfo:
    """The account called `username`, created without a usable password if missing (for the local-only demo,
    where nobody signs in). An existing account is returned unchanged."""
    username = check_username(username)
    role = check_role(role)
    try:
        with runtime.sessions.begin() as session:
            user = crud.get_user_by_username(session=session, username=username)
            if user is None:
                record = UNUSABLE_PREFIX + secrets.token_urlsafe(16)
                user = crud.create_user(session=session, username=username, password_hash=record, role=role)
            return _info(user)
    except IntegrityError:
        with runtime.sessions() as session:
            return _info(crud.get_user_by_username(session=session, username=username))


def authenticate(runtime: Runtime, username: str, password: str) -> UserInfo | None:
    """The active user with this name and password, else `None` (which of the two was wrong is not revealed)."""
    with runtime.sessions() as session:
        user = crud.get_user_by_username(session=session, username=username.strip())
        record = user.password_hash if user is not None else _dummy_record()
        info = _info(user) if user is not None else None
    password_ok = verify_password(password, record)
    if info is None or not password_ok or not info.is_active:
        return None
    return info


def get_user_info(runtime: Runtime, user_id: int) -> UserInfo | None:
    with runtime.sessions() as session:
        user = crud.get_user(session=session, user_id=user_id)
        return _info(user) if user is not None else None


def list_users(runtime: Runtime) -> list[UserInfo]:
    with runtime.sessions() as session:
        return [_info(user) for user in crud.list_users(session=session)]


def current_user(runtime: Runtime, signed_in: UserInfo | None) -> UserInfo | None:
    """The user a session signed in as, read again now; `None` when the session has ended: the user is gone or
    deactivated, or their password, role or active flag changed since the session signed in."""
    if signed_in is None:
        return None
    now = get_user_info(runtime, signed_in.id)
    if now is None or not now.is_active or now.session_epoch != signed_in.session_epoch:
        return None
    return now


def _update(runtime: Runtime, username: str, **changes) -> UserInfo:
    with runtime.sessions.begin() as session:
        user = crud.get_user_by_username(session=session, username=username.strip())
        if user is None:
            raise AuthError(f"No user named {username!r}. Create the account first.", setting="username")
        return _info(crud.update_user(session=session, user=user, **changes))


def set_password(runtime: Runtime, username: str, password: str) -> UserInfo:
    """A new password; the user's sessions end."""
    return _update(runtime, username, password_hash=hash_password(check_password(password)))


def set_role(runtime: Runtime, username: str, role: Role | str) -> UserInfo:
    """Make the user a reviewer or an admin; when that changes their role, their sessions end."""
    return _update(runtime, username, role=check_role(role))


def set_active(runtime: Runtime, username: str, active: bool) -> UserInfo:
    """Let the user sign in again, or not; deactivating ends their sessions."""
    return _update(runtime, username, is_active=active)

"""Users: reviewers and admins. Passwords arrive here already hashed (`app.services.auth`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Role, User


def create_user(*, session: Session, username: str, password_hash: str, role: Role | str = Role.reviewer) -> User:
    user = User(username=username, password_hash=password_hash, role=Role(role), is_active=True)
    session.add(user)
    session.flush()
    return user


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_user_by_username(*, session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def list_users(*, session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def update_user(
    *,
    session: Session,
    user: User,
    password_hash: str | None = None,
    role: Role | str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change what is given and leave the rest. A new password, or a role or active flag that differs from the
    stored one, raises the user's session epoch, which ends the sessions signed in before."""
    changed = False
    if password_hash is not None:
        user.password_hash = password_hash
        changed = True
    if role is not None and Role(role) != user.role:
        user.role = Role(role)
        changed = True
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        changed = True
    if changed:
        user.session_epoch += 1
    session.flush()
    return user

"""a user's session epoch

`users.session_epoch`: a number that every change of a user's password, role or active flag raises. A signed-in
session remembers the number it signed in with and ends once the row holds another, so such a change signs the
user out everywhere. Existing users start at 0.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")

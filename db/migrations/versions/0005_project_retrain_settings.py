"""a project's default retraining settings

`projects.retrain_settings`: pipeline settings (`section.field=value` lines) that every retraining of the project
starts from, before the settings a request adds. A project whose data and model call for other step counts or
learning rates than the pipeline's defaults (the demo's, trained on a CPU in minutes) says so once, and the Retrain
button, the command line and the periodic policy all use it. Existing projects get an empty list: nothing changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("retrain_settings", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("retrain_settings")

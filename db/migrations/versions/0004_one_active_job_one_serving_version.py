"""one active retraining job and one serving version per project

Two partial unique indexes that make the database itself refuse what the retraining code must never do, however
many workers and browser tabs race: a second queued-or-running training job for a project (`training_jobs`), and a
second serving model version for a project (`model_versions`). Both backends support partial indexes; the code
that inserts or promotes catches the IntegrityError and reports "already queued" / retries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_TRAIN_JOB = sa.text("kind = 'train' AND status IN ('queued', 'running')")
SERVING = sa.text("is_serving")


def upgrade() -> None:
    # Plain CREATE INDEX (no batch mode): adding an index needs no table rebuild on SQLite.
    op.create_index(
        "uq_training_jobs_active_train",
        "training_jobs",
        ["project_id"],
        unique=True,
        sqlite_where=ACTIVE_TRAIN_JOB,
        postgresql_where=ACTIVE_TRAIN_JOB,
    )
    op.create_index(
        "uq_model_versions_serving",
        "model_versions",
        ["project_id"],
        unique=True,
        sqlite_where=SERVING,
        postgresql_where=SERVING,
    )


def downgrade() -> None:
    op.drop_index("uq_model_versions_serving", table_name="model_versions")
    op.drop_index("uq_training_jobs_active_train", table_name="training_jobs")

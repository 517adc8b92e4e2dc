"""a reviewer's reasoning for a correction

`reviews.corrected_cot`: the reasoning a reviewer may write with a correction ("two warm colours, one cool: sunny").
The trusted annotation the correction makes carries it as its CoT, so it becomes SFT data like an accepted
prediction's reasoning. Existing reviews have none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("corrected_cot", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("corrected_cot")

"""enum check constraints

The enum columns are VARCHARs; 0001 created them without the CHECK that limits them to their members, so a row
written outside the ORM could hold a value that every later ORM read of the row fails on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than read from db.models: this migration must keep creating exactly these constraints even
# after a later migration adds members. Names follow the naming convention ck_<table>_<enum name>.
ENUM_CHECKS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "projects": [("task_type", "tasktype", ("classification", "detection", "grounding"))],
    "users": [("role", "role", ("reviewer", "admin"))],
    "items": [("split", "split", ("train", "eval"))],
    "training_jobs": [
        ("kind", "jobkind", ("train", "annotate")),
        ("status", "jobstatus", ("queued", "running", "succeeded", "failed", "cancelled")),
    ],
    "reviews": [("verdict", "verdict", ("accept", "correct", "reject"))],
    "annotations": [("source", "annotationsource", ("import", "accept", "correct"))],
}


def upgrade() -> None:
    for table, checks in ENUM_CHECKS.items():
        # Batch mode: SQLite cannot add a CHECK to an existing table, so the table is rebuilt.
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, enum_name, members in checks:
                allowed = ", ".join(f"'{member}'" for member in members)
                batch_op.create_check_constraint(op.f(f"ck_{table}_{enum_name}"), f"{column} IN ({allowed})")


def downgrade() -> None:
    for table, checks in reversed(ENUM_CHECKS.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _column, enum_name, _members in checks:
                batch_op.drop_constraint(op.f(f"ck_{table}_{enum_name}"), type_="check")

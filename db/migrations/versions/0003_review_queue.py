"""review queue

The review queue table (one row per item with a prediction: project, newest prediction, score, labels, latest
verdict) with the indexes that serve "next unreviewed item by lowest confidence / oldest first / oldest verdict" as
one range scan (partial indexes over the unreviewed rows, which PostgreSQL can read in order), per-project queue
counts, the per-reviewer skip list, and an index on the item lease holder.

The queue starts empty: the application fills it from `predictions` and `reviews` on first use
(`db.crud.review_queue.sync_review_queue`), which also covers databases that already hold predictions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_queue",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(length=1024), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("answer_labels", sa.Text(), nullable=False),
        sa.Column(
            "verdict",
            sa.Enum(
                "accept", "correct", "reject", name="verdict", native_enum=False, create_constraint=True, length=32
            ),
            nullable=True,
        ),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.Column("verdict_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_review_queue_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_review_queue_prediction_id_predictions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_review_queue_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_review_queue_review_id_reviews"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_review_queue")),
    )
    with op.batch_alter_table("review_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_queue_open_confidence",
            ["project_id", "score", "item_id"],
            unique=False,
            sqlite_where=sa.text("verdict IS NULL"),
            postgresql_where=sa.text("verdict IS NULL"),
        )
        batch_op.create_index(
            "ix_review_queue_open_oldest",
            ["project_id", "item_id"],
            unique=False,
            sqlite_where=sa.text("verdict IS NULL"),
            postgresql_where=sa.text("verdict IS NULL"),
        )
        batch_op.create_index("ix_review_queue_verdict_at", ["project_id", "verdict", "verdict_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_queue_prediction_id"), ["prediction_id"], unique=False)

    op.create_table(
        "review_queue_counts",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("reviewed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_review_queue_counts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_review_queue_counts")),
    )
    op.create_table(
        "review_skips",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("skipped_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_review_skips_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_review_skips_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "item_id", name=op.f("pk_review_skips")),
    )

    # A plain CREATE INDEX, not batch mode: rebuilding `items` on SQLite would copy every row for one index.
    op.create_index(op.f("ix_items_leased_by_id"), "items", ["leased_by_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_items_leased_by_id"), table_name="items")
    op.drop_table("review_skips")
    op.drop_table("review_queue_counts")
    with op.batch_alter_table("review_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_queue_prediction_id"))
        batch_op.drop_index("ix_review_queue_verdict_at")
        batch_op.drop_index("ix_review_queue_open_oldest")
        batch_op.drop_index("ix_review_queue_open_confidence")
    op.drop_table("review_queue")

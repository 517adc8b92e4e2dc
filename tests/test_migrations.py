"""Alembic migrations on SQLite and PostgreSQL: up, down and up again; models and migrations agree; `rise init`."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers every sub-command, as `rise` itself does)
from app.cli import cli
from db import migrate
from db.models import Base
from db.session import make_engine

MODEL_TABLES = set(Base.metadata.tables)


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def schema_diff(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


class TestUpgradeAndDowngrade:
    def test_upgrade_creates_every_model_table_at_head(self, db_url):
        migrate.upgrade(db_url)

        assert table_names(db_url) == MODEL_TABLES | {"alembic_version"}
        assert revision_of(db_url) == migrate.head_revision()

    def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(self, db_url):
        migrate.upgrade(db_url)
        migrate.downgrade(db_url, "base")

        assert table_names(db_url) - {"alembic_version"} == set()
        assert revision_of(db_url) is None

        migrate.upgrade(db_url)
        assert table_names(db_url) == MODEL_TABLES | {"alembic_version"}

    def test_each_revision_downgrades_one_step_and_upgrades_again(self, db_url):
        # A "stairway": every migration's downgrade must undo exactly its upgrade, so walking back one step and up
        # again works at every revision, not only for the full chain.
        script = ScriptDirectory.from_config(migrate.alembic_config(db_url))
        revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
        assert revisions, "no migrations found"
        for revision in revisions:
            migrate.upgrade(db_url, revision)
            migrate.downgrade(db_url, "-1")
            migrate.upgrade(db_url, revision)
            assert revision_of(db_url) == revision


class TestModelsMatchMigrations:
    def test_migrated_schema_has_no_diff_against_the_models(self, db_engine):
        # What `alembic check` does: an autogenerate comparison that must find nothing to migrate.
        assert schema_diff(db_engine) == []

    def test_comparison_detects_a_table_the_migrations_lack(self, db_engine):
        # Guards the test above against passing vacuously (e.g. comparing against an empty database).
        with db_engine.begin() as connection:
            connection.execute(text("DROP TABLE annotations"))

        diff = schema_diff(db_engine)

        assert [entry[1].name for entry in diff if entry[0] == "add_table"] == ["annotations"]


def test_rebuilding_a_parent_table_on_sqlite_keeps_its_child_rows(sqlite_url, tmp_path):
    """Batch mode rebuilds a SQLite table by copy, DROP and rename; with foreign keys on, that DROP would cascade."""
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (id, name, task_type, labels, label_synonyms, prompt_overrides, distribution,"
                " description, eval_fraction, created_at)"
                " VALUES (1, 'p', 'classification', '[]', '{}', '{}', 0, '', 0.1, '2024-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO items (id, project_id, sha256, media_path, original_name, width, height, split, meta,"
                " created_at) VALUES (1, 1, 'ab', 'ab/ab.png', '', 8, 8, 'train', '{}', '2024-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO predictions (item_id, model_name, raw_text, created_at) VALUES (1, 'm', '', '2024-01-01')"
            )
        )
    engine.dispose()

    # A later migration that must rebuild `items` (as changing a column type or constraint does on SQLite).
    extra_versions = tmp_path / "versions"
    extra_versions.mkdir()
    (extra_versions / "9001_rebuild_items.py").write_text(
        f"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{migrate.head_revision()}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("items", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("rebuilt", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("items", recreate="always") as batch_op:
        batch_op.drop_column("rebuilt")
"""
    )
    config = migrate.alembic_config(sqlite_url)
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join([str(migrate.MIGRATIONS_DIR / "versions"), str(extra_versions)])
    )

    command.upgrade(config, "9001")
    command.downgrade(config, "-1")

    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM predictions")).scalar() == 1
        # Enforcement is back on for the application's connections after the migration.
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


class TestRiseInit:
    def invoke_init(self, db_url: str, data_dir: Path):
        env = {"RISE_DATABASE_URL": db_url, "RISE_DATA_DIR": str(data_dir)}
        return CliRunner().invoke(cli, ["init"], env=env)

    def test_init_creates_the_schema_and_the_media_folder(self, db_url, tmp_path):
        result = self.invoke_init(db_url, tmp_path / "data")

        assert result.exit_code == 0, result.output
        assert migrate.head_revision() in result.output
        assert revision_of(db_url) == migrate.head_revision()
        assert table_names(db_url) == MODEL_TABLES | {"alembic_version"}
        assert (tmp_path / "data" / "media").is_dir()

    def test_init_twice_is_harmless_and_keeps_the_data(self, db_url, tmp_path):
        assert self.invoke_init(db_url, tmp_path / "data").exit_code == 0
        engine = make_engine(db_url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, is_active, created_at)"
                    " VALUES ('ada', 'x', 'admin', true, '2024-01-01')"
                )
            )

        second = self.invoke_init(db_url, tmp_path / "data")

        assert second.exit_code == 0, second.output
        assert revision_of(db_url) == migrate.head_revision()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT username FROM users")).scalars().all() == ["ada"]
        engine.dispose()

"""`rise retrain`, `rise jobs`, `rise versions`, `rise policy` and `rise worker` through Typer's test runner, on a
real SQLite file."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers the sub-commands on `cli`)
from app.cli import cli
from app.runtime import open_runtime
from app.settings import load_settings
from db.crud.model_versions import create_model_version
from tests.utils.retrain import make_ready_project


@pytest.fixture
def rise(tmp_path):
    """Run `rise ...` against a migrated data folder under tmp_path holding a ready-to-train project "shapes"."""
    env = {"RISE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "220", "NO_COLOR": "1"}
    runtime = open_runtime(load_settings(env), upgrade=True)
    with runtime.sessions.begin() as session:
        project = make_ready_project(session)
        for name in ("shapes-base", "shapes-v1"):
            create_model_version(session=session, project_id=project.id, name=name, base_model="org/base-model")
    runtime.close()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def test_retrain_queues_once_and_jobs_can_be_listed_shown_and_cancelled(rise, tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("model: ignored/here\nsft: {max_steps: 4, learning_rate: 0.0001}\n")

    queued = rise("retrain", "--project", "shapes", "--config", str(config), "--set", "rft.max_steps=3")
    assert queued.exit_code == 0, queued.output
    assert "Queued job #1: retrain shapes from org/base-model" in queued.output

    again = rise("retrain", "--project", "shapes")
    assert again.exit_code == 1 and "already has a training job queued or running (job #1)" in again.output

    shown = rise("jobs", "show", "1")
    # Only the config file's fields that differ from the defaults travel (sft.learning_rate is the default).
    assert '"sft.max_steps=4"' in shown.output and '"rft.max_steps=3"' in shown.output
    assert "learning_rate" not in shown.output
    assert "queued" in rise("jobs", "list", "--project", "shapes").output

    cancelled = rise("jobs", "cancel", "1")
    assert cancelled.exit_code == 0 and "Job #1: cancelled." in cancelled.output
    assert rise("jobs", "show", "99").exit_code == 1


def test_bad_retrain_settings_fail_with_the_reason(rise):
    result = rise("retrain", "--project", "shapes", "--set", "sft.nope=1")
    assert result.exit_code == 1 and "unknown field 'nope'" in result.output
    unknown = rise("retrain", "--project", "other").output
    assert "No project named 'other' (existing: shapes)" in unknown and "rise project create other" in unknown


def test_versions_promote_and_roll_back(rise):
    assert rise("versions", "promote", "shapes-base", "--project", "shapes").exit_code == 0
    promoted = rise("versions", "promote", "shapes-v1", "--project", "shapes", "--reannotate")
    assert promoted.exit_code == 0 and "shapes-v1 serves shapes now." in promoted.output
    listed = rise("versions", "list", "--project", "shapes").output
    assert next(line for line in listed.splitlines() if "shapes-v1" in line).count("yes") == 1

    rolled = rise("versions", "rollback", "--project", "shapes")
    assert rolled.exit_code == 0 and "shapes-base serves shapes now" in rolled.output
    assert "annotate" in rise("jobs", "list").output  # --reannotate queued a re-annotation job
    assert rise("versions", "promote", "v9", "--project", "shapes").exit_code == 1


def test_policy_set_and_show(rise):
    result = rise("policy", "set", "--project", "shapes", "--every-verdicts", "50", "--every-hours", "24")
    assert result.exit_code == 0, result.output
    assert "retrain every 50 verdicts, every 24.0 h; not due" in result.output
    assert "every 50 verdicts" in rise("policy", "show", "--project", "shapes").output


def test_worker_exits_when_idle(rise):
    result = rise("worker", "--exit-when-idle", "--no-policies", "--lease-seconds", "5")
    assert result.exit_code == 0, result.output
    assert "stopped after 0 job(s)" in result.output

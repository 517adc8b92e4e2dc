"""`rise project create|list`, `rise import` and `rise demo` through Typer's test runner, on a real SQLite file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers the sub-commands on `cli`)
from app.cli import cli
from app.runtime import open_runtime
from app.services import projects as project_service
from app.settings import load_settings
from db.crud import projects as project_crud
from rise.synthetic import write_demo_assets
from tests.utils.factories import write_png, write_pngs, write_truncated_png


@pytest.fixture
def rise(tmp_path):
    """Run `rise ...` against a data folder under tmp_path (migrated, like after `rise init`)."""
    env = {"RISE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200", "NO_COLOR": "1"}
    open_runtime(load_settings(env), upgrade=True).close()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def _row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell`."""
    line = next(line for line in output.splitlines() if line.startswith(f"│ {first_cell} "))
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_create_then_list_shows_the_project_with_its_counts(rise, tmp_path):
    created = rise("project", "create", "shapes", "--task", "classification", "--labels", "circle, square,triangle")
    assert created.exit_code == 0, created.output
    assert "Created project 'shapes' (classification; circle, square, triangle)" in created.output

    write_pngs(tmp_path / "in", 20)
    assert rise("import", "--project", "shapes", str(tmp_path / "in")).exit_code == 0

    listed = rise("project", "list")
    assert listed.exit_code == 0
    cells = _row(listed.output, "shapes")
    assert cells[:3] == ["shapes", "classification", "circle, square, triangle"]
    assert int(cells[3]) + int(cells[4]) == 20 and cells[5] == "0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "classification", "--labels", "circle"], "at least two labels"),
        (["--task", "detection"], "at least one box label"),
        (["--task", "classification", "--labels", "a,a,b"], "unique"),
        (["--task", "classification", "--labels", "a,,b"], "must not be empty"),
        (["--task", "classification", "--labels", "a,b", "--eval-fraction", "1.5"], "eval_fraction must be in [0, 1)"),
    ],
)
def test_create_with_bad_options_exits_1_with_the_fix(rise, args, message):
    result = rise("project", "create", "p", *args)
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (
            ["project", "create", "p", "--task", "classification", "--labels", "a,,b"],
            "Example: --labels circle,square",
        ),
        (
            ["project", "create", "p", "--task", "detection", "--labels", "a", "--eval-fraction", "1"],
            "--eval-fraction 0.1",
        ),
        (
            ["project", "create", "p", "--task", "classification", "--labels", "cat"],
            "at least two labels, got ['cat']. Example: --labels circle,square",
        ),
        (["import", "--project", "nope", "no-such-folder"], "Example: `rise project create nope --task"),
    ],
)
def test_the_command_line_adds_its_own_syntax_to_a_project_error(rise, args, example):
    result = rise(*args)
    assert result.exit_code == 1
    assert example in " ".join(result.output.split())  # the console may wrap a long line


@pytest.mark.parametrize(
    ("request_", "setting"),
    [
        ({"name": " ", "task_type": "detection"}, "name"),
        ({"name": "p", "task_type": "segmentation"}, "task_type"),
        ({"name": "p", "task_type": "detection", "labels": ["a", ""]}, "labels"),
        ({"name": "p", "task_type": "detection", "labels": ["a", "a"]}, "labels"),
        ({"name": "p", "task_type": "detection", "eval_fraction": 1.0}, "eval_fraction"),
    ],
)
def test_the_database_layer_words_project_errors_for_any_caller(tmp_path, request_, setting):
    # The web UI shows these messages too: they name the setting at fault, never a command line's syntax for it.
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(tmp_path)}), upgrade=True)
    try:
        with runtime.sessions.begin() as session, pytest.raises(project_crud.ProjectError) as refused:
            project_crud.create_project(session=session, **request_)
        with runtime.sessions.begin() as session, pytest.raises(project_crud.ProjectNotFoundError) as missing:
            project_crud.require_project(session=session, name="nope")
    finally:
        runtime.close()
    assert refused.value.setting == setting and missing.value.name == "nope"
    for message in (str(refused.value), str(missing.value)):
        assert "--" not in message and "rise " not in message and "`" not in message, message


@pytest.mark.parametrize(
    ("task_type", "labels", "setting"),
    [("classification", ["cat"], "labels"), ("detection", [], "labels"), ("segmentation", ["a"], "task_type")],
)
def test_the_project_service_words_task_rule_errors_for_any_caller(tmp_path, task_type, labels, setting):
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(tmp_path)}), upgrade=True)
    try:
        with pytest.raises(project_service.ProjectError) as refused:
            project_service.create_project(runtime, "p", task_type, labels)
    finally:
        runtime.close()
    message = str(refused.value)
    assert refused.value.setting == setting
    assert "--" not in message and "rise " not in message and "`" not in message, message


def test_create_duplicate_name_is_refused(rise):
    assert rise("project", "create", "shapes", "--task", "grounding").exit_code == 0
    again = rise("project", "create", "shapes", "--task", "grounding")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_unknown_task_is_rejected_by_the_parser(rise):
    result = rise("project", "create", "p", "--task", "segmentation", "--labels", "a,b")
    assert result.exit_code == 2


def test_list_without_projects_says_how_to_create_one(rise):
    result = rise("project", "list")
    assert result.exit_code == 0 and "rise project create" in result.output


def test_import_prints_counts_and_each_skipped_file_with_its_reason(rise, tmp_path):
    folder = tmp_path / "in"
    write_pngs(folder, 5)
    write_truncated_png(folder / "[red]broken[link=x].png")
    (folder / "empty.jpg").write_bytes(b"")
    rise("project", "create", "shapes", "--task", "classification", "--labels", "a,b")

    first = rise("import", "--project", "shapes", str(folder))
    assert first.exit_code == 0, first.output
    assert "added 5, duplicates 0, skipped 2 (of 7 files)" in first.output
    # The markup-like name is printed as text, not interpreted.
    assert "[red]broken[link=x].png" in first.output
    assert "truncated or corrupt image data" in first.output
    assert "empty file (0 bytes)" in first.output

    second = rise("import", "--project", "shapes", str(folder / "*.png"))
    assert "added 0, duplicates 5, skipped 1 (of 6 files)" in second.output


def test_import_into_grounding_project_reads_queries_from_a_file(rise, tmp_path):
    write_png(tmp_path / "a.png", seed=1)
    write_png(tmp_path / "b.png", seed=2)
    (tmp_path / "q.json").write_text(json.dumps({"a.png": "the red circle", "b.png": "the blue square"}))
    rise("project", "create", "refer", "--task", "grounding")

    result = rise(
        "import",
        "-p",
        "refer",
        "--queries",
        str(tmp_path / "q.json"),
        str(tmp_path / "a.png"),
        str(tmp_path / "b.png"),
    )

    assert result.exit_code == 0
    assert "added 2" in result.output
    write_png(tmp_path / "c.png", seed=3)
    without = rise("import", "-p", "refer", str(tmp_path / "c.png"))  # skipped: no query; the command says how
    assert "no query" in without.output and "Give grounding queries with --query TEXT" in without.output


def test_import_errors_exit_1(rise, tmp_path):
    unknown = rise("import", "--project", "nope", str(tmp_path))
    assert unknown.exit_code == 1 and "No project named 'nope'" in unknown.output
    rise("project", "create", "refer", "--task", "grounding")
    (tmp_path / "q.yaml").write_text("a.png: x")
    bad_queries = rise("import", "-p", "refer", "--queries", str(tmp_path / "q.yaml"), str(tmp_path))
    assert bad_queries.exit_code == 1 and "must end in .json or .csv" in bad_queries.output


def test_commands_on_a_database_without_schema_ask_for_rise_init(tmp_path):
    env = {"RISE_DATA_DIR": str(tmp_path / "fresh"), "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["project", "list"], env=env)
    assert result.exit_code == 1
    assert "Run `rise init` first" in result.output


def test_demo_sets_up_projects_once_and_reruns_change_nothing(tmp_path):
    manifest = write_demo_assets(tmp_path / "assets", n_images=12, n_mood=12)
    env = {"RISE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200", "NO_COLOR": "1"}
    runner = CliRunner()

    first = runner.invoke(cli, ["demo", "--no-serve", "--manifest", str(manifest)], env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    for name in ("demo-mood", "demo-detection", "demo-grounding"):
        cells = _row(first.output, name)
        assert cells[1:5] == ["created", "12", "0", "0"] and int(cells[5]) > 0

    second = runner.invoke(cli, ["demo", "--no-serve", "--manifest", str(manifest)], env=env, catch_exceptions=False)
    assert second.exit_code == 0
    for name in ("demo-mood", "demo-detection", "demo-grounding"):
        assert _row(second.output, name)[1:] == ["existing", "0", "12", "0", "0"]


def test_demo_without_manifest_says_where_it_looked(tmp_path):
    env = {"RISE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["demo", "--no-serve", "--manifest", str(tmp_path / "missing.json")], env=env)
    assert result.exit_code == 1
    assert "Demo manifest not found" in result.output
    assert "Example: --manifest" in result.output  # the service names the setting; the command line adds its flag

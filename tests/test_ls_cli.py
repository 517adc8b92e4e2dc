"""`rise export ...` and `rise ls ...` from the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app import commands  # noqa: F401  (registers the sub-commands)
from app.cli import cli
from tests.utils.exchange import seed_reviewed_project


@pytest.fixture
def cli_env(runtime, monkeypatch):
    monkeypatch.setenv("RISE_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    return runtime


class _Result:
    def __init__(self, result) -> None:
        self.exit_code = result.exit_code
        # Rich wraps long lines at the console width; compare the words.
        self.output = " ".join(result.output.split())


def _run(*args: str) -> _Result:
    return _Result(CliRunner().invoke(cli, list(args), catch_exceptions=False))


def test_export_and_reimport_through_the_cli(cli_env, tmp_path):
    seed_reviewed_project(cli_env, "shapes", "detection", ["circle", "square"], tmp_path / "images")
    out = tmp_path / "out" / "shapes.json"

    exported = _run("export", "label-studio", "shapes", str(out))
    assert exported.exit_code == 0, exported.output
    assert "Wrote 4 tasks (4 predictions, 2 annotations)" in exported.output
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in exported.output
    assert len(json.loads(out.read_text())) == 4

    imported = _run("ls", "import", str(out), "--into", "shapes-copy")
    assert imported.exit_code == 0, imported.output
    assert "4 new items" in imported.output and "2 annotations and 4 predictions added" in imported.output

    config = _run("export", "label-studio-config", "shapes")
    assert config.exit_code == 0 and config.output.startswith("<View>") and "RectangleLabels" in config.output

    coco = _run("export", "coco", "shapes", str(tmp_path / "coco.json"))
    assert coco.exit_code == 0 and "4 images and 3 boxes" in coco.output


def test_skipped_tasks_are_listed_with_their_reasons(cli_env, tmp_path):
    seed_reviewed_project(cli_env, "shapes", "detection", ["circle"], tmp_path / "images")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": 41, "data": {"image": "nowhere.png"}, "annotations": []}]))
    result = _run("ls", "import", str(path), "--into", "shapes")
    assert result.exit_code == 0
    assert "Skipped tasks (1)" in result.output and "41" in result.output and "nowhere.png" in result.output
    assert "The image root is --image-root" in " ".join(result.output.split())  # the command names its option


def test_errors_are_one_line_and_never_show_the_key(cli_env, tmp_path):
    seed_reviewed_project(cli_env, "shapes", "detection", ["circle"], tmp_path / "images")
    missing = _run("ls", "push", "shapes", "--url", "http://127.0.0.1:9")
    assert missing.exit_code == 1 and "LABEL_STUDIO_API_KEY" in missing.output
    secret = "s3cr3t-key-that-must-not-appear"
    unreachable = _run("ls", "push", "shapes", "--url", "http://127.0.0.1:9", "--api-key", secret)
    assert unreachable.exit_code == 1 and "Cannot reach Label Studio at http://127.0.0.1:9" in unreachable.output
    assert secret not in unreachable.output
    unknown = _run("export", "coco", "nope", str(tmp_path / "x.json"))
    assert unknown.exit_code == 1 and "No project named 'nope'" in unknown.output

"""`run_annotation` and `rise annotate` against a real SQLite database and a real tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import app.commands  # noqa: F401  (registers the sub-commands on `cli`)
from app.cli import cli
from app.runtime import Runtime
from app.services.annotation import run_annotation
from app.services.imports import import_paths
from app.services.projects import create_project
from db.crud.predictions import list_predictions
from db.crud.projects import ProjectError, create_imported_annotation, list_items
from db.models import Item, ModelVersion, Prediction, Project
from rise.annotate import GenerationSettings
from rise.modeling import ModelLoadError
from rise.synthetic import generate_scene

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = GenerationSettings(batch_size=2, max_new_tokens=6)


def write_scenes(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"scene_{i:03d}.png"
        generate_scene(i).image.save(path)
        paths.append(path)
    return paths


def make_project(runtime: Runtime, tmp_path: Path, n: int = 5, name: str = "shapes", task: str = "classification"):
    labels = ["circle", "square"] if task != "grounding" else []
    """A project of `n` imported scenes: its id and its items' ids."""
    project_id = create_project(runtime, name, task, labels).id
    query = "the red circle" if task == "grounding" else None
    import_paths(runtime, project_id, write_scenes(tmp_path / f"images-{name}", n), query=query)
    with runtime.sessions.begin() as session:
        return project_id, [item.id for item in list_items(session=session, project_id=project_id)]


def predictions(runtime: Runtime) -> list[Prediction]:
    with runtime.sessions.begin() as session:
        return list_predictions(session=session)


class TestRunAnnotation:
    def test_stores_one_prediction_per_item_without_a_trusted_annotation(self, runtime, tmp_path, tiny_model_dir):
        project_id, item_ids = make_project(runtime, tmp_path)
        with runtime.sessions.begin() as session:
            create_imported_annotation(session=session, item_id=item_ids[0], answer="circle")

        summary = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)

        assert (summary.pending, summary.stored, summary.parsed + summary.failed) == (4, 4, 4)
        stored = predictions(runtime)
        assert sorted(p.item_id for p in stored) == item_ids[1:]
        for prediction in stored:
            assert prediction.model_name == str(tiny_model_dir.resolve())
            assert prediction.raw_text
            assert 0.0 < prediction.score <= 1.0
            assert (prediction.answer is None) == (prediction.parse_error is not None)

    def test_second_run_finds_nothing_to_do(self, runtime, tmp_path, tiny_model_dir):
        project_id, _ = make_project(runtime, tmp_path, n=3)
        run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        again = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        assert (again.pending, again.stored) == (0, 0)
        assert len(predictions(runtime)) == 3

    def test_interrupted_run_resumes_without_duplicates(self, runtime, tmp_path, tiny_model_dir):
        project_id, item_ids = make_project(runtime, tmp_path, n=5)

        def interrupt_after_first_batch(done: int, total: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_annotation(
                runtime, project_id, str(tiny_model_dir), settings=FAST, progress=interrupt_after_first_batch
            )
        assert len(predictions(runtime)) == 2  # the finished batch was committed

        resumed = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        assert (resumed.pending, resumed.stored) == (3, 3)
        assert sorted(p.item_id for p in predictions(runtime)) == item_ids

    def test_another_model_annotates_the_same_items_again(self, runtime, tmp_path, tiny_model_dir):
        project_id, _ = make_project(runtime, tmp_path, n=2)
        run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        with runtime.sessions.begin() as session:
            session.add(ModelVersion(project_id=project_id, name="shapes-v1", base_model=str(tiny_model_dir)))

        summary = run_annotation(runtime, project_id, "shapes-v1", settings=FAST)

        assert summary.stored == 2
        by_version = [p for p in predictions(runtime) if p.model_name == "shapes-v1"]
        assert len(by_version) == 2 and all(p.model_version_id is not None for p in by_version)

    def test_limit_annotates_the_oldest_items_first(self, runtime, tmp_path, tiny_model_dir):
        project_id, item_ids = make_project(runtime, tmp_path, n=4)
        summary = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST, limit=3)
        assert summary.stored == 3
        assert sorted(p.item_id for p in predictions(runtime)) == item_ids[:3]

    def test_unreadable_image_is_skipped_with_a_reason_and_retried_later(self, runtime, tmp_path, tiny_model_dir):
        project_id, item_ids = make_project(runtime, tmp_path, n=3)
        with runtime.sessions.begin() as session:
            broken = session.get(Item, item_ids[1])
            media_file = runtime.settings.media_dir / broken.media_path
        original = media_file.read_bytes()
        media_file.write_bytes(original[:40])  # truncated PNG

        summary = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)

        assert summary.stored == 2
        assert [s.item_id for s in summary.skipped] == [item_ids[1]]
        assert "could not be read" in summary.skipped[0].reason
        media_file.write_bytes(original)
        retried = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        assert (retried.stored, retried.skipped) == (1, [])

    def test_grounding_items_are_annotated_with_their_query(self, runtime, tmp_path, tiny_model_dir):
        project_id, _ = make_project(runtime, tmp_path, n=2, name="find", task="grounding")
        summary = run_annotation(runtime, project_id, str(tiny_model_dir), settings=FAST)
        assert summary.stored == 2

    def test_without_a_model_the_serving_version_annotates_else_the_default_model(
        self, runtime, tmp_path, tiny_model_dir
    ):
        project_id, _ = make_project(runtime, tmp_path, n=2)
        with pytest.raises(ProjectError, match="no serving model version and no default model"):
            run_annotation(runtime, project_id, None, settings=FAST)
        with runtime.sessions.begin() as session:
            session.get(Project, project_id).default_model = str(tiny_model_dir)
        assert run_annotation(runtime, project_id, None, settings=FAST).model == str(tiny_model_dir.resolve())
        with runtime.sessions.begin() as session:
            session.add(
                ModelVersion(project_id=project_id, name="shapes-v1", base_model=str(tiny_model_dir), is_serving=True)
            )
        summary = run_annotation(runtime, project_id, None, settings=FAST)
        assert (summary.model, summary.stored) == ("shapes-v1", 2)

    def test_unknown_project_is_a_project_error(self, runtime, tiny_model_dir):
        with pytest.raises(ProjectError, match=r"Project #404 does not exist"):
            run_annotation(runtime, 404, str(tiny_model_dir), settings=FAST)

    def test_model_that_cannot_load_offline_stores_nothing(self, runtime, tmp_path):
        project_id, _ = make_project(runtime, tmp_path, n=1)
        with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
            run_annotation(runtime, project_id, "rise-annotate-tests/missing-model", settings=FAST)
        assert predictions(runtime) == []


def test_build_tiny_command_writes_a_loadable_model(tmp_path):
    result = CliRunner().invoke(cli, ["model", "build-tiny", str(tmp_path / "tiny"), "--hidden-size", "32"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny" / "model.safetensors").is_file()
    from rise.modeling import load_model_and_processor

    model, _ = load_model_and_processor(str(tmp_path / "tiny"), device="cpu")
    assert model.config.text_config.hidden_size == 32


def test_annotate_command_in_a_fresh_offline_process(runtime, tmp_path, tiny_model_dir):
    """The model built in this process is reloaded by path in a new one, with the Hub switched off, and annotates
    generated images into the database."""
    make_project(runtime, tmp_path, n=5)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RISE_DATA_DIR": str(runtime.settings.data_dir),
        "RISE_DATABASE_URL": runtime.settings.database_url,
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [sys.executable, "-m", "app", "annotate", "--project", "shapes", "--model", str(tiny_model_dir)]
    command += ["--batch-size", "4", "--max-new-tokens", "8"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "stored 5 predictions" in done.stdout
    with runtime.sessions.begin() as session:
        rows = session.scalars(select(Prediction)).all()
        assert len(rows) == 5 and all(row.raw_text for row in rows)

    # The folder was recorded by its absolute path, so running again (here, in this process) finds nothing to do.
    again = CliRunner().invoke(cli, command[3:], env={k: env[k] for k in ("RISE_DATA_DIR", "RISE_DATABASE_URL")})
    assert again.exit_code == 0 and "Nothing to annotate" in again.output


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("shapes", ["download it first"]),  # a model that cannot load
        ("nope", ["No project named 'nope' (existing: shapes)", "rise project create nope"]),  # an unknown project
    ],
)
def test_annotate_command_reports_what_stops_it(runtime, tmp_path, project, expected):
    make_project(runtime, tmp_path, n=1)
    env = {"RISE_DATA_DIR": str(runtime.settings.data_dir), "RISE_DATABASE_URL": runtime.settings.database_url}
    result = CliRunner().invoke(cli, ["annotate", "--project", project, "--model", "org/missing"], env=env)
    assert result.exit_code == 1
    assert all(text in result.output for text in expected), result.output

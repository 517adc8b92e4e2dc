"""Shared fixtures. Nothing here reaches the network: the Hub is switched off before transformers is imported."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.runtime import Runtime, open_runtime
from app.settings import load_settings

# Fixture modules under tests/utils/, one per topic.
pytest_plugins = ["tests.utils.pg", "tests.utils.models", "tests.utils.label_studio_server", "tests.utils.browser"]


@pytest.fixture
def runtime(tmp_path, sqlite_template) -> Runtime:
    """A fresh, migrated SQLite database and media folder under `tmp_path`."""
    settings = load_settings({"RISE_DATA_DIR": str(tmp_path / "data")})
    # Start from a copy of the session's migrated database (migrating each test's would cost ~0.3 s), then upgrade,
    # which finds it at head.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, settings.data_dir / "rise.db")
    rt = open_runtime(settings, upgrade=True)
    yield rt
    rt.close()


@pytest.fixture
def sessions(runtime: Runtime) -> sessionmaker[Session]:
    return runtime.sessions

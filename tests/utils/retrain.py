"""A project that can be retrained in seconds on CPU: synthetic one-shape scenes imported through the real import
service, ground truth for every item (some held out), the tiny test model as its base; and pipeline settings that
run every RISE stage for a step or two. Plain functions: no fixtures to register."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.runtime import Runtime
from app.services.imports import import_paths
from app.services.projects import create_project
from db.crud.projects import create_imported_annotation
from db.models import Item, Project, Split, TrainingJob
from rise.synthetic import generate_scene, get_rule
from tests.utils.factories import make_item, make_project

# Every stage runs one or two optimizer steps on the tiny model; short completions keep generation cheap.
# filter.tau=0: an untrained model's reasonings never reconstruct the answer, and SFT needs some to train on.
TINY_PIPELINE = [
    "rise_cot.max_steps=1",
    "rise_cot.num_generations=2",
    "rise_cot.per_device_train_batch_size=2",
    "rise_cot.max_completion_length=8",
    "rise_cot.reconstruction_max_new_tokens=8",
    "filter.tau=0",
    "sft.max_steps=1",
    "sft.per_device_train_batch_size=2",
    "rft.max_steps=1",
    "rft.num_generations=2",
    "rft.per_device_train_batch_size=2",
    "rft.max_completion_length=8",
    "rft.overlong_buffer=0",
    "evaluation.max_new_tokens=8",
]
# A slow pipeline for tests that must catch a job mid-stage: RISE-CoT runs until stopped.
SLOW_PIPELINE = [*TINY_PIPELINE, "rise_cot.max_steps=100000"]


def make_ready_project(session: Session, name: str = "shapes", *, eval_answers: bool = True) -> Project:
    """A project with a base model, trusted answers on two training items and (optionally) one held-out item."""
    project = make_project(session, name=name)
    project.default_model = "org/base-model"
    for seed, split in enumerate([Split.train, Split.train, Split.eval]):
        item = make_item(session, project, seed=seed, split=split)
        if split is Split.train or eval_answers:
            create_imported_annotation(session=session, item_id=item.id, answer="circle")
    session.flush()
    return project


@dataclass
class TrainableProject:
    name: str
    project_id: int
    train_item_ids: list[int]
    eval_item_ids: list[int]


def make_trainable_project(
    runtime: Runtime, tmp_path: Path, model_dir: Path, *, name: str = "shapes", n_train: int = 4, n_eval: int = 2
) -> TrainableProject:
    """A classification project ("which shape?") with `n_train` + `n_eval` imported scenes, each with its ground
    truth as an imported annotation; the last `n_eval` are held out. `model_dir` becomes the default model."""
    rule = get_rule("shape")
    folder = tmp_path / f"{name}-images"
    folder.mkdir(parents=True, exist_ok=True)
    labels: dict[str, str] = {}
    for seed in range(n_train + n_eval):
        scene = generate_scene(seed, rule.scene_config())
        path = folder / f"scene_{seed:03d}.png"
        scene.image.save(path)
        labels[str(path)] = rule.label(scene)
    project_id = create_project(runtime, name, "classification", list(rule.labels)).id
    summary = import_paths(runtime, project_id, sorted(labels))
    ids = [summary.item_ids[path] for path in sorted(labels)]
    with runtime.sessions.begin() as session:
        project = session.get(Project, project_id)
        project.default_model = str(model_dir)
        held_out = ids[n_train:]
        session.execute(update(Item).where(Item.project_id == project.id).values(split=Split.train))
        session.execute(update(Item).where(Item.id.in_(held_out)).values(split=Split.eval))
        for path, item_id in zip(sorted(labels), ids, strict=True):
            create_imported_annotation(session=session, item_id=item_id, answer=labels[path])
    return TrainableProject(name, project_id, ids[:n_train], ids[n_train:])


def start_worker_process(
    data_dir: Path, *args: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`rise worker ARGS` as a real process on the database under `data_dir`, output to `log_path`."""
    env = {**os.environ, "RISE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log = log_path.open("ab")
    command = [sys.executable, "-c", "from app.cli import main; main()", "worker", *args]
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        log.close()


def wait_for_job(runtime: Runtime, job_id: int, condition, timeout: float, what: str) -> TrainingJob:
    """Poll the job row until `condition(job)` holds; fail with `what` and the row's state after `timeout` s."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            job = session.get(TrainingJob, job_id)
            if job is not None and condition(job):
                return job
        time.sleep(0.2)
    state = f"status={job.status}, stage={job.stage!r}, step={job.step}, log tail:\n{job.log[-3000:]}" if job else ""
    raise AssertionError(f"job #{job_id}: timed out after {timeout} s waiting for {what}; {state}")

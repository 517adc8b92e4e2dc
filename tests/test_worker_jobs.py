"""The worker running real jobs on the tiny model: a re-annotation by a registered version, a cancel in the middle
of training, and an unusable accelerate launcher falling back to `python -m` (whose pipeline then fails cleanly)."""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.services import jobs as job_service
from app.services import model_versions as version_service
from app.worker.loop import Worker, WorkerConfig
from db.crud.model_versions import create_model_version
from db.models import Annotation, Prediction
from tests.utils.retrain import SLOW_PIPELINE, TINY_PIPELINE, make_trainable_project, wait_for_job


def test_reannotation_job_stores_predictions_of_the_serving_version(runtime, tmp_path, tiny_model_dir):
    project = make_trainable_project(runtime, tmp_path, tiny_model_dir, n_train=4, n_eval=1)
    with runtime.sessions.begin() as session:
        # Two items lose their ground truth: they are the unreviewed ones to annotate.
        for annotation in session.scalars(
            select(Annotation).where(Annotation.item_id.in_(project.train_item_ids[:2]))
        ):
            session.delete(annotation)
        version = create_model_version(
            session=session, project_id=project.project_id, name="shapes-v7", base_model=str(tiny_model_dir)
        )
        version_id = version.id
    version_service.promote_version(runtime, project.project_id, version_id)
    job = job_service.request_reannotation(runtime, project.project_id, max_new_tokens=8)

    Worker(runtime, WorkerConfig(lease_seconds=30, check_policies=False)).run(max_jobs=1)

    view = job_service.get_job(runtime, job.id)
    assert view.status == "succeeded", view.log
    assert (view.step, view.total_steps, view.progress) == (2, 2, 1.0)
    with runtime.sessions() as session:
        predictions = session.scalars(select(Prediction)).all()
    assert sorted(p.item_id for p in predictions) == sorted(project.train_item_ids[:2])
    assert {(p.model_version_id, p.model_name) for p in predictions} == {(version_id, "shapes-v7")}


def test_cancel_stops_training_midway_and_registers_nothing(runtime, tmp_path, tiny_model_dir):
    project = make_trainable_project(runtime, tmp_path, tiny_model_dir)
    job = job_service.request_retrain(runtime, project.project_id, overrides=SLOW_PIPELINE, launcher="python")
    worker = Worker(runtime, WorkerConfig(lease_seconds=30, check_policies=False, grace_seconds=5))
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    try:
        wait_for_job(runtime, job.id, lambda j: j.stage == "rise_cot" and j.step >= 1, 120, "a RISE-CoT step")
        job_service.cancel_job(runtime, job.id)
        thread.join(timeout=60)
        assert not thread.is_alive(), "the worker did not stop the job"
    finally:
        worker.stop.set()
        thread.join(timeout=60)

    view = job_service.get_job(runtime, job.id)
    assert view.status == "cancelled" and view.error == "Cancelled by an admin."
    assert view.metrics["curves"]["rise_cot"]["reward"], "no reward was streamed before the cancel"
    assert "[supervise] stopping" in view.log and "asked to stop" in view.log
    assert version_service.list_versions(runtime, project.project_id) == []


def test_unusable_accelerate_falls_back_to_python_and_a_failing_pipeline_fails_the_job(runtime, tmp_path):
    # The base model does not exist, so the pipeline itself fails at its first stage, after the fallback.
    project = make_trainable_project(runtime, tmp_path, tmp_path / "no-such-model")
    job = job_service.request_retrain(
        runtime,
        project.project_id,
        overrides=TINY_PIPELINE,
        accelerate_config=str(tmp_path / "missing-accelerate.yaml"),
    )

    Worker(runtime, WorkerConfig(lease_seconds=30, check_policies=False)).run(max_jobs=1)

    view = job_service.get_job(runtime, job.id)
    assert view.status == "failed"
    assert "exited with code" in view.error and "rise_cot" in view.error
    assert "accelerate launch exited with code" in view.log and "trying python -m" in view.log
    assert "missing-accelerate.yaml" in view.log  # accelerate's own complaint is in the log
    assert version_service.list_versions(runtime, project.project_id) == []


def test_worker_shutdown_puts_the_running_job_back_in_the_queue(runtime, tmp_path, tiny_model_dir):
    project = make_trainable_project(runtime, tmp_path, tiny_model_dir, n_train=2, n_eval=1)
    with runtime.sessions.begin() as session:
        version = create_model_version(
            session=session, project_id=project.project_id, name="shapes-v7", base_model=str(tiny_model_dir)
        )
        version_id = version.id
    job = job_service.request_reannotation(runtime, project.project_id, version_id=version_id)
    worker = Worker(runtime, WorkerConfig(lease_seconds=30, check_policies=False))
    claimed = worker.claim()
    worker.stop.set()  # SIGTERM arrived: the job's first heartbeat sees it

    assert worker.execute(claimed) == "queued"

    view = job_service.get_job(runtime, job.id)
    assert (view.status, view.attempts, view.worker_id) == ("queued", 0, None)
    assert "the worker is stopping; the job goes back to the queue" in view.log

"""The periodic retraining policy: after the N-th new verdict exactly one job is queued, however often (and by how
many workers at once) the policy is checked; the next one waits for N more; schedules need new verdicts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from app.services import jobs as job_service
from app.services import retrain_policy as policy
from app.services.review import next_task, submit_verdict
from app.worker.loop import Worker, WorkerConfig
from db.crud.projects import create_imported_annotation
from db.models import Split, TrainingJob, utcnow
from tests.utils.factories import make_item
from tests.utils.review_factories import make_classification_queue, make_reviewer


@pytest.fixture
def reviewed(db_runtime):
    """Project "shapes" (8 predicted items, a base model, one held-out item with ground truth) and a reviewer id."""
    with db_runtime.sessions.begin() as session:
        project, _ = make_classification_queue(session, 8)
        project.default_model = "org/base-model"
        held_out = make_item(session, project, seed=100, split=Split.eval)
        create_imported_annotation(session=session, item_id=held_out.id, answer="circle")
        reviewer = make_reviewer(session, "ada")
        ids = (project.id, reviewer.id)
    return db_runtime, *ids


def give_verdicts(runtime, project_id: int, user_id: int, count: int) -> None:
    for _ in range(count):
        task = next_task(runtime, project_id=project_id, user_id=user_id)
        assert task is not None, "the review queue ran dry"
        submit_verdict(runtime, user_id=user_id, item_id=task.item_id, verdict="accept")


def train_jobs(runtime) -> list[job_service.JobView]:
    return job_service.list_jobs(runtime, kind="train")


def test_exactly_one_job_is_queued_after_the_nth_verdict(reviewed):
    runtime, project_id, user_id = reviewed
    policy.set_retrain_policy(runtime, project_id, every_verdicts=3, every_hours=None)
    worker = Worker(runtime, WorkerConfig(lease_seconds=30))

    for verdicts_so_far in (1, 2):
        give_verdicts(runtime, project_id, user_id, 1)
        worker.queue_policies()  # what `rise worker` does between jobs
        assert train_jobs(runtime) == [], f"queued after only {verdicts_so_far} verdicts"

    give_verdicts(runtime, project_id, user_id, 1)  # the third
    for _ in range(3):
        worker.queue_policies()
    jobs = train_jobs(runtime)
    assert len(jobs) == 1
    assert jobs[0].status == "queued" and jobs[0].config["reason"].startswith("policy: 3 new verdicts")

    give_verdicts(runtime, project_id, user_id, 3)  # more verdicts while the job waits: still one job
    worker.queue_policies()
    assert len(train_jobs(runtime)) == 1
    assert policy.policy_status(runtime, project_id).reason == f"job #{jobs[0].id} is queued"


def test_next_job_waits_for_n_verdicts_after_the_previous_one(reviewed):
    runtime, project_id, user_id = reviewed
    policy.set_retrain_policy(runtime, project_id, every_verdicts=2, every_hours=None)
    give_verdicts(runtime, project_id, user_id, 2)
    first = policy.queue_due_retraining(runtime).queued[0]
    job_service.cancel_job(runtime, first.id)  # it ended (any end counts)

    give_verdicts(runtime, project_id, user_id, 1)
    assert policy.queue_due_retraining(runtime).queued == []
    give_verdicts(runtime, project_id, user_id, 1)
    second = policy.queue_due_retraining(runtime).queued
    assert len(second) == 1 and second[0].id != first.id


def test_concurrent_checks_queue_one_job(reviewed):
    runtime, project_id, user_id = reviewed
    policy.set_retrain_policy(runtime, project_id, every_verdicts=1, every_hours=None)
    give_verdicts(runtime, project_id, user_id, 1)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def check() -> None:
        try:
            barrier.wait()
            policy.queue_due_retraining(runtime)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # On SQLite a writer may lose its snapshot to another and fail; it must never queue a second job.
    assert all("locked" in str(e) or "database" in str(e).lower() for e in errors), errors
    assert len(train_jobs(runtime)) == 1


def test_policy_job_repeats_the_latest_jobs_settings(reviewed):
    runtime, project_id, user_id = reviewed
    give_verdicts(runtime, project_id, user_id, 1)
    manual = job_service.request_retrain(runtime, project_id, overrides=["rft.max_steps=7"], launcher="python")
    job_service.cancel_job(runtime, manual.id)
    policy.set_retrain_policy(runtime, project_id, every_verdicts=1, every_hours=None)
    give_verdicts(runtime, project_id, user_id, 1)

    (job,) = policy.queue_due_retraining(runtime).queued
    assert job.config["overrides"] == ["rft.max_steps=7"] and job.config["launcher"] == "python"


def test_policy_job_takes_the_project_defaults_of_the_day_not_those_of_the_last_job(reviewed):
    runtime, project_id, user_id = reviewed
    give_verdicts(runtime, project_id, user_id, 1)
    job_service.set_retrain_settings(runtime, project_id, ["sft.max_steps=40"])
    manual = job_service.request_retrain(runtime, project_id, overrides=["rft.max_steps=7"])
    assert manual.config["overrides"] == ["sft.max_steps=40", "rft.max_steps=7"]
    job_service.cancel_job(runtime, manual.id)
    job_service.set_retrain_settings(runtime, project_id, ["sft.max_steps=60"])
    policy.set_retrain_policy(runtime, project_id, every_verdicts=1, every_hours=None)
    give_verdicts(runtime, project_id, user_id, 1)

    (job,) = policy.queue_due_retraining(runtime).queued
    assert job.config["overrides"] == ["sft.max_steps=60", "rft.max_steps=7"]


def test_schedule_fires_only_with_new_verdicts(reviewed):
    runtime, project_id, user_id = reviewed
    policy.set_retrain_policy(runtime, project_id, every_verdicts=None, every_hours=2)
    later = utcnow() + timedelta(hours=3)

    assert not policy.policy_status(runtime, project_id, now=later).due  # nothing reviewed yet
    give_verdicts(runtime, project_id, user_id, 1)
    assert not policy.policy_status(runtime, project_id).due  # too early
    assert policy.policy_status(runtime, project_id, now=later).due
    (job,) = policy.queue_due_retraining(runtime, now=later).queued
    with runtime.sessions.begin() as session:
        session.get(TrainingJob, job.id).created_at = utcnow()
    job_service.cancel_job(runtime, job.id)
    assert not policy.policy_status(runtime, project_id, now=utcnow() + timedelta(hours=1)).due


def test_due_project_that_cannot_train_is_reported_not_raised(db_runtime):
    with db_runtime.sessions.begin() as session:
        project, _ = make_classification_queue(session, 3)  # no base model, nothing held out
        reviewer = make_reviewer(session, "ada")
        ids = (project.id, reviewer.id)
    policy.set_retrain_policy(db_runtime, ids[0], every_verdicts=1, every_hours=None)
    give_verdicts(db_runtime, *ids, 1)

    result = policy.queue_due_retraining(db_runtime)

    assert result.queued == [] and result.skipped[0][0] == "shapes"
    assert "base model" in result.skipped[0][1]


@pytest.mark.parametrize(
    ("verdicts", "hours", "message"),
    [(0, None, "at least 1 new verdict"), (None, -1.0, "positive number of hours")],
)
def test_bad_policy_values_are_refused(reviewed, verdicts, hours, message):
    runtime, project_id, _ = reviewed
    with pytest.raises(policy.PolicyError, match=message):
        policy.set_retrain_policy(runtime, project_id, every_verdicts=verdicts, every_hours=hours)

"""The job queue on SQLite and PostgreSQL: requests are checked before anything is queued, one active training job
per project, claims with a lease, heartbeats that only the owner can write, cancellation, and recovery of jobs
whose worker stopped renewing its lease."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.services import jobs as job_service
from app.services.jobs import ActiveJobExistsError, JobRequestError
from db.crud import jobs as crud
from db.models import JobKind, JobStatus, Project, TrainingJob, utcnow
from tests.utils.retrain import make_ready_project

LEASE = timedelta(seconds=30)


@pytest.fixture
def shapes(db_runtime) -> int:
    """The id of a project ready to retrain ("shapes")."""
    with db_runtime.sessions.begin() as session:
        return make_ready_project(session).id


@pytest.fixture
def ready(db_runtime, shapes):
    """The runtime, with the `shapes` project."""
    return db_runtime


class TestRequestRetrain:
    def test_request_queues_a_job_with_everything_the_worker_needs(self, ready, shapes):
        job = job_service.request_retrain(
            ready, shapes, overrides=["rft.max_steps=5", " "], launcher="python", max_attempts=2
        )

        assert job.status == "queued" and job.kind == "train" and job.project == "shapes"
        assert job.config["model"] == "org/base-model"  # the project's default model
        assert job.config["overrides"] == ["rft.max_steps=5"]  # blank lines dropped
        assert (job.config["launcher"], job.config["max_attempts"]) == ("python", 2)

    def test_project_defaults_come_first_and_the_request_goes_on_top(self, ready, shapes):
        saved = job_service.set_retrain_settings(ready, shapes, ["sft.max_steps=40", "rft.max_steps=8", ""])
        assert saved == ["sft.max_steps=40", "rft.max_steps=8"]

        job = job_service.request_retrain(ready, shapes, overrides=["rft.max_steps=5"])
        assert job.config["overrides"] == ["sft.max_steps=40", "rft.max_steps=8", "rft.max_steps=5"]
        assert job.config["promotion_min_items"] == job_service.DEFAULT_PROMOTION_MIN_ITEMS

    def test_bad_project_defaults_are_refused_and_nothing_is_saved(self, ready, shapes):
        with pytest.raises(JobRequestError, match="unknown field 'nope'"):
            job_service.set_retrain_settings(ready, shapes, ["sft.nope=1"])
        with ready.sessions() as session:
            assert session.scalars(select(Project.retrain_settings)).one() == []

    def test_second_request_while_one_is_queued_is_refused(self, ready, shapes):
        first = job_service.request_retrain(ready, shapes)

        with pytest.raises(ActiveJobExistsError, match=f"job #{first.id}"):
            job_service.request_retrain(ready, shapes)
        assert len(job_service.list_jobs(ready, shapes)) == 1

    def test_database_refuses_a_second_active_training_job_even_past_the_check(self, ready):
        # Two requests racing past the service's check: the partial unique index still lets only one in.
        with ready.sessions.begin() as session:
            project_id = session.scalars(select(Project.id)).one()
            crud.create_job(session=session, project_id=project_id, kind=JobKind.train, config={})
            with pytest.raises(ActiveJobExistsError):
                crud.create_job(session=session, project_id=project_id, kind=JobKind.train, config={})
            # The savepoint kept the transaction usable: an annotation job still goes in.
            crud.create_job(session=session, project_id=project_id, kind=JobKind.annotate, config={})
        with ready.sessions() as session:
            assert session.query(TrainingJob).count() == 2

    def test_a_finished_job_does_not_block_the_next(self, ready, shapes):
        first = job_service.request_retrain(ready, shapes)
        job_service.cancel_job(ready, first.id)

        second = job_service.request_retrain(ready, shapes)
        assert second.id != first.id and second.status == "queued"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"overrides": ["rft.no_such_field=1"]}, "unknown field 'no_such_field'"),
            ({"overrides": ["rft.max_steps=0"]}, "max_steps"),
            ({"launcher": "slurm"}, "Unknown launcher 'slurm'"),
            ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ],
    )
    def test_bad_settings_are_refused_before_queueing(self, ready, shapes, kwargs, message):
        with pytest.raises(JobRequestError, match=message):
            job_service.request_retrain(ready, shapes, **kwargs)
        assert job_service.list_jobs(ready, shapes) == []

    def test_project_without_held_out_answers_is_refused_with_the_fix(self, db_runtime):
        with db_runtime.sessions.begin() as session:
            project_id = make_ready_project(session, eval_answers=False).id

        with pytest.raises(JobRequestError, match="no held-out item with a trusted answer"):
            job_service.request_retrain(db_runtime, project_id)

    def test_project_without_a_base_model_needs_one_named(self, db_runtime):
        with db_runtime.sessions.begin() as session:
            project = make_ready_project(session)
            project.default_model = None

        with pytest.raises(JobRequestError, match="no base model"):
            job_service.request_retrain(db_runtime, project.id)
        job = job_service.request_retrain(db_runtime, project.id, model="/models/tiny")
        assert job.config["model"] == "/models/tiny"

    def test_unknown_project_is_refused(self, db_runtime):
        with pytest.raises(JobRequestError, match="Project #404 does not exist"):
            job_service.request_retrain(db_runtime, 404)


def claim(runtime, worker_id: str = "w1", lease: timedelta = LEASE, **kwargs):
    with runtime.sessions.begin() as session:
        job = crud.claim_next_job(session=session, worker_id=worker_id, lease=lease, **kwargs)
        return None if job is None else (job.id, job.status, job.worker_id, job.attempts, job.lease_expires_at)


class TestClaim:
    def test_claim_takes_the_oldest_job_with_a_lease_and_counts_the_attempt(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes)
        before = utcnow()

        job_id, status, worker, attempts, lease_end = claim(ready)

        assert (job_id, status, worker, attempts) == (job.id, JobStatus.running, "w1", 1)
        assert lease_end >= before + LEASE - timedelta(seconds=1)
        assert claim(ready, "w2") is None  # nothing left

    def test_claim_only_takes_the_kinds_asked_for(self, ready, shapes):
        job_service.request_retrain(ready, shapes)

        assert claim(ready, kinds=[JobKind.annotate]) is None
        assert claim(ready, kinds=[JobKind.train]) is not None

    @pytest.mark.postgres
    def test_postgres_workers_claim_different_jobs_without_waiting(self, postgres_url, tmp_path):
        # Two transactions claim at the same moment; SKIP LOCKED hands the second the other job instead of blocking.
        from app.runtime import open_runtime
        from app.settings import load_settings
        from db import migrate

        migrate.upgrade(postgres_url)
        runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(tmp_path), "RISE_DATABASE_URL": postgres_url}))
        try:
            with runtime.sessions.begin() as session:
                projects = [make_ready_project(session, name).id for name in ("a", "b")]
            for project_id in projects:
                job_service.request_retrain(runtime, project_id)
            first = runtime.sessions()
            first.begin()
            claimed_first = crud.claim_next_job(session=first, worker_id="w1", lease=LEASE)
            result: dict = {}

            def second_worker() -> None:
                with runtime.sessions.begin() as session:
                    job = crud.claim_next_job(session=session, worker_id="w2", lease=LEASE)
                    result["id"] = job.id if job else None

            thread = threading.Thread(target=second_worker)
            thread.start()
            thread.join(timeout=10)
            assert not thread.is_alive(), "the second claim waited for the first transaction's row lock"
            first.commit()
            first.close()
            assert result["id"] is not None and result["id"] != claimed_first.id
        finally:
            runtime.close()


class TestHeartbeatAndFinish:
    def test_owner_renews_the_lease_and_writes_progress(self, ready, shapes):
        job_service.request_retrain(ready, shapes)
        job_id, *_ = claim(ready, lease=timedelta(seconds=5))
        with ready.sessions.begin() as session:
            beat = crud.heartbeat(
                session=session, job_id=job_id, worker_id="w1", lease=timedelta(minutes=5), stage="sft", step=3
            )
        assert beat.owned and not beat.cancel_requested
        view = job_service.get_job(ready, job_id)
        assert (view.stage, view.step) == ("sft", 3)
        with ready.sessions() as session:
            assert session.get(TrainingJob, job_id).lease_expires_at > utcnow() + timedelta(minutes=4)

    def test_another_worker_can_neither_beat_nor_finish_the_job(self, ready, shapes):
        job_service.request_retrain(ready, shapes)
        job_id, *_ = claim(ready)
        with ready.sessions.begin() as session:
            beat = crud.heartbeat(session=session, job_id=job_id, worker_id="w2", lease=LEASE, step=99)
            finished = crud.finish_job(session=session, job_id=job_id, worker_id="w2", status=JobStatus.failed)
        assert not beat.owned and not finished
        view = job_service.get_job(ready, job_id)
        assert (view.status, view.step) == ("running", 0)

    def test_finish_needs_a_final_status(self, ready, shapes):
        job_service.request_retrain(ready, shapes)
        job_id, *_ = claim(ready)
        with ready.sessions.begin() as session, pytest.raises(ValueError, match="final status"):
            crud.finish_job(session=session, job_id=job_id, worker_id="w1", status=JobStatus.queued)

    def test_released_job_goes_back_to_the_queue_without_using_an_attempt(self, ready, shapes):
        job_service.request_retrain(ready, shapes)
        job_id, *_ = claim(ready)
        with ready.sessions.begin() as session:
            assert crud.release_job(session=session, job_id=job_id, worker_id="w1", note="\nworker stopping")
        view = job_service.get_job(ready, job_id)
        assert (view.status, view.attempts, view.worker_id) == ("queued", 0, None)
        assert "worker stopping" in view.log


class TestCancel:
    def test_queued_job_is_cancelled_at_once(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes)

        view = job_service.cancel_job(ready, job.id)

        assert view.status == "cancelled" and view.finished_at is not None
        assert claim(ready) is None

    def test_running_job_gets_the_request_at_its_next_heartbeat(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes)
        claim(ready)

        view = job_service.cancel_job(ready, job.id)
        with ready.sessions.begin() as session:
            beat = crud.heartbeat(session=session, job_id=job.id, worker_id="w1", lease=LEASE)

        assert view.status == "running" and view.cancel_requested
        assert beat.owned and beat.cancel_requested

    def test_unknown_job_is_an_error(self, ready):
        with pytest.raises(JobRequestError, match="No job #999"):
            job_service.cancel_job(ready, 999)


class TestRecovery:
    def expire(self, runtime, job_id: int) -> None:
        with runtime.sessions.begin() as session:
            session.get(TrainingJob, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)

    def recover(self, runtime, max_attempts: int = 3):
        with runtime.sessions.begin() as session:
            return crud.recover_expired_jobs(session=session, max_attempts=max_attempts)

    def test_expired_job_is_queued_again_and_the_next_worker_gets_it(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes, max_attempts=3)
        claim(ready, "dead-worker")
        self.expire(ready, job.id)

        recovered = self.recover(ready)

        assert [(r.job_id, r.worker_id, r.requeued) for r in recovered] == [(job.id, "dead-worker", True)]
        view = job_service.get_job(ready, job.id)
        assert (view.status, view.worker_id) == ("queued", None)
        assert "dead-worker stopped renewing its lease" in view.log
        assert claim(ready, "w2")[:4] == (job.id, JobStatus.running, "w2", 2)

    def test_job_out_of_attempts_fails_with_the_reason(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes, max_attempts=1)
        claim(ready, "dead-worker")
        self.expire(ready, job.id)

        recovered = self.recover(ready, max_attempts=5)  # the job's own max_attempts wins

        assert [r.requeued for r in recovered] == [False]
        view = job_service.get_job(ready, job.id)
        assert view.status == "failed" and "no attempts left" in view.error
        assert view.finished_at is not None

    def test_a_live_lease_is_left_alone(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes)
        claim(ready)

        assert self.recover(ready) == []
        assert job_service.get_job(ready, job.id).status == "running"

    def test_expired_job_with_a_cancel_request_ends_cancelled(self, ready, shapes):
        job = job_service.request_retrain(ready, shapes)
        claim(ready)
        job_service.cancel_job(ready, job.id)
        self.expire(ready, job.id)

        self.recover(ready)

        assert job_service.get_job(ready, job.id).status == "cancelled"

"""Model versions: a finished job registers exactly one version (and the base model's, once), it serves only if it
is not worse than the serving model on the same held-out items, and admins promote and roll back any version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.services import jobs as job_service
from app.services import model_versions as service
from app.services.model_versions import LostLeaseError, TrainingOutcome, VersionError, decide_promotion
from db.crud import jobs as job_crud
from db.models import JobKind, ModelVersion, Project
from tests.utils.retrain import make_ready_project


def run_job(runtime, worker_id: str = "w1") -> int:
    """Queue and claim a retraining of the one project ("shapes"); its id."""
    with runtime.sessions() as session:
        project_id = session.scalars(select(Project.id)).one()
    job = job_service.request_retrain(runtime, project_id)
    with runtime.sessions.begin() as session:
        claimed = job_crud.claim_next_job(
            session=session, worker_id=worker_id, lease=timedelta(minutes=1), kinds=[JobKind.train]
        )
        assert claimed.id == job.id
    return job.id


def outcome(accuracy: float, base_accuracy: float | None = 0.5, items: int = 40, **kwargs) -> TrainingOutcome:
    return TrainingOutcome(
        base_model="org/base-model",
        model_path="org/base-model",
        adapter_path="/runs/job/rft/final",
        data_snapshot="/runs/job/data",
        eval_metrics={"items": items, "accuracy": accuracy, "ci95": {"accuracy": [accuracy - 0.1, accuracy + 0.1]}},
        eval_report="/runs/job/evaluate/rise.json",
        base_metrics=None if base_accuracy is None else {"items": items, "accuracy": base_accuracy},
        **kwargs,
    )


def finish_job(runtime, accuracy: float, **kwargs) -> service.Registration:
    job_id = run_job(runtime)
    return service.register_training_result(
        runtime, job_id=job_id, worker_id="w1", outcome=outcome(accuracy, **kwargs), log="done\n"
    )


@pytest.fixture
def shapes(db_runtime) -> int:
    """The id of a project ready to retrain ("shapes")."""
    with db_runtime.sessions.begin() as session:
        return make_ready_project(session).id


@pytest.fixture
def ready(db_runtime, shapes):
    """The runtime, with the `shapes` project."""
    return db_runtime


class TestDecidePromotion:
    def test_equal_score_is_not_worse(self):
        assert decide_promotion({"accuracy": 0.5}, {"accuracy": 0.5}, "accuracy").promote

    def test_worse_score_within_tolerance_still_promotes(self):
        assert decide_promotion({"accuracy": 0.45}, {"accuracy": 0.5}, "accuracy", tolerance=0.1).promote

    def test_worse_score_does_not_promote(self):
        decision = decide_promotion({"accuracy": 0.4}, {"accuracy": 0.5}, "accuracy")
        assert not decision.promote and "worse" in decision.reason

    def test_missing_candidate_score_never_promotes(self):
        assert not decide_promotion({"items": 3}, {"accuracy": 0.5}, "accuracy").promote

    def test_a_slice_below_the_minimum_never_promotes_automatically(self):
        decision = decide_promotion({"items": 12, "accuracy": 0.9}, {"accuracy": 0.5}, "accuracy", min_items=20)
        assert not decision.promote and decision.candidate == 0.9
        assert "12 items, fewer than the 20" in decision.reason and "an admin can promote it" in decision.reason
        assert decide_promotion({"items": 20, "accuracy": 0.9}, {"accuracy": 0.5}, "accuracy", min_items=20).promote

    def test_unknown_serving_score_does_not_promote_automatically(self):
        decision = decide_promotion({"accuracy": 0.9}, None, "accuracy")
        assert not decision.promote and "same held-out items" in decision.reason

    @pytest.mark.parametrize(
        ("task", "distribution", "metric"),
        [
            ("classification", False, "accuracy"),
            ("classification", True, "distribution_score"),
            ("detection", False, "map50"),
            ("grounding", False, "mean_iou"),
        ],
    )
    def test_primary_metric_per_task(self, task, distribution, metric):
        assert service.primary_metric(task, distribution) == metric


class TestRegistration:
    def test_first_version_registers_the_base_model_and_serves_when_not_worse(self, ready, shapes):
        registration = finish_job(ready, accuracy=0.5)

        versions = service.list_versions(ready, shapes)
        assert [v.name for v in versions] == ["shapes-v1", "shapes-base"]
        new, base = versions
        assert new.is_serving and not base.is_serving
        assert (new.parent_name, new.adapter_path) == ("shapes-base", "/runs/job/rft/final")
        assert new.data_snapshot == "/runs/job/data"
        assert new.score == 0.5 and base.score == 0.5
        assert new.metrics["compared_with"]["name"] == "shapes-base"
        assert registration.decision.promote and registration.reannotation_job_id is not None
        job = job_service.get_job(ready, new.job_id)
        assert (job.status, job.progress, job.log) == ("succeeded", 1.0, "done\n")
        reannotation = job_service.get_job(ready, registration.reannotation_job_id)
        assert (reannotation.kind, reannotation.config["version_id"]) == ("annotate", new.id)

    def test_scores_show_their_slice_and_interval(self, ready, shapes):
        finish_job(ready, accuracy=0.5)
        new, base = service.list_versions(ready, shapes)
        assert (new.score_items, new.score_interval) == (40, (0.4, 0.6))
        assert new.score_text == "accuracy 0.5000 [0.40–0.60] on 40 items"
        assert base.score_text == "accuracy 0.5000 on 40 items"  # a score without an interval says so by omission

    def test_small_slice_registers_without_promoting_and_an_admin_can_promote(self, ready, shapes):
        registration = finish_job(ready, accuracy=0.9, items=8)  # the job's default minimum is 20
        assert not registration.decision.promote and registration.reannotation_job_id is None
        assert "8 items, fewer than the 20" in registration.version.metrics["promotion"]["reason"]
        assert service.serving_version(ready, shapes) is None
        assert service.promote_version(ready, shapes, registration.version.name).is_serving

    def test_worse_version_is_registered_but_the_serving_one_stays(self, ready, shapes):
        first = finish_job(ready, accuracy=0.6)
        # The next job's evaluation scored the serving version on its own held-out items.
        second = finish_job(
            ready, accuracy=0.4, compared_version_id=first.version.id, compared_metrics={"accuracy": 0.7}
        )

        assert not second.decision.promote and second.reannotation_job_id is None
        assert second.decision.current == 0.7  # compared with the serving version on the same items, not its old score
        serving = service.serving_version(ready, shapes)
        assert serving.id == first.version.id
        assert second.version.parent_id == first.version.id

    def test_version_not_compared_with_the_serving_one_does_not_replace_it(self, ready, shapes):
        first = finish_job(ready, accuracy=0.6)
        # The job compared against the base model's version, but an admin promoted v1 meanwhile.
        second = finish_job(ready, accuracy=0.9, compared_version_id=None)

        assert not second.decision.promote
        assert service.serving_version(ready, shapes).id == first.version.id

    def test_worker_that_lost_the_job_registers_nothing(self, ready, shapes):
        job_id = run_job(ready, worker_id="w1")
        with pytest.raises(LostLeaseError):
            service.register_training_result(ready, job_id=job_id, worker_id="w2", outcome=outcome(0.9), log="")

        assert service.list_versions(ready, shapes) == []
        assert job_service.get_job(ready, job_id).status == "running"

    def test_job_tolerance_and_reannotate_settings_apply(self, ready, shapes):
        job = job_service.request_retrain(
            ready, shapes, promotion_tolerance=0.2, promotion_min_items=4, reannotate=False
        )
        with ready.sessions.begin() as session:
            job_crud.claim_next_job(session=session, worker_id="w1", lease=timedelta(minutes=1))
        registration = service.register_training_result(
            ready, job_id=job.id, worker_id="w1", outcome=outcome(0.35, base_accuracy=0.5, items=4), log=""
        )
        assert registration.decision.promote and registration.reannotation_job_id is None


class TestPromoteAndRollback:
    def test_admin_promotes_any_version_and_rolls_back(self, ready, shapes):
        v1 = finish_job(ready, accuracy=0.6).version
        v2 = finish_job(ready, accuracy=0.7, compared_version_id=v1.id, compared_metrics={"accuracy": 0.6}).version
        assert service.serving_version(ready, shapes).id == v2.id

        service.promote_version(ready, shapes, "shapes-base")
        assert service.serving_version(ready, shapes).name == "shapes-base"

        rolled = service.rollback(ready, shapes)
        assert rolled.id == v2.id  # the one that served before the base model
        promoted = service.promote_version(ready, shapes, str(v1.id), reannotate=True)
        assert promoted.is_serving
        jobs = job_service.list_jobs(ready, shapes)
        assert jobs[0].kind == "annotate" and jobs[0].config["version_id"] == v1.id

    def test_rollback_without_history_goes_to_the_base_model(self, ready, shapes):
        finish_job(ready, accuracy=0.6)

        assert service.rollback(ready, shapes).name == "shapes-base"

    def test_rollback_with_nothing_serving_is_an_error(self, ready, shapes):
        with pytest.raises(VersionError, match="nothing to roll back"):
            service.rollback(ready, shapes)

    def test_unknown_version_is_an_error(self, ready, shapes):
        with pytest.raises(VersionError, match="no model version 'v9'") as raised:
            service.promote_version(ready, shapes, "v9")
        assert raised.value.setting == "model_version" and "rise" not in str(raised.value)

    def test_database_allows_one_serving_version_per_project(self, ready):
        finish_job(ready, accuracy=0.6)
        with pytest.raises(IntegrityError), ready.sessions.begin() as session:
            for version in session.scalars(select(ModelVersion)):
                version.is_serving = True
        with ready.sessions() as session:
            assert len(session.scalars(select(ModelVersion).where(ModelVersion.is_serving)).all()) == 1

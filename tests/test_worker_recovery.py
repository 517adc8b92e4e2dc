"""A worker killed with SIGKILL in the middle of training: its training process dies with it, the job stays the
dead worker's until the lease expires, then a new worker recovers it and resumes after the last finished stage; the
serving version never changes until the job has finished, and the database ends consistent."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

from sqlalchemy import select

from app.services import jobs as job_service
from app.services import model_versions as version_service
from db.crud.model_versions import create_model_version
from db.models import JobStatus, ModelVersion, TrainingJob, utcnow
from tests.utils.retrain import TINY_PIPELINE, make_trainable_project, start_worker_process, wait_for_job

LEASE_SECONDS = 3
# SFT runs for 8 seconds (not a fixed number of steps), so the test can catch the worker in the middle of it.
PIPELINE = [*TINY_PIPELINE, "sft.max_steps=100000", "sft.max_seconds=8"]


def _pid_alive(pid: int) -> bool:
    stat = f"/proc/{pid}/stat"
    if not os.path.exists(stat):
        return False
    with open(stat) as handle:
        return handle.read().split()[2] not in ("Z", "X")


class ServingWatch:
    """Samples (job status, serving version id) every 0.1 s in a thread until stopped."""

    def __init__(self, runtime, job_id: int):
        self.runtime, self.job_id = runtime, job_id
        self.samples: list[tuple[str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.runtime.sessions() as session:
                status = session.get(TrainingJob, self.job_id).status.value
                serving = session.scalars(select(ModelVersion.id).where(ModelVersion.is_serving)).all()
            self.samples.append((status, serving[0] if len(serving) == 1 else None))
            time.sleep(0.1)

    def stop(self) -> list[tuple[str, int | None]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def test_killed_worker_job_is_recovered_after_the_lease_expires(runtime, tmp_path, tiny_model_dir):
    project = make_trainable_project(runtime, tmp_path, tiny_model_dir)
    with runtime.sessions.begin() as session:
        base = create_model_version(
            session=session, project_id=project.project_id, name="shapes-base", base_model=str(tiny_model_dir)
        )
        base_id = base.id
    version_service.promote_version(runtime, project.project_id, base_id)  # what serves before and during the job
    job = job_service.request_retrain(runtime, project.project_id, overrides=PIPELINE, launcher="python")
    job_folder = job_service.job_dir(runtime, job.id)
    watch = ServingWatch(runtime, job.id)
    worker_args = ["--lease-seconds", str(LEASE_SECONDS), "--idle-seconds", "0.2", "--no-policies"]
    first = start_worker_process(
        runtime.settings.data_dir, *worker_args, "--worker-id", "doomed", log_path=tmp_path / "first.log"
    )
    second = None
    try:
        wait_for_job(runtime, job.id, lambda j: j.stage == "sft" and j.step >= 1, 240, "the first worker in SFT")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        # The training process noticed its worker was gone and stopped.
        log_file = job_folder / "job.log"
        deadline = time.monotonic() + 15
        while "the worker that started it is gone" not in log_file.read_text():
            assert time.monotonic() < deadline, "the supervisor never stopped the orphaned training process"
            time.sleep(0.1)
        trainer_pid = int(re.search(r"stopping \S+ \(pid (\d+)\): the worker", log_file.read_text()).group(1))
        deadline = time.monotonic() + 20
        while _pid_alive(trainer_pid):
            assert time.monotonic() < deadline, f"training process {trainer_pid} outlived its worker"
            time.sleep(0.1)

        # Until the lease expires the job is still the dead worker's: nobody may take it.
        with runtime.sessions() as session:
            row = session.get(TrainingJob, job.id)
            assert (row.status, row.worker_id, row.attempts) == (JobStatus.running, "doomed", 1)
            expires = row.lease_expires_at
        time.sleep(max((expires - utcnow()).total_seconds(), 0) + 0.5)

        second = start_worker_process(
            runtime.settings.data_dir, *worker_args, "--worker-id", "rescuer", "--max-jobs", "1",
            "--kind", "train", log_path=tmp_path / "second.log",
        )  # fmt: skip
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        samples = watch.stop()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()

    final = job_service.get_job(runtime, job.id)
    assert final.status == "succeeded", final.log[-3000:]
    assert (final.attempts, final.worker_id) == (2, "rescuer")
    assert "doomed stopped renewing its lease" in final.log and "queued again" in final.log
    assert "attempt 2 of job" in final.log

    # The second attempt resumed: the finished stages were skipped, SFT ran again from its start.
    events = [json.loads(line) for line in (job_folder / "progress.jsonl").read_text().splitlines()]
    stage_events = [(e["stage"], e["status"]) for e in events if e["event"] == "stage"]
    assert stage_events.count(("rise_cot", "done")) == 1 and ("rise_cot", "skip") in stage_events
    assert ("filter", "skip") in stage_events and stage_events.count(("sft", "start")) == 2

    # The serving version never changed while the job was not finished.
    assert samples and all(serving == base_id for status, serving in samples if status != "succeeded")
    assert "running" in {status for status, _ in samples}

    # Consistent afterwards: one version for the job, one serving version, no job left running or leased.
    versions = version_service.list_versions(runtime, project.project_id)
    assert [v.name for v in versions] == ["shapes-v1", "shapes-base"]
    new = versions[0]
    assert new.job_id == job.id and new.parent_id == base_id and new.metrics["eval"]["items"] == 2
    assert sum(v.is_serving for v in versions) == 1
    assert new.is_serving == new.metrics["promotion"]["promote"]
    with runtime.sessions() as session:
        jobs = session.scalars(select(TrainingJob)).all()
        assert not [j.id for j in jobs if j.status is JobStatus.running]
        assert all(j.lease_expires_at is None and j.worker_id != "doomed" for j in jobs)

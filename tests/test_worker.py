"""The worker's parts without a training run: progress events into row fields, file tails, the supervisor that
never lets training outlive its worker, and a job's subprocess stopped by a cancel, a lost lease or a shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.services import jobs as job_service
from app.worker.context import JobContext
from app.worker.lease import CancelRequested, LeaseKeeper, LeaseLost, WorkerStopping
from app.worker.loop import WorkerConfig
from app.worker.process import JsonLinesTail, SupervisedProcess, read_tail
from app.worker.progress import MAX_POINTS, ProgressState
from db.crud import jobs as crud
from db.models import TrainingJob
from tests.utils.retrain import make_ready_project

STAGES = ["rise_cot", "filter", "sft", "rft", "evaluate"]


class TestProgressState:
    def test_events_become_stage_step_progress_and_curves(self):
        state = ProgressState(stages=STAGES)
        state.apply({"event": "stage", "stage": "rise_cot", "status": "start"})
        state.apply({"event": "train_begin", "stage": "rise_cot", "max_steps": 4})
        state.apply(
            {"event": "log", "stage": "rise_cot", "step": 2, "max_steps": 4, "values": {"reward": 0.5, "loss": 0.1}}
        )

        fields = state.row_fields()
        assert (fields["stage"], fields["step"], fields["total_steps"]) == ("rise_cot", 2, 4)
        assert fields["progress"] == pytest.approx(0.5 / 5)  # half of the first of five stages
        assert fields["metrics"]["curves"] == {"rise_cot": {"reward": [[2, 0.5]], "loss": [[2, 0.1]]}}
        assert fields["metrics"]["last"]["reward"] == 0.5

    def test_skipped_and_finished_stages_count_as_done(self):
        state = ProgressState(stages=STAGES)
        for stage in ("rise_cot", "filter"):
            state.apply({"event": "stage", "stage": stage, "status": "skip"})
        state.apply({"event": "stage", "stage": "sft", "status": "start"})
        state.apply({"event": "stage", "stage": "sft", "status": "done"})

        assert state.fraction == pytest.approx(3 / 5)
        assert state.started

    def test_progress_never_reports_done_before_the_job_is(self):
        state = ProgressState(stages=["sft"])
        state.apply({"event": "stage", "stage": "sft", "status": "done"})
        assert state.fraction < 1.0

    def test_long_curves_are_thinned(self):
        state = ProgressState(stages=STAGES)
        for step in range(1, 3 * MAX_POINTS):
            state.apply({"event": "log", "stage": "rft", "step": step, "values": {"loss": 1.0 / step}})
        points = state.curves["rft"]["loss"]
        assert len(points) <= MAX_POINTS and points[0][0] == 1 and points[-1][0] == 3 * MAX_POINTS - 1


class TestTails:
    def test_json_lines_tail_waits_for_a_complete_line(self, tmp_path):
        path = tmp_path / "progress.jsonl"
        tail = JsonLinesTail(path)
        assert tail.read_new() == []  # no file yet
        path.write_text('{"event": "a"}\n{"event": "b"')
        assert tail.read_new() == [{"event": "a"}]
        with path.open("a") as handle:
            handle.write('}\nnot json\n{"event": "c"}\n')
        assert tail.read_new() == [{"event": "b"}, {"event": "c"}]  # a torn line is skipped, not fatal

    def test_read_tail_keeps_the_end(self, tmp_path):
        path = tmp_path / "job.log"
        path.write_text("x" * 1000 + "the end\n")
        assert read_tail(path, max_chars=20).endswith("the end\n")
        assert read_tail(path, start=1000) == "the end\n"
        assert read_tail(tmp_path / "missing.log") == ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_supervised_command_dies_with_the_process_that_started_it(tmp_path):
    # A stand-in worker starts the supervisor (which starts a long sleeper in its own process group) and is then
    # killed with SIGKILL, as the real worker is in the recovery test. The sleeper must not survive it.
    pid_file = tmp_path / "sleeper.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    stand_in = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-m", "app.worker.supervise", "--grace", "1", "--",
                          sys.executable, "-c", {sleeper!r}])
        time.sleep(600)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", stand_in])
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the supervised command never started"
            time.sleep(0.05)
        sleeper_pid = int(pid_file.read_text())
        assert _alive(sleeper_pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert _wait_gone(sleeper_pid), "the training process outlived its worker"
    finally:
        worker.kill()


# A stand-in for `accelerate launch`: it starts the training process (a sleeper) and waits, as the launcher does.
LAUNCHER = """
import os, subprocess, sys, time
folder = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(folder, "pids.tmp"), "w") as handle:
    handle.write(f"{os.getpid()} {child.pid}")
os.replace(os.path.join(folder, "pids.tmp"), os.path.join(folder, "pids"))
time.sleep(600)
"""


def test_training_dies_with_a_supervisor_killed_by_sigkill(tmp_path):
    process = SupervisedProcess([sys.executable, "-c", LAUNCHER, str(tmp_path)], log_path=tmp_path / "job.log")
    process.start()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "pids").exists():
            assert time.monotonic() < deadline, "the supervised command never started"
            time.sleep(0.05)
        launcher_pid, training_pid = (int(pid) for pid in (tmp_path / "pids").read_text().split())
        assert _alive(launcher_pid) and _alive(training_pid)
        os.kill(process.process.pid, signal.SIGKILL)
        # The launcher gets the parent-death signal from the kernel, with nobody else's help.
        assert _wait_gone(launcher_pid), "the command outlived its supervisor"
        # The process it started is the worker's to end: it sees the supervisor killed and kills the group.
        assert process.process.wait(timeout=10) == -signal.SIGKILL
        assert process.poll() == -signal.SIGKILL
        assert _wait_gone(training_pid), "the training process outlived its supervisor"
    finally:
        process.stop()


PROGRESS_WRITER = """
import json, sys, time
path = sys.argv[1]
for step in range(1, 10_000):
    with open(path, "a") as handle:
        handle.write(json.dumps({"event": "log", "stage": "sft", "step": step, "max_steps": 10_000,
                                 "values": {"loss": 1.0 / step}}) + "\\n")
    print(f"step {step}", flush=True)
    time.sleep(0.05)
"""


@pytest.fixture
def claimed(runtime, tmp_path):
    """A claimed training job, a lease keeper for it and its context (folder under tmp_path)."""
    with runtime.sessions.begin() as session:
        project_id = make_ready_project(session).id
    job = job_service.request_retrain(runtime, project_id)
    with runtime.sessions.begin() as session:
        crud.claim_next_job(session=session, worker_id="w1", lease=timedelta(seconds=30))
    stop = threading.Event()
    keeper = LeaseKeeper(runtime, job_id=job.id, worker_id="w1", lease_seconds=30, interval=0.1, stop=stop)
    ctx = JobContext(runtime, job_service.get_job(runtime, job.id), keeper, tmp_path / "job", poll_seconds=0.05)
    ctx.grace_seconds = 2
    return ctx, stop


def run_writer(ctx: JobContext, interrupt, after_steps: int = 3) -> tuple[BaseException, ProgressState]:
    """Run the progress writer as the job's process; call `interrupt()` once it logged `after_steps` steps."""
    progress = ctx.folder / "progress.jsonl"
    process = SupervisedProcess(
        [sys.executable, "-c", PROGRESS_WRITER, str(progress)], log_path=ctx.log_path, grace_seconds=2
    )
    state = ProgressState(stages=["sft"])

    def trigger() -> None:
        deadline = time.monotonic() + 30
        while state.step < after_steps and time.monotonic() < deadline:
            time.sleep(0.05)
        interrupt()

    threading.Thread(target=trigger, daemon=True).start()
    with pytest.raises((CancelRequested, LeaseLost, WorkerStopping)) as raised:
        ctx.run_process(process, progress, state)
    assert process.poll() is not None, "the process was left running"
    return raised.value, state


def test_cancel_stops_the_process_and_progress_reached_the_row(claimed):
    ctx, _ = claimed
    error, state = run_writer(ctx, lambda: job_service.cancel_job(ctx.runtime, ctx.job.id))

    assert isinstance(error, CancelRequested)
    view = job_service.get_job(ctx.runtime, ctx.job.id)
    assert view.stage == "sft" and view.step >= 3 and view.total_steps == 10_000
    assert view.metrics["curves"]["sft"]["loss"][0] == [1, 1.0]
    assert "step 1" in view.log and "stopping the training process: cancelled" in ctx.log_path.read_text()


def test_lost_lease_stops_the_process(claimed):
    ctx, _ = claimed

    def steal() -> None:
        with ctx.runtime.sessions.begin() as session:
            session.get(TrainingJob, ctx.job.id).worker_id = "another-worker"

    error, _ = run_writer(ctx, steal)
    assert isinstance(error, LeaseLost)


def test_worker_shutdown_stops_the_process(claimed):
    ctx, stop = claimed
    error, _ = run_writer(ctx, stop.set)
    assert isinstance(error, WorkerStopping)


def test_row_log_keeps_earlier_attempts_in_front(claimed, runtime):
    ctx, _ = claimed
    with runtime.sessions.begin() as session:
        session.get(TrainingJob, ctx.job.id).log = "attempt 1 said hello\n"
    again = JobContext(runtime, job_service.get_job(runtime, ctx.job.id), ctx.keeper, ctx.folder)
    again.note("attempt 2 here")
    log = again.row_log()
    assert log.index("attempt 1 said hello") < log.index("attempt 2 here")


def test_row_log_keeps_the_attempt_line_when_the_log_outgrows_its_tail(claimed, monkeypatch):
    ctx, _ = claimed
    monkeypatch.setattr("app.worker.context.LOG_TAIL_CHARS", 200)
    with ctx.log_path.open("a") as handle:
        handle.writelines(f"step {step}: loss 0.5\n" for step in range(1000))
    log = ctx.row_log()
    assert log.startswith("[worker ") and f"attempt 1 of job #{ctx.job.id}" in log.splitlines()[0]
    assert log.rstrip().endswith("step 999: loss 0.5") and "step 10: loss" not in log


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_seconds": 0}, "lease_seconds must be positive"),
        ({"lease_seconds": 4, "heartbeat_seconds": 4}, "shorter"),
    ],
)
def test_worker_config_refuses_a_lease_that_would_expire_between_heartbeats(values, message):
    with pytest.raises(ValueError, match=message):
        WorkerConfig(**values)


def test_progress_file_records_are_json_lines(tmp_path):
    from rise.training.progress import ProgressFile

    progress = ProgressFile(tmp_path / "p.jsonl")
    progress.stage = "sft"
    progress.write("log", step=1, values={"loss": 2.0})
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert (record["event"], record["stage"], record["step"], record["values"]) == ("log", "sft", 1, {"loss": 2.0})

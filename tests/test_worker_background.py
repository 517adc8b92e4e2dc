"""The demo's background worker: a real `rise worker` child, at a lower CPU priority, restarted when it dies, stopped
with the demo, and taking the jobs the demo queues."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.runtime import open_runtime
from app.settings import load_settings
from app.worker.background import DEFAULT_NICENESS, BackgroundWorker


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_process(background: BackgroundWorker) -> psutil.Process | None:
    """The `app worker` process under the supervisor (its command line names the sub-command)."""
    supervisor = psutil.Process(background.process.process.pid)
    for child in supervisor.children(recursive=True):
        try:
            if "worker" in child.cmdline() and "app" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def _env(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(data)}), upgrade=True)
    runtime.close()
    return {"RISE_DATA_DIR": str(data), "RISE_DATABASE_URL": f"sqlite:///{data / 'rise.db'}"}


@pytest.fixture
def started(tmp_path) -> Iterator[tuple[BackgroundWorker, Path]]:
    """A background worker on a fresh data folder, up and waiting for jobs; stopped after the test if still running."""
    log_path = tmp_path / "data" / "worker.log"
    background = BackgroundWorker(log_path, env=_env(tmp_path), restart_seconds=0.5, grace_seconds=2)
    background.start()
    try:
        _wait(lambda: "is waiting for jobs" in log_path.read_text(errors="replace"), 60, "the worker to start")
        yield background, log_path
    finally:
        background.stop()


def test_runs_niced_restarts_after_a_crash_and_stops_with_its_owner(started):
    background, log_path = started
    first = _worker_process(background)
    assert first is not None and first.nice() == min(19, os.getpriority(os.PRIO_PROCESS, 0) + DEFAULT_NICENESS)

    os.killpg(first.pid, signal.SIGKILL)  # a crash of the worker and its process group
    _wait(lambda: background.restarts == 1 and background.running, 30, "the restart")
    _wait(lambda: log_path.read_text(errors="replace").count("is waiting for jobs") == 2, 60, "the new worker")
    second = _worker_process(background)
    assert second is not None and second.pid != first.pid

    code = background.stop()
    assert code is not None and not background.running
    _wait(lambda: not second.is_running() or second.status() == psutil.STATUS_ZOMBIE, 10, "the worker to end")
    assert background.restarts == 1  # stopping is not a crash: nothing was started again


def test_ctrl_c_to_the_process_group_stops_the_worker_for_good(started):
    background, _ = started
    background.process.process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does to the supervisor
    _wait(lambda: not background.running, 30, "the worker to stop")
    time.sleep(2)  # several of the watcher's looks
    assert not background.running and background.restarts == 0

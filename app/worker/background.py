"""A `rise worker` that runs beside the review UI, for the demo: the Retrain button works with nothing else started.

The worker runs as a child process (`python -m app worker`) under `app.worker.supervise`, so it stops with the
process that started it, even one killed with SIGKILL. It runs at a lower CPU priority (`nice`), so on a small
machine training takes the idle cycles and the UI stays responsive. A worker that exits on its own (a crash) is
started again after `restart_seconds`, at most `max_restarts` times; one stopped by a signal (Ctrl-C reaches the
whole process group) is not. Its output goes to `log_path`.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

from app.worker.process import SupervisedProcess

log = logging.getLogger("rise.worker")

DEFAULT_NICENESS = 10
# The supervisor's exit codes when a signal asked it to stop (`app.worker.supervise`: 128 + the signal number).
STOPPED_BY_SIGNAL = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})


class BackgroundWorker:
    """Start with `start()`, end with `stop()` (which puts a running job back in the queue, as Ctrl-C does)."""

    def __init__(
        self,
        log_path: Path,
        *,
        niceness: int = DEFAULT_NICENESS,
        idle_seconds: float = 2.0,
        restart_seconds: float = 5.0,
        max_restarts: int = 5,
        grace_seconds: float = 10.0,
        env: dict[str, str] | None = None,
    ):
        command = [sys.executable, "-m", "app", "worker", "--idle-seconds", f"{idle_seconds:g}"]
        nice = shutil.which("nice")
        if niceness and nice:
            command = [nice, "-n", str(niceness), *command]
        self.process = SupervisedProcess(command, log_path=log_path, env=env, grace_seconds=grace_seconds)
        self.log_path = log_path
        self.restart_seconds = restart_seconds
        self.max_restarts = max_restarts
        self.restarts = 0
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.process.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process.start()
        self._watcher = threading.Thread(target=self._watch, name="background-worker", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(self.restart_seconds):
            code = self.process.poll()
            if code is None:
                continue
            if code in STOPPED_BY_SIGNAL:
                # Ctrl-C in the terminal reaches the whole process group, the supervisor included: the demo is
                # stopping, so the worker stays stopped.
                log.info("The background worker was stopped by a signal (code %s)", code)
                return
            if self.restarts >= self.max_restarts:
                log.error("The background worker exited (code %s) %d times; see %s", code, self.restarts + 1,
                          self.log_path)  # fmt: skip
                return
            self.restarts += 1
            log.warning("The background worker exited (code %s); starting it again", code)
            self.process.start()

    def stop(self) -> int | None:
        """Stop the worker (and the watcher that restarts it); its exit code, None if it never started."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        if self.process.process is None:
            return None
        return self.process.stop()

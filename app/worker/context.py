"""What a running job's code works with: its folder and log file, the lease keeper, and helpers that keep the
lease alive while something slow runs (a subprocess, or a function in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.runtime import Runtime
from app.services.jobs import JobView
from app.worker.lease import JobInterrupted, LeaseKeeper
from app.worker.process import JsonLinesTail, SupervisedProcess, read_tail
from app.worker.progress import ProgressState
from db.crud.jobs import update_final_log

T = TypeVar("T")
# How much of earlier attempts' log the row keeps in front of the current attempt's.
EARLIER_LOG_CHARS = 16_000
LOG_TAIL_CHARS = 48_000


@dataclass
class JobContext:
    runtime: Runtime
    job: JobView
    keeper: LeaseKeeper
    folder: Path
    poll_seconds: float = 0.25
    grace_seconds: float = 10.0
    log_path: Path = field(init=False)
    _earlier_log: str = field(init=False, default="")
    _attempt_line: str = field(init=False, default="")
    _log_start: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / "job.log"
        earlier = self.job.log.strip()
        self._earlier_log = ("…" + earlier[-EARLIER_LOG_CHARS:]) if len(earlier) > EARLIER_LOG_CHARS else earlier
        self._attempt_line = self.note(
            f"attempt {self.job.attempts} of job #{self.job.id} ({self.job.kind}) on worker {self.keeper.worker_id}"
        )
        self._log_start = self.log_path.stat().st_size

    def note(self, message: str) -> str:
        """A line from the worker itself in the job's log; returns the line as written."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"[worker {stamp} UTC] {message}\n"
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(line)
        return line

    def row_log(self) -> str:
        """Earlier attempts' log (as the row held it when this attempt began), this attempt's first line (which
        attempt, which worker: kept however long the log grows), then the tail of the rest of its log file."""
        current = self._attempt_line + read_tail(self.log_path, self._log_start, LOG_TAIL_CHARS)
        return f"{self._earlier_log}\n{current}".strip() + "\n" if self._earlier_log else current

    def finish_log(self) -> None:
        """Write the final log to the row of the job this worker just finished."""
        with self.runtime.sessions.begin() as session:
            update_final_log(session=session, job_id=self.job.id, worker_id=self.keeper.worker_id, log=self.row_log())

    def beat(self, *, force: bool = False, **progress: Any) -> None:
        self.keeper.beat(force=force, log=self.row_log(), **progress)

    def run_process(self, process: SupervisedProcess, progress_path: Path | None, state: ProgressState | None) -> int:
        """Start `process` and wait for it, streaming progress events into `state` and the row; stop it and re-raise
        when the job is interrupted (cancel, lost lease, worker shutdown)."""
        tail = JsonLinesTail(progress_path) if progress_path is not None else None
        process.start()
        try:
            while True:
                code = process.poll()
                if tail is not None and state is not None:
                    for record in tail.read_new():
                        state.apply(record)
                fields = state.row_fields() if state is not None else {}
                if code is not None:
                    self.beat(force=True, **fields)
                    return code
                self.beat(**fields)
                time.sleep(self.poll_seconds)
        except JobInterrupted as why:
            self.note(f"stopping the training process: {why}")
            process.stop()
            raise
        except BaseException:
            process.stop()  # never leave training running behind a job that ended with an error
            raise

    def run_in_thread(
        self, work: Callable[[threading.Event], T], progress: Callable[[], dict[str, Any]] | None = None
    ) -> T:
        """Run `work(interrupted)` in a thread while keeping the lease (with the row fields `progress()` returns);
        `interrupted` is set when the job must stop, and `work` should check it to end early."""
        interrupted = threading.Event()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = work(interrupted)
            except BaseException as error:  # handed to the job's thread below
                outcome["error"] = error

        thread = threading.Thread(target=target, name=f"job-{self.job.id}", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(self.poll_seconds)
                self.beat(**(progress() if progress is not None else {}))
        except JobInterrupted:
            interrupted.set()
            thread.join(self.grace_seconds)
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

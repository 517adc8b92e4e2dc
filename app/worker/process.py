"""A training subprocess as the worker sees it: started under `app.worker.supervise`, output appended to the job's
log file, stopped on request, and its whole process group killed should the supervisor be killed; plus reading the
tails of the log and progress files as they grow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class SupervisedProcess:
    """`command` run through `python -m app.worker.supervise`, stdout and stderr appended to `log_path`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        grace_seconds: float = 10.0,
        python: str = sys.executable,
    ):
        self.command = list(command)
        self.log_path = log_path
        self.grace_seconds = grace_seconds
        self.python = python
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None
        # The command's process group, as the supervisor reported it; None once nothing of it can be left.
        self.group: int | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        report_read, report_write = os.pipe()
        try:
            with self.log_path.open("ab") as log:
                log.write(f"\n$ {' '.join(self.command)}\n".encode())
                log.flush()
                supervise = ["-m", "app.worker.supervise", "--grace", str(self.grace_seconds)]
                self.process = subprocess.Popen(
                    [self.python, *supervise, "--report-fd", str(report_write), "--", *self.command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    pass_fds=(report_write,),
                )
            os.close(report_write)
            report_write = -1
            # The supervisor writes the group id as soon as the command runs, or exits, which closes the pipe.
            with os.fdopen(report_read, "r") as report:
                report_read = -1
                line = report.readline().strip()
            self.group = int(line) if line.isdigit() else None
        finally:
            for fd in (report_read, report_write):
                if fd >= 0:
                    os.close(fd)

    def poll(self) -> int | None:
        assert self.process is not None, "start() first"
        code = self.process.poll()
        if code is not None:
            self._kill_orphans(code)
        return code

    def _kill_orphans(self, code: int) -> None:
        """After a supervisor killed by a signal (a negative code), kill what is left of the command's group: the
        parent-death signal reaches only the command itself, not the processes it started. A supervisor that
        exited on its own has stopped the group already."""
        group, self.group = self.group, None
        if group is None or code >= 0:
            return
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # nothing left of it

    def stop(self) -> int:
        """Ask the supervisor to stop the command (SIGTERM, then SIGKILL after the grace period); its exit code."""
        assert self.process is not None, "start() first"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=self.grace_seconds + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        else:
            code = self.process.wait()
        self._kill_orphans(code)
        return code


def read_tail(path: Path, start: int = 0, max_chars: int = 60_000) -> str:
    """The text of `path` from byte `start`, at most its last `max_chars` characters (undecodable bytes replaced)."""
    if not path.is_file():
        return ""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(start, size - max_chars * 2))
        text = handle.read().decode("utf-8", errors="replace")
    if len(text) > max_chars:
        text = "…" + text[-max_chars:]
    return text


class JsonLinesTail:
    """Reads the complete JSON lines appended to a file since the last call (a partial last line waits)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in chunk[: end + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash of an earlier attempt
            if isinstance(record, dict):
                records.append(record)
        return records

"""Run one command as a child that cannot outlive the worker: `python -m app.worker.supervise -- CMD ...`.

The worker starts training through this small process. It puts the command in a process group of its own (so
`accelerate launch` and every process it starts can be stopped together) and watches two things:

- SIGTERM or SIGINT (the worker cancels the job, or stops): the whole group gets SIGTERM, then SIGKILL after
  `--grace` seconds;
- its parent (the worker) disappearing, e.g. killed with SIGKILL: the same, at once. Otherwise the orphaned
  training would keep writing into the job's folder while another worker resumes the job from it.

Should this process itself be killed with SIGKILL, the command dies with it: on Linux the kernel sends it SIGKILL
when its parent dies (a parent-death signal), and the worker, told the command's process group on `--report-fd`,
kills the rest of the group (`app.worker.process.SupervisedProcess`).

It exits with the command's exit code, or 128 + the signal number when it stopped the command.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A function for `Popen(preexec_fn=...)` that makes the child get SIGKILL when this process dies; None where
    the system has no parent-death signal (it is Linux's)."""
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, before the fork: the child must do as little as possible between fork and exec.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    parent = os.getpid()

    def set_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was set: nobody will send it
            os.kill(os.getpid(), signal.SIGKILL)

    return set_signal


def stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the command's process group, SIGKILL to whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if process.poll() is not None:
            # The leader is gone; its children may not be, so the group still gets the next signal.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker.supervise")
    parser.add_argument("--grace", type=float, default=10.0, help="Seconds between SIGTERM and SIGKILL.")
    parser.add_argument(
        "--report-fd", type=int, default=None, help="A pipe to write the command's process group id to, then close."
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given; usage: python -m app.worker.supervise -- CMD ARGS...")
    parent = os.getppid()
    stop_signal: list[int] = []

    def on_signal(signum, _frame) -> None:
        stop_signal.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent())
    if args.report_fd is not None:
        with os.fdopen(args.report_fd, "w") as report:
            report.write(f"{process.pid}\n")
    while True:
        code = process.poll()
        if code is not None:
            return code
        if stop_signal or os.getppid() != parent:
            print(
                f"[supervise] stopping {command[0]} (pid {process.pid}): "
                + ("asked to stop" if stop_signal else "the worker that started it is gone"),
                file=sys.stderr,
                flush=True,
            )
            stop_group(process, args.grace)
            return 128 + (stop_signal[0] if stop_signal else signal.SIGKILL)
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())

"""Progress events of a training run, one JSON object per line, for whoever supervises the process (`rise worker`
tails the file and streams it into the job row):

    {"event": "stage", "stage": "sft", "status": "start" | "done" | "skip"}
    {"event": "train_begin", "stage": "sft", "max_steps": 120}
    {"event": "log", "stage": "sft", "step": 10, "max_steps": 120, "values": {"loss": 1.9, "learning_rate": 1e-4}}

`python -m rise.train --progress-file PATH` calls `start_progress_file(PATH)`; from then on `report_stage` records
the pipeline's stage changes and `progress_callbacks()` gives every stage's trainer a callback that records its
logs. Lines are appended and flushed one at a time, so a reader can follow the file as it grows; only the main
process of a multi-process run writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class ProgressFile:
    """Appends progress events to a JSONL file; the current `stage` is stamped on every event."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stage = ""

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "stage": self.stage, **fields}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    # NaN and infinity are not JSON; a reader would choke on them.
    return {k: float(v) for k, v in logs.items() if isinstance(v, int | float) and math.isfinite(float(v))}


class ProgressCallback(TrainerCallback):
    """Writes a trainer's `train_begin` and every `log` to a `ProgressFile` (world process zero only)."""

    def __init__(self, progress: ProgressFile):
        self.progress = progress

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress.write("train_begin", max_steps=state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.progress.write("log", step=state.global_step, max_steps=state.max_steps, values=_numbers(logs))


_current: ProgressFile | None = None


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def start_progress_file(path: str | Path) -> ProgressFile | None:
    """Record this run's progress in `path` (main process only; the others record nothing)."""
    global _current
    _current = ProgressFile(path) if _is_main_process() else None
    return _current


def stop_progress_file() -> None:
    global _current
    _current = None


def report_stage(stage: str, status: str) -> None:
    """Record that `stage` started, finished or was skipped ("start", "done", "skip"), if a progress file is open."""
    if _current is not None:
        _current.stage = stage
        _current.write("stage", status=status)


def progress_callbacks() -> list[TrainerCallback]:
    """A callback recording the trainer's logs when a progress file is open, else nothing."""
    return [ProgressCallback(_current)] if _current is not None else []

"""Turn the training process's progress events (`rise.training.progress`) into the job row's fields: the stage, the
step and total steps of that stage, overall progress, and the reward and loss curves per stage.

    job.metrics = {"curves": {"rise_cot": {"reward": [[1, 0.21], [2, 0.35]], "loss": [[1, 0.0], ...]}, "sft": ...},
                   "last": {"stage": "sft", "step": 2, "loss": 2.1, ...}, "stages": {"rise_cot": "done", ...}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The curves the UI draws; other logged numbers only appear in "last".
CURVES = ("reward", "loss")
# Points kept per curve: beyond this every other point is dropped, so a long run's row stays small.
MAX_POINTS = 400


@dataclass
class ProgressState:
    stages: list[str]
    stage: str = ""
    step: int = 0
    total_steps: int = 0
    stage_status: dict[str, str] = field(default_factory=dict)
    curves: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    started: bool = False  # any event at all arrived: the pipeline itself is running

    def apply(self, record: dict[str, Any]) -> None:
        self.started = True
        event = record.get("event")
        stage = str(record.get("stage") or self.stage)
        if event == "stage":
            status = str(record.get("status", ""))
            self.stage_status[stage] = status
            if status == "start":
                self.stage, self.step, self.total_steps = stage, 0, 0
            return
        self.stage = stage
        if isinstance(record.get("max_steps"), int) and record["max_steps"] > 0:
            self.total_steps = record["max_steps"]
        if isinstance(record.get("step"), int):
            self.step = record["step"]
        if event == "log":
            values = record.get("values") or {}
            self.last = {"stage": stage, "step": self.step, **values}
            for name in CURVES:
                if isinstance(values.get(name), int | float):
                    points = self.curves.setdefault(stage, {}).setdefault(name, [])
                    points.append([self.step, float(values[name])])
                    if len(points) > MAX_POINTS:
                        del points[1::2]

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1): finished stages plus the running stage's step fraction, over all stages."""
        if not self.stages:
            return 0.0
        done = sum(1 for s in self.stages if self.stage_status.get(s) in ("done", "skip"))
        running = 0.0
        if self.stage_status.get(self.stage) == "start" and self.total_steps:
            running = min(self.step / self.total_steps, 1.0)
        return min((done + running) / len(self.stages), 0.999)

    def row_fields(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "step": self.step,
            "total_steps": self.total_steps,
            "progress": round(self.fraction, 4),
            "metrics": {"curves": self.curves, "last": self.last, "stages": dict(self.stage_status)},
        }

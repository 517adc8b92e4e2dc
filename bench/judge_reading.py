"""Does RISE-CoT's judge read the mood rule's working? Count, over a stage's logged rollouts, how often the judge
reconstructs the label from reasonings whose working follows their own description, and from the rest.

    .venv/bin/python bench/judge_reading.py /tmp/loop/data/jobs/job-00001/run /tmp/loop/data/jobs/job-00003/run

Each argument is a pipeline output folder (its `rise_cot/rollouts`) or a rollouts folder. A rollout "follows" when
it writes the working (`LabelRule.working`) and every step and both totals are those of the colours its own
description names (`bench.reasoning_use.working_follows_description`). A judge that reads the working passes those
more often than the rest; one that never learnt the rule passes them no more often, so wrong steps reach the filter
as readily as right ones. No model is loaded.

Prints a markdown table, and with `--out` writes `judge_reading.json` and `.md` there.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reasoning_use import working_follows_description
from bench.tables import publish_table
from rise.training.reconstruction import read_rollouts
from rise.training.rise_cot import ROLLOUTS_DIR

STAGE_ROLLOUTS = Path("rise_cot") / ROLLOUTS_DIR


@dataclass
class JudgeReading:
    """Counts over one stage's rollouts."""

    source: str
    rollouts: int = 0
    following: int = 0
    following_passed: int = 0  # the judge reconstructed the trusted label
    others_passed: int = 0


def rollouts_folder(path: Path) -> Path:
    return path / STAGE_ROLLOUTS if (path / STAGE_ROLLOUTS).is_dir() else path


def all_have_rollouts(paths: list[Path]) -> bool:
    """Whether every path holds logged rollouts; prints the ones that do not."""
    missing = [str(p) for p in paths if not any(rollouts_folder(p).glob("*.jsonl"))]
    if missing:
        print(f"No rollouts at: {', '.join(missing)} (pass a pipeline output folder or its rise_cot/rollouts)")
    return not missing


def judge_reading(path: Path) -> JudgeReading:
    reading = JudgeReading(source=str(path))
    for row in read_rollouts(rollouts_folder(path)):
        follows = working_follows_description(row.get("cot") or "")
        passed = (row.get("accuracy") or 0.0) >= 1.0
        reading.rollouts += 1
        reading.following += follows
        reading.following_passed += follows and passed
        reading.others_passed += passed and not follows
    return reading


def _rate(passed: int, total: int) -> str:
    return f"{passed / total:.2f}" if total else "–"


def markdown_table(readings: list[JudgeReading]) -> str:
    lines = [
        "| rollouts of | rollouts | working follows description | judge passes those | judge passes the rest |",
        "|---|---|---|---|---|",
    ]
    for r in readings:
        others = r.rollouts - r.following
        lines.append(
            f"| {r.source} | {r.rollouts} | {r.following} | {_rate(r.following_passed, r.following)} "
            f"| {_rate(r.others_passed, others)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="pipeline output folders or rollouts folders")
    parser.add_argument("--out", type=Path, help="folder for judge_reading.json and .md")
    args = parser.parse_args(argv)
    if not all_have_rollouts(args.paths):
        return 2
    readings = [judge_reading(path) for path in args.paths]
    publish_table(markdown_table(readings), readings, args.out, "judge_reading", "Judge reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

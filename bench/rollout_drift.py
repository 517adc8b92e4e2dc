"""Does RISE-CoT keep describing the scene right while it trains? Over a stage's logged mood rollouts, step block by
step block: how often the reasoning's description implies the trusted label, and how often the judge passed it.

    .venv/bin/python bench/rollout_drift.py /tmp/learn/work/mood/seed-1 --block 10
    .venv/bin/python bench/rollout_drift.py run-a run-b --out /tmp/drift

Each argument is a pipeline output folder (its `rise_cot/rollouts`) or a rollouts folder. A description "implies the
label" when the mood rule applied to the colour words it names gives the trusted label
(`bench.reasoning_use.mood_of_reasoning`). The demo model's own greedy descriptions do so on nearly every item, so a
falling share means GRPO is moving the policy away from what it saw; a judge near chance (one that does not know
the rule) rewards right and wrong descriptions alike and gives nothing that holds it there, which is what the KL
term (`rise_cot.beta`) is for. No model is loaded.

Prints a markdown table, and with `--out` writes `rollout_drift.json` and `.md` there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.judge_reading import all_have_rollouts, rollouts_folder
from bench.reasoning_use import mood_of_reasoning
from bench.tables import publish_table
from rise.training.reconstruction import read_rollouts
from rise.training.records import load_answer


@dataclass
class DriftBlock:
    """Counts over the rollouts of one block of steps of one stage."""

    source: str
    first_step: int
    rollouts: int = 0
    implies_label: int = 0  # the description's colour words give the trusted label by the mood rule
    judge_passed: int = 0  # the judge reconstructed the trusted label


def _trusted_label(row: dict) -> str | None:
    """The rollout's trusted annotation, logged as the snapshot's JSON answer cell (a label is a JSON string)."""
    try:
        label = load_answer(row.get("answer"))
    except json.JSONDecodeError:
        return None
    return label if isinstance(label, str) else None


def rollout_drift(path: Path, block: int) -> list[DriftBlock]:
    blocks: dict[int, DriftBlock] = {}
    for row in read_rollouts(rollouts_folder(path)):
        first = int(row.get("step") or 0) // block * block
        counts = blocks.setdefault(first, DriftBlock(source=str(path), first_step=first))
        counts.rollouts += 1
        counts.implies_label += mood_of_reasoning(row.get("cot") or "") == _trusted_label(row)
        counts.judge_passed += (row.get("accuracy") or 0.0) >= 1.0
    return [blocks[first] for first in sorted(blocks)]


def markdown_table(rows: list[DriftBlock], block: int) -> str:
    lines = [
        "| rollouts of | steps | rollouts | description implies the label | judge passed |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.source} | {r.first_step}–{r.first_step + block - 1} | {r.rollouts} "
            f"| {r.implies_label / r.rollouts:.2f} | {r.judge_passed / r.rollouts:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="pipeline output folders or rollouts folders")
    parser.add_argument("--block", type=int, default=10, help="RISE-CoT steps per row (default 10)")
    parser.add_argument("--out", type=Path, help="folder for rollout_drift.json and .md")
    args = parser.parse_args(argv)
    if args.block < 1:
        parser.error("--block must be at least 1")
    if not all_have_rollouts(args.paths):
        return 2
    rows = [row for path in args.paths for row in rollout_drift(path, args.block)]
    publish_table(markdown_table(rows, args.block), rows, args.out, "rollout_drift", "RISE-CoT rollouts' drift")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

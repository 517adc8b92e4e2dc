"""Does a trained model's mood answer use its reasoning? Read off the predictions it wrote, no model needed.

    .venv/bin/python bench/reasoning_use.py /tmp/loop/data/jobs/job-00001/run /tmp/loop/round-2/rise-seed-1
    .venv/bin/python bench/reasoning_use.py run/evaluate/rise.predictions.jsonl --out /tmp/use

Each argument is a pipeline output folder (its `evaluate/rise.predictions.jsonl`) or a predictions file. For each
held-out prediction it reads the reasoning's two parts: the description (the colour words it names) and, when the
model wrote one, the rule's working (`LabelRule.working`: after each object's sentence its colour family and that
family's running count, "A small red square on the left: warm one.", then the totals, "Warm two, cool one."). The
mood rule applied to each says what that part implies; the table counts how often each part is right, how often the
steps and the totals follow the model's own description, and how often the answer follows each part. An answer that
reads its reasoning follows the working; one decided by the image follows neither more than the image allows.

Prints a markdown table, and with `--out` writes `reasoning_use.json` and `.md` there.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tables import publish_table
from rise.synthetic.rules import colour_family_counts, mood_of_colour_families, mood_of_counts
from rise.synthetic.vocabulary import FAMILY_OF_COLOUR, NUMBER_WORDS

PREDICTIONS = Path("evaluate") / "rise.predictions.jsonl"
# The mood rule's working as `rise.synthetic.rules` writes it (the tests build it from there, so a change shows):
# one step per object sentence ("A small red square on the left: warm one."), then the totals.
STEP_RE = re.compile(r"A \w+ (\w+) \w+ [^:.]*: (warm|cool) (\w+)\.")
WORKING_RE = re.compile(r"Warm (\w+), cool (\w+)\.")


def mood_of_reasoning(text: str) -> str | None:
    """The mood a reasoning implies by the colour words it names, or `None` when it names none."""
    families = _families(text)
    return mood_of_colour_families(families) if families else None


def _families(text: str) -> list[str]:
    return [FAMILY_OF_COLOUR[word] for word in re.findall(r"[a-z]+", text.lower()) if word in FAMILY_OF_COLOUR]


def _number(word: str) -> int | None:
    return NUMBER_WORDS.index(word) if word in NUMBER_WORDS else int(word) if word.isdigit() else None


def read_working(text: str) -> tuple[int, int] | None:
    """(warm, cool) as the reasoning's working states them, or `None` when it has no readable working."""
    return _working_counts(WORKING_RE.search(text))


def _working_counts(match: re.Match[str] | None) -> tuple[int, int] | None:
    if match is None:
        return None
    warm, cool = _number(match.group(1)), _number(match.group(2))
    return None if warm is None or cool is None else (warm, cool)


@dataclass
class ReasoningUse:
    """Counts over one predictions file's items."""

    source: str
    items: int = 0
    right: int = 0
    description_implies_gold: int = 0
    answer_follows_description: int = 0
    with_steps: int = 0
    steps_follow_description: int = 0  # every step names its object's colour family and that family's running count
    with_working: int = 0
    working_matches_description: int = 0  # the counts are those of the colours the model itself named
    working_implies_gold: int = 0
    answer_follows_working: int = 0


def reasoning_use(path: Path) -> ReasoningUse:
    """Count, over the predictions at `path` (a run folder or a predictions file), what the reasoning says and
    what the answer follows."""
    predictions = path / PREDICTIONS if path.is_dir() else path
    use = ReasoningUse(source=str(path))
    for line in predictions.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text = (row.get("raw_text") or "").split("</think>")[0]
        description, working_at = _split_working(text)
        answer, gold = row.get("answer"), row.get("gold")
        use.items += 1
        use.right += answer == gold
        described = mood_of_reasoning(description)
        use.description_implies_gold += described == gold
        use.answer_follows_description += described is not None and answer == described
        steps = STEP_RE.findall(description)
        use.with_steps += bool(steps)
        use.steps_follow_description += bool(steps) and _steps_follow(steps)
        counts = _working_counts(working_at)
        if counts is None:
            continue
        worked = mood_of_counts(*counts)
        use.with_working += 1
        use.working_matches_description += counts == colour_family_counts(_families(description))
        use.working_implies_gold += worked == gold
        use.answer_follows_working += answer == worked
    return use


def _split_working(text: str) -> tuple[str, re.Match[str] | None]:
    """A reasoning's description (everything before its totals) and the totals' match, `None` without them."""
    working_at = WORKING_RE.search(text)
    return (text[: working_at.start()] if working_at else text), working_at


def working_follows_description(text: str) -> bool:
    """Whether a reasoning writes the whole working and it follows the reasoning's own description: a step after
    every object sentence naming its colour's family and running count, and totals that are the description's."""
    description, working_at = _split_working(text)
    steps = STEP_RE.findall(description)
    return (
        bool(steps)
        and _steps_follow(steps)
        and _working_counts(working_at) == colour_family_counts(_families(description))
    )


def _steps_follow(steps: list[tuple[str, str, str]]) -> bool:
    """Whether each (colour, family, count) step names the colour's family and that family's running count."""
    counts = {"warm": 0, "cool": 0}
    for colour, family, count in steps:
        if FAMILY_OF_COLOUR.get(colour) != family:
            return False
        counts[family] += 1
        if _number(count) != counts[family]:
            return False
    return True


def markdown_table(uses: list[ReasoningUse]) -> str:
    lines = [
        "| predictions | items | right | description implies gold | answer follows description | steps written "
        "| steps follow description | working written | working = own description's counts | working implies gold "
        "| answer follows working |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for use in uses:
        lines.append(
            f"| {use.source} | {use.items} | {use.right} | {use.description_implies_gold} "
            f"| {use.answer_follows_description} | {use.with_steps} | {use.steps_follow_description} "
            f"| {use.with_working} | {use.working_matches_description} "
            f"| {use.working_implies_gold} | {use.answer_follows_working} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="pipeline output folders or predictions files")
    parser.add_argument("--out", type=Path, help="folder for reasoning_use.json and .md")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not (p / PREDICTIONS if p.is_dir() else p).is_file()]
    if missing:
        print(f"No predictions at: {', '.join(missing)} (pass a pipeline output folder or a .jsonl file)")
        return 2
    uses = [reasoning_use(path) for path in args.paths]
    publish_table(markdown_table(uses), uses, args.out, "reasoning_use", "Reasoning use")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

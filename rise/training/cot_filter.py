"""Stage 2, filter: pick the reasoning each item is fine-tuned on (docs/design.md §1, RISE-R1).

Per item the best-reward RISE-CoT rollout qualifies when its reconstruction accuracy reaches τ and it did not leak;
a reviewer-accepted reasoning that was not flagged as wrong qualifies as well (and wins by default). The report says
how many items qualified and, for each of the rest, why not.

A model that has never seen a project's label names cannot reconstruct them from any reasoning, so at the start of a
project nothing may qualify and SFT would have no data. With `min_selected` the filter then tops the selection up
with the best clean rollouts of the other items: reasonings written with the answer in view but not verified by
reconstruction (STaR's "rationalisation"), marked as source "rationale" in the report.

Many rollouts of an item often tie on the best reward (every reconstruction right). With `consensus` the tie goes
to the reasoning that agrees most with the item's other rollouts: sampling at temperature 1 slips a wrong colour or
a missing object into some reasonings, and SFT on the slips teaches the model to make them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from rise.tasks import TaskSpec, TaskType
from rise.training.config import FilterConfig
from rise.training.records import WRITTEN_SOURCE, Snapshot

# Why an item has no SFT example, in the report's words.
NO_ROLLOUTS = "no rollouts (RISE-CoT never sampled this item, e.g. it stopped early)"
ALL_LEAKED = "every reasoning gave the answer away"
ALL_EMPTY = "every reasoning that did not leak was empty"
BELOW_TAU = "no reasoning reconstructed the answer well enough (accuracy below tau)"


@dataclass
class SelectedCoT:
    """One SFT example's reasoning: where it came from and how it scored."""

    item_id: int
    cot: str
    source: str  # "rollout", "human" or "rationale" (a top-up below tau, see `min_selected`)
    accuracy: float | None = None
    reward: float | None = None


@dataclass
class FilterReport:
    """What the filter kept: per-source counts, and why every other item was left out."""

    tau: float
    items: int
    selected: list[SelectedCoT] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        sources = Counter(s.source for s in self.selected)
        return {
            "tau": self.tau,
            "items": self.items,
            "qualified": len(self.selected),
            "from_rollouts": sources.get("rollout", 0),
            "from_reviewers": sources.get("human", 0),
            "unverified_rationales": sources.get("rationale", 0),
            "not_qualified": len(self.rejected),
            "reasons": dict(Counter(self.rejected.values())),
        }


def default_tau(spec: TaskSpec, config: FilterConfig) -> float:
    """τ for the task: the configured one, else 1.0 for single labels (correct), box_tau for boxes, 0.9 otherwise."""
    if config.tau is not None:
        return config.tau
    if spec.task_type is TaskType.classification:
        return 0.9 if spec.distribution else 1.0
    return config.box_tau


def _usable(rollouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rollouts whose reasoning could be SFT data at all: it did not leak and is not empty."""
    return [r for r in rollouts if not r.get("leaked") and (r.get("cot") or "").strip()]


def _consensus(rollout: dict[str, Any], group: list[dict[str, Any]]) -> float:
    """How much a reasoning agrees with the rest of its item's reasonings: summed word-sequence similarity."""
    words = rollout["cot"].lower().split()
    return sum(
        SequenceMatcher(None, words, other["cot"].lower().split(), autojunk=False).ratio()
        for other in group
        if other is not rollout
    )


def _pick(
    candidates: list[dict[str, Any]],
    score: Callable[[dict[str, Any]], tuple],
    group: list[dict[str, Any]],
    consensus: bool,
) -> dict[str, Any]:
    """The candidate with the highest `score`; ties go to the first, or with `consensus` to the one that agrees most
    with `group`."""
    best = max(candidates, key=score)
    if not consensus:
        return best
    tied = [c for c in candidates if score(c) == score(best)]
    return max(tied, key=lambda c: _consensus(c, group)) if len(tied) > 1 else best


def _best_rollout(
    rollouts: list[dict[str, Any]], tau: float, consensus: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """The best qualifying rollout of one item, or `None` and the reason none qualifies."""
    if not rollouts:
        return None, NO_ROLLOUTS
    if all(r.get("leaked") for r in rollouts):
        return None, ALL_LEAKED
    usable = _usable(rollouts)
    if not usable:
        return None, ALL_EMPTY
    # The tolerance keeps an exact 0.75 IoU from missing a 0.75 threshold through float rounding.
    good = [r for r in usable if float(r.get("accuracy") or 0.0) >= tau - 1e-9]
    if not good:
        return None, BELOW_TAU
    return _pick(
        good, lambda r: (float(r.get("reward") or 0.0), float(r.get("accuracy") or 0.0)), usable, consensus
    ), ""


def select_cots(snapshot: Snapshot, rollouts: Iterable[dict[str, Any]], config: FilterConfig) -> FilterReport:
    """Choose at most one reasoning per training item with a trusted answer.

    Args:
        snapshot (`Snapshot`): the training data; its `cot` column holds reviewer-accepted reasonings.
        rollouts (`Iterable[dict]`): RISE-CoT rollouts (`rise.training.reconstruction.read_rollouts`).
        config (`FilterConfig`): τ and how reviewer reasonings count.

    Returns:
        `FilterReport`: the selected reasonings and the reason for every item left out.
    """
    tau = default_tau(snapshot.spec, config)
    by_item: dict[int, list[dict[str, Any]]] = {}
    for rollout in rollouts:
        if rollout.get("item_id") is not None:
            by_item.setdefault(int(rollout["item_id"]), []).append(rollout)
    columns = snapshot.train.select_columns(["item_id", "answer", "answer_source", "cot"])
    report = FilterReport(tau=tau, items=0)
    for row in columns:
        if row["answer"] is None:
            continue  # only rejected answers: RFT's business, nothing to imitate
        report.items += 1
        item_id = int(row["item_id"])
        human = (row["cot"] or "").strip() if config.include_human_cots else ""
        best, reason = _best_rollout(by_item.get(item_id, []), tau, config.consensus)
        written = row["answer_source"] == WRITTEN_SOURCE  # a correction's reasoning is the reviewer's own
        human_wins = config.prefer_human_cots and (written or config.prefer_accepted_cots)
        if human and (human_wins or best is None):
            report.selected.append(SelectedCoT(item_id, human, "human"))
        elif best is not None:
            report.selected.append(
                SelectedCoT(item_id, best["cot"].strip(), "rollout", float(best["accuracy"]), float(best["reward"]))
            )
        else:
            report.rejected[item_id] = reason
    _top_up_with_rationales(report, by_item, config.min_selected, config.consensus)
    return report


def _top_up_with_rationales(
    report: FilterReport, by_item: dict[int, list[dict[str, Any]]], wanted: int, consensus: bool = False
) -> None:
    """Add the best below-tau rollouts of rejected items, best reconstruction first, until `wanted` are selected."""
    missing = wanted - len(report.selected)
    if missing <= 0:
        return

    def score(rollout: dict[str, Any]) -> tuple[float, float]:
        return float(rollout.get("accuracy") or 0.0), float(rollout.get("reward") or 0.0)

    candidates = []
    for item_id, reason in report.rejected.items():
        if reason == BELOW_TAU:  # such an item has clean, non-empty rollouts; leaked or empty ones never join
            usable = _usable(by_item[item_id])
            best = _pick(usable, score, usable, consensus)
            candidates.append((*score(best), item_id, best))
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2]))
    for accuracy, reward, item_id, best in candidates[:missing]:
        report.selected.append(SelectedCoT(item_id, best["cot"].strip(), "rationale", accuracy, reward))
        del report.rejected[item_id]


def write_filter_outputs(report: FilterReport, stage_dir: Path) -> dict[str, Any]:
    """`stage_dir/sft_data.jsonl` (the SFT stage's input) and `stage_dir/report.json`; returns the summary."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    with (stage_dir / "sft_data.jsonl").open("w", encoding="utf-8") as handle:
        for selected in report.selected:
            handle.write(json.dumps(selected.__dict__, ensure_ascii=False) + "\n")
    summary = report.summary()
    details = {**summary, "not_qualified_items": {str(k): v for k, v in sorted(report.rejected.items())}}
    (stage_dir / "report.json").write_text(json.dumps(details, indent=1))
    return summary


def read_selected(stage_dir: Path) -> list[SelectedCoT]:
    """The filter stage's choices, as written by `write_filter_outputs`."""
    path = stage_dir / "sft_data.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the filter stage first (`--stage filter`).")
    with path.open(encoding="utf-8") as handle:
        return [SelectedCoT(**json.loads(line)) for line in handle if line.strip()]

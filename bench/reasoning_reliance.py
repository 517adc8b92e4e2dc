"""Does a RISE-trained model's mood answer follow its own reasoning, or the image? A swap test on held-out items.

    .venv/bin/python bench/feedback_loop.py --verdicts 40 --work /tmp/loop     # leaves its oracle's RISE runs
    .venv/bin/python bench/reasoning_reliance.py --data /tmp/loop/oracle/data \\
        --runs /tmp/loop/oracle/rise-seed-0,/tmp/loop/oracle/rise-seed-1,/tmp/loop/oracle/rise-seed-2 \\
        --out bench/results/reasoning-reliance

For each run (a pipeline output folder whose RISE stages finished: the RFT model, or the SFT one without RFT) and
each held-out item of the snapshot, the run's own prediction (`evaluate/rise.predictions.jsonl`) gives the reasoning
it wrote. The mood that reasoning implies is read off the colour words it names (warm against cool, a tie is
balanced: the rule itself, applied to the text). Then the model's answer is scored teacher-forced, as its likeliest
label after image + prompt + `<think>reasoning</think>` (`label_log_probs`, as in the reasoning ceiling):

- with its own reasoning: this should repeat the generated answer, which checks the scoring;
- with the reasoning of another held-out item that implies a different mood (drawn with `--seed`): an answer that
  reads the reasoning follows the swapped one; an answer decided by the image stays with the image's true mood;
- with its own reasoning after a blank image of the same size: whether the model can read the mood off a reasoning
  at all, when the image gives nothing away.

Writes `reasoning_reliance.json` and `.md` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.learning import REPO, _machine, write_results
from bench.reasoning_ceiling import label_log_probs
from bench.reasoning_use import PREDICTIONS, mood_of_reasoning


def trained_model(run: Path) -> tuple[str, str | None]:
    """(model, adapter) of a run's final RISE model: RFT's, or SFT's when RFT did not run."""
    from rise.training.pipeline import finished_stage

    summary = finished_stage(run, "rft") or finished_stage(run, "sft")
    if summary is None:
        raise SystemExit(
            f"{run}: neither the rft nor the sft stage finished there; pass a RISE pipeline output folder."
        )
    return summary["model"], summary.get("adapter")


def held_out_items(snapshot: Any, predictions: Path) -> list[dict[str, Any]]:
    """Held-out items with a generated reasoning: image, true mood, reasoning, its mood and the generated answer."""
    from rise.parsing import parse_completion

    rows = {row["item_id"]: row for row in map(json.loads, predictions.read_text().splitlines())}
    items = []
    for record in snapshot.eval:
        row = rows.get(record["item_id"])
        reasoning = parse_completion(row["raw_text"] or "", snapshot.spec, None, None).cot if row else None
        if not reasoning:
            continue
        items.append({
            "image": record["image"], "gold": json.loads(record["answer"]), "reasoning": reasoning,
            "implied": mood_of_reasoning(reasoning), "generated": row["answer"],
        })  # fmt: skip
    return items


def swap_test(run: Path, snapshot: Any, seed: int) -> dict[str, Any]:
    """Counts for one run (see the module docstring)."""
    from rise.modeling import load_model_and_processor
    from rise.training.reading_rows import blank_like

    items = held_out_items(snapshot, run / PREDICTIONS)
    model, adapter = trained_model(run)
    loaded, processor = load_model_and_processor(model, adapter=adapter, device="cpu", dtype="float32")
    labels = list(snapshot.spec.labels)

    def answer(image: Any, reasoning: str) -> str:
        return labels[int(label_log_probs(loaded, processor, snapshot.spec, image, reasoning).argmax())]

    rng = random.Random(seed)
    counts = dict.fromkeys(
        ("reasoning_implies_gold", "generated_follows_reasoning", "forced_own_follows", "forced_own_repeats_generated",
         "swapped", "swapped_follows_swapped_reasoning", "swapped_stays_with_gold", "blank_image_follows"), 0,
    )  # fmt: skip
    for item in items:
        counts["reasoning_implies_gold"] += item["implied"] == item["gold"]
        counts["generated_follows_reasoning"] += item["implied"] is not None and item["generated"] == item["implied"]
        others = [other for other in items if other["implied"] not in (None, item["implied"])]
        if item["implied"] is None or not others:
            continue
        own = answer(item["image"], item["reasoning"])
        counts["forced_own_follows"] += own == item["implied"]
        counts["forced_own_repeats_generated"] += own == item["generated"]
        counts["blank_image_follows"] += answer(blank_like(item["image"]), item["reasoning"]) == item["implied"]
        other = rng.choice(others)
        swapped = answer(item["image"], other["reasoning"])
        counts["swapped"] += 1
        counts["swapped_follows_swapped_reasoning"] += swapped == other["implied"]
        counts["swapped_stays_with_gold"] += swapped == item["gold"]
    return {"run": str(run), "model": model, "adapter": adapter, "items": len(items), **counts}


def markdown_report(report: dict[str, Any]) -> str:
    lines = [
        "# Does the answer follow the reasoning? (swap test)",
        "",
        f"Snapshot `{report['data']}`; made by `{report['command']}` on {report['machine']}. Counts of held-out "
        "items. *Implied*: the mood the reasoning's colour words give. *Forced*: the likeliest label teacher-forced "
        "after the image and a reasoning. *Swapped*: the reasoning of another held-out item that implies a "
        "different mood. *Blank*: the item's own reasoning after a uniform grey image.",
        "",
        "| run | items | reasoning implies the true mood | generated answer follows its reasoning | forced with "
        "its own reasoning: repeats the generated answer | swapped: answer follows the swapped reasoning | "
        "swapped: answer stays with the image's true mood | blank: answer follows its own reasoning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        lines.append(
            f"| `{Path(run['run']).name}` | {run['items']} | {run['reasoning_implies_gold']} | "
            f"{run['generated_follows_reasoning']} | {run['forced_own_repeats_generated']} | "
            f"{run['swapped_follows_swapped_reasoning']} of {run['swapped']} | "
            f"{run['swapped_stays_with_gold']} of {run['swapped']} | "
            f"{run['blank_image_follows']} of {run['swapped']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the training-data snapshot the runs were trained and scored on")
    parser.add_argument("--runs", required=True, help="comma-separated RISE pipeline output folders")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "reasoning-reliance"))
    parser.add_argument("--seed", type=int, default=0, help="draws the swapped reasonings")
    args = parser.parse_args(argv)

    from rise.training.records import load_snapshot

    snapshot = load_snapshot(args.data)
    if tuple(snapshot.spec.labels) != ("sunny", "stormy", "balanced"):
        print(f"{args.data}: the swap test reads moods off colour words; this snapshot's labels are "
              f"{list(snapshot.spec.labels)}, not mood's.", file=sys.stderr)  # fmt: skip
        return 2
    runs = [Path(run.strip()) for run in args.runs.split(",") if run.strip()]
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/reasoning_reliance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": _machine(),
        "data": args.data,
        "seed": args.seed,
        "runs": [swap_test(run, snapshot, args.seed) for run in runs],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, "reasoning_reliance", report, markdown_report(report), lambda report, path: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

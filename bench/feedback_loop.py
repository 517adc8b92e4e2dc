"""Human feedback in rounds through the app itself: how held-out accuracy grows with the verdicts spent, for RISE with
the human-feedback reward against SFT on the corrected labels, and how many verdicts each needs to come within 5
points of an oracle trained on every training item's ground truth.

    .venv/bin/python bench/feedback_loop.py --verdicts 40  # the committed run, about 110 min
    .venv/bin/python bench/feedback_loop.py --task mood --rounds 3 --verdicts 16
    .venv/bin/python bench/feedback_loop.py --quick --model DIR --out /tmp/loop   # seconds; what the tests run

A project of synthetic items (`bench/learning_tasks.py`; ground truth stored for the held-out items only) is
annotated by the demo base model. Then, round after round:

1. a simulated reviewer, driven by the synthetic ground truth, works through the app's review queue
   (`app.services.review.next_task` / `submit_verdict`): it accepts a right prediction, corrects a wrong one, and
   sometimes (`reject_share`) rejects it without a correction, as a hurried reviewer would. With `--reasons` it
   also writes why, as a reviewer does in the review screen's reasoning box (`Y`): the scene's worked reasoning
   (`bench.learning_tasks.exact_reasoning`, for mood "… A small red square on the left: warm one. … Warm two,
   cool one."), on its corrections only (`corrections`) or on every answer it gives (`all`: an accept with a
   reasoning is saved as a correction with the model's answer, as the review screen saves it); the default,
   `none`, writes nothing. Reasons lengthen completions, so every run then gets the worked-reasoning limits
   (`BenchSettings.for_reasoning`);
2. a retraining job is queued (`app.services.jobs.request_retrain`) and the worker runs it (`app.worker.loop.Worker`):
   snapshot of the verdicts, RISE pipeline in a subprocess, evaluation on the held-out items, version registration,
   and re-annotation of the unreviewed items when the new version is promoted;
3. from the same snapshot, SFT on the trusted answers alone (accepted and corrected labels) is trained with the same
   number of optimiser steps and scored on the same held-out items.

Each round's score is the mean over training seeds (`--seeds`, default 0,1,2), with the spread reported: the worker's
job trains with the first seed, and RISE is rerun on the job's own snapshot with the same settings for the others;
SFT trains once per seed. One seed is not enough to compare methods here: the same snapshot of 231 reviewed items
gave RISE 0.57, 0.72 and 0.61 held-out accuracy with seeds 0, 1 and 2.

The oracle is what the same steps make of the ground truth of every training item (its labels, without
reasonings), as if each had been reviewed, on the same held-out items: SFT on it and RISE on it are both trained,
and the better of the two is the score that verdicts are spent to approach (SFT alone can fall below what a few
rounds of verdicts reach, which would make every method "within 5 points" of it at once).

Writes `feedback_loop.json`, `feedback_loop.md` and `feedback_loop.png` (held-out score against verdicts spent).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.learning import (
    REPO,
    BenchSettings,
    _machine,
    bench_parser,
    pipeline_config,
    pyplot,
    quiet_model_folder,
    rise_options,
    write_results,
)
from bench.learning_tasks import BenchTask, exact_reasoning, get_task

TRAINED_SECTIONS = ("rise_cot", "filter", "sft", "rft", "evaluation")
# When the simulated reviewer writes its reasoning: never, with its corrections, or with every answer it gives.
REASON_POLICIES = ("none", "corrections", "all")
METHOD_NAMES = {"sft": "SFT", "rise": "RISE"}
VERDICT_KINDS = ("accept", "correct", "reject")


def verdicts_given(counts: dict[str, int]) -> int:
    """How many verdicts a round's `counts` hold (its "reasoned" count is among them, not beside them)."""
    return sum(counts[kind] for kind in VERDICT_KINDS)


@dataclass
class LoopSettings:
    items: int = 300  # images in the project
    eval_fraction: float = 0.25  # share held out (with ground truth) for evaluation
    rounds: int = 6
    verdicts_per_round: int = 32
    reject_share: float = 0.2  # of wrong predictions, rejected without a correction
    reasons: str = "none"  # when the reviewer writes its reasoning (REASON_POLICIES)
    seed: int = 0  # of the images and the reviewer's choices
    training_seeds: tuple[int, ...] = (0, 1, 2)  # every training run is repeated with each

    @classmethod
    def quick(cls) -> LoopSettings:
        return cls(items=12, eval_fraction=0.3, rounds=1, verdicts_per_round=4, training_seeds=(0,))


@dataclass(frozen=True)
class SimulatedVerdict:
    kind: str  # "accept", "correct" or "reject": what the reviewer decided about the model's answer
    correction: Any = None  # the right answer, for "correct"
    reasoning: str | None = None  # what the reviewer wrote in the reasoning box


class SimulatedReviewer:
    """Accepts right predictions, corrects wrong ones with the ground truth, rejects some without correcting, and
    writes the scene's reasoning (`reasonings`, by file name) with the answers its `reasons` policy says."""

    def __init__(
        self,
        task: BenchTask,
        truths: dict[str, Any],
        reject_share: float,
        seed: int,
        *,
        reasons: str = "none",
        reasonings: dict[str, str | None] | None = None,
    ):
        if reasons not in REASON_POLICIES:
            raise ValueError(f"Unknown reasons policy {reasons!r}; choose from {REASON_POLICIES}")
        if reasons != "none" and reasonings is None:
            raise ValueError(f"The reviewer needs the scenes' reasonings to write them ({reasons=})")
        self.task = task
        self.truths = truths
        self.reject_share = reject_share
        self.reasons = reasons
        self.reasonings = reasonings or {}
        self.rng = np.random.default_rng(seed)

    def verdict(self, review_task: Any, file_name: str) -> SimulatedVerdict:
        """The verdict on a review task whose image was imported from `file_name`."""
        from rise.rewards import answer_accuracy

        truth = self.truths[file_name]
        reasoning = self.reasonings.get(file_name)
        if review_task.answer is not None:
            score = answer_accuracy(review_task.answer, truth, self.task.spec)
            if score >= (1.0 if self.task.metric == "accuracy" else 0.5):
                return SimulatedVerdict("accept", reasoning=reasoning if self.reasons == "all" else None)
        if self.rng.random() < self.reject_share:
            return SimulatedVerdict("reject")
        return SimulatedVerdict("correct", truth, reasoning if self.reasons != "none" else None)


def _write_project_files(
    task: BenchTask, folder: Path, settings: LoopSettings
) -> tuple[Path, dict[str, Any], dict[str, str | None]]:
    """Images plus a demo-style manifest for one project; the ground truth and the worked reasoning by image file
    name."""
    from bench.learning_tasks import png_bytes

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    items, truths, reasonings = [], {}, {}
    for index in range(settings.items):
        item = task.make_item(settings.seed * 100_003 + index)
        name = f"{task.name}_{index:04d}.png"
        (images / name).write_bytes(png_bytes(item.image))
        items.append({"file": f"images/{name}", "query": item.query, "answer": item.answer})
        truths[name] = item.answer
        reasonings[name] = exact_reasoning(item, "worked")
    project = {
        "name": f"feedback-{task.name}",
        "task_type": task.spec.task_type.value,
        "labels": list(task.spec.labels),
        "description": task.description,
        "eval_fraction": settings.eval_fraction,
        "items": items,
    }
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"generator": {"benchmark": "feedback_loop"}, "projects": [project]}))
    return manifest, truths, reasonings


def pipeline_overrides(model: str, bench: BenchSettings, seed: int) -> list[str]:
    """The retraining job's pipeline settings (`section.field=value`): RISE's stages as in the learning benchmark."""
    config = pipeline_config(model, Path("."), Path("."), bench, seed)
    overrides = []
    for section in TRAINED_SECTIONS:
        for name, value in asdict(getattr(config, section)).items():
            overrides.append(f"{section}.{name}={json.dumps(value)}")
    # The job scores the base model beside the new version (in the same process): the promotion compares them.
    return [*overrides, "evaluation.include_base=true"]


def review_round(runtime: Any, project_id: int, user_id: int, reviewer: SimulatedReviewer, count: int) -> dict:
    """`count` verdicts through the review queue; returns how many of each, and how many came with a reasoning."""
    from app.services.review import next_task, submit_verdict
    from db.models import Item

    counts = dict.fromkeys((*VERDICT_KINDS, "reasoned"), 0)
    task = next_task(runtime, project_id=project_id, user_id=user_id)
    while task is not None and verdicts_given(counts) < count:
        with runtime.sessions.begin() as session:
            file_name = session.get(Item, task.item_id).original_name  # the reviewer "knows" the image it sees
        verdict = reviewer.verdict(task, file_name)
        counts[verdict.kind] += 1
        counts["reasoned"] += verdict.reasoning is not None
        if verdict.kind == "accept" and verdict.reasoning is not None:
            # As the review screen saves an accept that comes with the reviewer's reasoning.
            kind, answer = "correct", task.answer
        else:
            kind, answer = verdict.kind, verdict.correction
        task = submit_verdict(
            runtime,
            user_id=user_id,
            item_id=task.item_id,
            verdict=kind,
            corrected_answer=answer,
            corrected_cot=verdict.reasoning or "",
        )
    if task is not None:
        from app.services.review import release_task

        release_task(runtime, user_id=user_id, item_id=task.item_id)  # leave the next item for the next round
    return counts


def sft_on_labels(model: str, data: Path, out: Path, bench: BenchSettings, seed: int) -> dict[str, Any]:
    """SFT on the snapshot's trusted answers alone, the same steps as RISE in total; held-out metrics and seconds."""
    from rise.training.config import EvalConfig
    from rise.training.evaluate import evaluate_model
    from rise.training.pipeline import trained_version
    from rise.training.records import load_snapshot
    from rise.training.sft import train_sft

    config = pipeline_config(model, data, out, bench, seed)
    snapshot = load_snapshot(data)
    summary = train_sft(model, snapshot, config.baseline_sft, out / "baseline_sft", None)
    evaluation = EvalConfig(batch_size=bench.eval_batch, max_new_tokens=bench.eval_max_new_tokens)
    trained = trained_version(model, config.baseline_sft.use_lora, summary["final"])
    report = evaluate_model(trained["model"], snapshot, evaluation, adapter=trained["adapter"], name="sft")
    return {"metrics": report["metrics"], "train_seconds": summary["seconds"], "steps": summary["steps"]}


def rise_on_labels(model: str, data: Path, out: Path, bench: BenchSettings, seed: int) -> dict[str, Any]:
    """RISE's stages on a snapshot, as the learning benchmark runs them; the held-out metrics."""
    from rise.training.pipeline import run_pipeline

    results = run_pipeline(pipeline_config(model, data, out, bench, seed), "all")
    return results["evaluate"]["reports"]["rise"]["metrics"]


def oracle_snapshot(
    runtime: Any, project_id: int, task: BenchTask, truths: dict[str, Any], images: Path, out: Path
) -> Path:
    """A snapshot of the project with every item's ground truth: its held-out items as they are, and every training
    item labelled as if a reviewer had corrected it."""
    from db.crud.projects import list_items
    from rise.training.records import TrainingRecord, write_snapshot

    with runtime.sessions.begin() as session:
        items = [
            (i.id, i.original_name, i.split.value, i.width, i.height, i.query)
            for i in list_items(session=session, project_id=project_id)
        ]
    records = [
        TrainingRecord(item_id=item_id, image=images / name, width=width, height=height, split=split,
                       answer=truths[name], answer_source="import", query=query)
        for item_id, name, split, width, height, query in items
    ]  # fmt: skip
    return write_snapshot(out, task.spec, records, info={"benchmark": "feedback_loop oracle"})


def seed_mean(runs: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """Held-out metrics averaged over the runs of several training seeds, with each run's `metric` under `seeds`."""
    if not runs:
        return None
    keys = [key for key, value in runs[0].items() if isinstance(value, int | float) and not isinstance(value, bool)]
    mean = {key: float(np.mean([run[key] for run in runs if run.get(key) is not None])) for key in keys}
    return {**mean, "items": runs[0].get("items"), "seeds": [run.get(metric) for run in runs]}


def verdicts_to_reach(report: dict[str, Any], key: str, target: float) -> int | None:
    """The verdicts spent by the first round whose `key` score is at least `target`; None if none got there."""
    metric = get_task(report["task"]).metric
    for row in report["rounds"]:
        score = (row.get(key) or {}).get(metric)
        if score is not None and score >= target:
            return row["verdicts"]
    return None


def run_loop(task: BenchTask, model: str, work: Path, settings: LoopSettings, bench: BenchSettings) -> dict[str, Any]:
    from app.runtime import open_runtime
    from app.services.auth import create_user
    from app.services.demo import annotate_demo, setup_demo
    from app.services.jobs import job_dir, request_retrain
    from app.services.model_versions import list_versions
    from app.settings import load_settings
    from app.worker.loop import Worker, WorkerConfig

    manifest, truths, reasonings = _write_project_files(task, work / "files", settings)
    runtime = open_runtime(load_settings({"RISE_DATA_DIR": str(work / "data")}), upgrade=True)
    rounds: list[dict[str, Any]] = []
    try:
        summary = setup_demo(runtime, manifest, train_labelled_fraction=0.0)  # ground truth for held-out items only
        name, project_id = summary.projects[0].name, summary.projects[0].id
        annotate_demo(runtime, [project_id], model)
        user = create_user(runtime, "simulated-reviewer", "simulated-reviewer-password", "reviewer")
        reviewer = SimulatedReviewer(
            task, truths, settings.reject_share, settings.seed, reasons=settings.reasons, reasonings=reasonings
        )
        worker = Worker(runtime, WorkerConfig(check_policies=False, idle_seconds=0.1, progress_seconds=2.0))
        first_seed, *other_seeds = settings.training_seeds
        overrides = pipeline_overrides(model, bench, first_seed)
        oracle_data = oracle_snapshot(
            runtime, project_id, task, truths, work / "files" / "images", work / "oracle" / "data"
        )
        oracle_runs = {
            "sft": [
                sft_on_labels(model, oracle_data, work / "oracle" / f"sft-seed-{seed}", bench, seed)["metrics"]
                for seed in settings.training_seeds
            ],
            "rise": [
                rise_on_labels(model, oracle_data, work / "oracle" / f"rise-seed-{seed}", bench, seed)
                for seed in settings.training_seeds
            ],
        }
        oracles = {key: seed_mean(runs, task.metric) for key, runs in oracle_runs.items()}
        print(
            f"  oracle (every training item's ground truth): SFT {_score(oracles['sft'], task)}, "
            f"RISE {_score(oracles['rise'], task)}",
            flush=True,
        )
        spent = 0
        for number in range(1, settings.rounds + 1):
            started = time.perf_counter()
            counts = review_round(runtime, project_id, user.id, reviewer, settings.verdicts_per_round)
            spent += verdicts_given(counts)
            job = request_retrain(runtime, project_id, model=model, overrides=overrides, launcher="python")
            worker.run(exit_when_idle=True)  # the training job, then the re-annotation it queues on promotion
            versions = list_versions(runtime, project_id)
            version = next((v for v in versions if v.job_id == job.id), None)
            base = next((v.metrics.get("eval") for v in versions if v.is_base), None)
            data = job_dir(runtime, job.id) / "data"
            folder = work / f"round-{number}"
            # The worker's version is the first seed's RISE run; the others retrain on the job's own snapshot.
            rise_runs = [] if version is None else [version.metrics.get("eval") or {}]
            for seed in other_seeds:
                rise_runs.append(rise_on_labels(model, data, folder / f"rise-seed-{seed}", bench, seed))
            sft_runs = []
            for seed in settings.training_seeds:
                sft_runs.append(sft_on_labels(model, data, folder / f"sft-seed-{seed}", bench, seed))
            row = {
                "round": number,
                "verdicts": spent,
                "verdict_counts": counts,
                "rise": None if version is None else seed_mean(rise_runs, task.metric),
                "rise_promoted": bool(version and version.is_serving),
                "base": base,
                "sft": seed_mean([run["metrics"] for run in sft_runs], task.metric),
                "sft_train_seconds": round(float(np.mean([run["train_seconds"] for run in sft_runs])), 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
            if version is None:
                row["error"] = f"retraining job #{job.id} registered no version; see {job_dir(runtime, job.id)}"
            rounds.append(row)
            print(
                f"  round {number}: {spent} verdicts {counts}; held-out {task.metric}: "
                f"RISE {_score(row['rise'], task)}, SFT {_score(row['sft'], task)} ({row['seconds']:.0f} s)",
                flush=True,
            )
    finally:
        runtime.close()
    return {"project": name, "rounds": rounds, "oracles": oracles, "oracle": best_oracle(oracles, task)}


def best_oracle(oracles: dict[str, dict[str, Any]], task: BenchTask) -> dict[str, Any]:
    """The oracle run with the higher held-out score, and which method it is."""
    method = max(oracles, key=lambda key: oracles[key].get(task.metric) or 0.0)
    return {**oracles[method], "method": method}


def _score(metrics: dict[str, Any] | None, task: BenchTask) -> str:
    """The headline score; a mean over seeds also shows their standard deviation."""
    value = (metrics or {}).get(task.metric)
    if value is None:
        return "–"
    seeds = [score for score in (metrics or {}).get("seeds") or [] if score is not None]
    return f"{value:.2f}" + (f" ± {np.std(seeds, ddof=1):.2f}" if len(seeds) > 1 else "")


def _cell(metrics: dict[str, Any] | None, task: BenchTask) -> str:
    """The headline score; for boxes also the mean IoU, the metric that decides a version's promotion."""
    if task.metric == "accuracy":
        return _score(metrics, task)
    mean_iou = (metrics or {}).get("mean_iou")
    return f"{_score(metrics, task)} / {'–' if mean_iou is None else f'{mean_iou:.2f}'}"


REASONS_SENTENCE = {
    "none": "It writes no reasoning.",
    "corrections": "With each correction it writes the scene's worked reasoning (what a reviewer types with `Y`), "
    "which becomes the item's reasoning in RISE's SFT data.",
    "all": "With every answer it gives (accepts too, which the app then saves as corrections) it writes the "
    "scene's worked reasoning (what a reviewer types with `Y`), the item's reasoning in RISE's SFT data.",
}


def _written_sentence(steps: int, judge: bool) -> str:
    """What RISE-CoT made of the reviewers' written reasonings, for the report's opening paragraph."""
    if not steps:
        return ""
    reading = " and to reconstruct the reviewer's label from each (its judge)" if judge else ""
    return (
        f"Before its GRPO, RISE-CoT trains {steps} steps on the reasonings the reviewer wrote{reading}, and an "
        "accepted item's own reasoning gives way to a verified rollout in the filter. "
    )


def _options_sentence(bench: dict[str, Any]) -> str:
    """RISE's options beyond the paper, when the run used any, for the report's opening paragraph."""
    words = rise_options(bench).rstrip("; ")
    return f"RISE's options: {words}. " if words else ""


def markdown_report(report: dict[str, Any]) -> str:
    task = get_task(report["task"])
    settings, bench = report["settings"], report["bench"]
    label = "accuracy" if task.metric == "accuracy" else "IoU > 0.5 rate / mean IoU (which decides promotion)"
    lines = [
        "# Feedback-loop benchmark",
        "",
        f"Task `{task.name}` ({task.description}); {settings['items']} images, {report['held_out']} held out "
        f"with ground truth. A simulated reviewer gives {settings['verdicts_per_round']} verdicts per round: it "
        f"accepts right predictions and corrects wrong ones, or rejects them without a correction "
        f"{settings['reject_share']:.0%} of the time. {REASONS_SENTENCE[settings.get('reasons', 'none')]} "
        f"{_written_sentence(bench.get('written_reasoning_steps', 0), bench.get('written_reasoning_judge', False))}"
        f"{_options_sentence(bench)}"
        f"After each round the worker retrains with RISE (the human-feedback reward included) and SFT trains on "
        f"the trusted labels, both from the base model `{report['model']}` with {bench['steps']} "
        f"optimiser steps. Held-out {label}, mean ± standard deviation over training seeds "
        f"{', '.join(map(str, settings['training_seeds']))}. Made by `{report['command']}` in "
        f"{report['total_minutes']:.0f} min on {report['machine']}.",
        "",
        "| round | verdicts spent | accepted / corrected / rejected (with a reasoning) | RISE + feedback | promoted "
        "| SFT on labels |",
        "|---|---|---|---|---|---|",
    ]
    base = next((r["base"] for r in report["rounds"] if r.get("base")), None)
    lines.append(f"| 0 | 0 | – | {_cell(base, task)} (base) | – | {_cell(base, task)} (base) |")
    for row in report["rounds"]:
        counts = row["verdict_counts"]
        lines.append(
            f"| {row['round']} | {row['verdicts']} | {counts['accept']} / {counts['correct']} / {counts['reject']} "
            f"({counts.get('reasoned', 0)}) "
            f"| {_cell(row['rise'], task)} | {'yes' if row['rise_promoted'] else 'no'} | {_cell(row['sft'], task)} |"
        )
    oracle, oracles = report.get("oracle"), report.get("oracles") or {}
    if oracle:
        target = oracle[task.metric] - 0.05
        needed = {key: verdicts_to_reach(report, key, target) for key in ("rise", "sft")}
        spent = report["rounds"][-1]["verdicts"] if report["rounds"] else 0

        def _needed(key: str) -> str:
            return f"{needed[key]}" if needed[key] is not None else f"not within {spent}"

        runs = ", ".join(f"{METHOD_NAMES[key]} {_cell(metrics, task)}" for key, metrics in oracles.items())
        lines += [
            "",
            f"Oracle (the ground truth of every training item, same steps; the better of {runs or 'the runs'}): "
            f"{_cell(oracle, task)}. Verdicts needed to come within 5 points of it ({target:.2f}): RISE + feedback "
            f"{_needed('rise')}, SFT on labels {_needed('sft')}.",
        ]
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    task = get_task(report["task"])
    base = next((r["base"] for r in report["rounds"] if r.get("base")), None) or {}
    xs = [0] + [r["verdicts"] for r in report["rounds"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label in (("rise", "RISE + human feedback"), ("sft", "SFT on corrected labels")):
        runs = [base] + [r[key] or {} for r in report["rounds"]]
        ys = [run.get(task.metric) for run in runs]
        seeds = [[score for score in run.get("seeds") or [] if score is not None] for run in runs]
        spreads = [np.std(scores, ddof=1) if len(scores) > 1 else 0.0 for scores in seeds]
        ax.errorbar(xs, [np.nan if y is None else y for y in ys], yerr=spreads, marker="o", capsize=3, label=label)
    if report.get("oracle"):
        ax.axhline(report["oracle"][task.metric], color="grey", linestyle="--", label="oracle (all ground truth)")
    ax.set_xlabel("verdicts spent")
    ax.set_ylabel(f"held-out {'accuracy' if task.metric == 'accuracy' else 'IoU > 0.5 rate'}")
    ax.set_ylim(0, 1)
    ax.set_title(f"{task.name}: learning from review verdicts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "feedback_loop")
    parser.add_argument("--task", default="mood", help="benchmark task (bench/learning_tasks.py)")
    parser.add_argument("--rounds", type=int, help="review-and-retrain rounds")
    parser.add_argument("--verdicts", type=int, help="verdicts per round")
    parser.add_argument("--items", type=int, help="images in the project")
    parser.add_argument("--steps", type=int, help="optimiser steps per retraining")
    parser.add_argument("--seeds", help="comma-separated training seeds, each training run repeated with each")
    parser.add_argument(
        "--reasons",
        choices=REASON_POLICIES,
        default="none",
        help="when the simulated reviewer writes its reasoning: never, with its corrections, or with every answer",
    )
    parser.add_argument(
        "--written-reasoning-steps",
        type=int,
        help="steps RISE-CoT learns the reasonings reviewers wrote before its GRPO, so it writes in their form on "
        "accepted items too; an accepted item's own reasoning then gives way to a verified rollout (default 0)",
    )
    parser.add_argument(
        "--no-written-reasoning-judge",
        dest="written_reasoning_judge",
        action="store_false",
        default=None,
        help="those steps teach the writing only, not the judge's reading of it (reconstructing the reviewer's "
        "label from the written reasoning)",
    )
    parser.add_argument("--rise-cot-beta", type=float, help="KL coefficient of RISE-CoT's GRPO against its start")
    args = parser.parse_args(argv)

    if not quiet_model_folder(args.model):
        return 2
    settings = LoopSettings.quick() if args.quick else LoopSettings()
    bench = BenchSettings.quick() if args.quick else BenchSettings()
    for option, target, field in (
        ("rounds", settings, "rounds"), ("verdicts", settings, "verdicts_per_round"), ("items", settings, "items"),
        ("steps", bench, "steps"), ("written_reasoning_steps", bench, "written_reasoning_steps"),
        ("written_reasoning_judge", bench, "written_reasoning_judge"), ("rise_cot_beta", bench, "rise_cot_beta"),
    ):  # fmt: skip
        if getattr(args, option) is not None:
            setattr(target, field, getattr(args, option))
    settings.reasons = args.reasons
    if args.seeds is not None:
        settings.training_seeds = tuple(int(seed) for seed in args.seeds.split(",") if seed.strip())
    task = get_task(args.task)
    bench = bench.for_task(task).for_reasoning("worked" if settings.reasons != "none" else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="rise-feedback-"))
    started = time.perf_counter()
    try:
        print(f"{task.name}: {task.description}", flush=True)
        loop = run_loop(task, str(Path(args.model).resolve()), work, settings, bench)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    model = Path(args.model).resolve()
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/feedback_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(model.relative_to(REPO)) if model.is_relative_to(REPO) else str(model),
        "machine": _machine(),
        "task": task.name,
        "settings": dataclasses.asdict(settings),
        "bench": {**asdict(bench), "rise_split": list(bench.rise_split)},
        "held_out": next((r["rise"].get("items") for r in loop["rounds"] if r.get("rise")), None),
        "rounds": loop["rounds"],
        "oracle": loop["oracle"],
        "oracles": loop["oracles"],
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    write_results(out, "feedback_loop", report, markdown_report(report), plot_report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of a task can fine-tuning teach the base model when its reasoning is perfect? The ceiling of RISE's SFT
stage, which trains on reasoning + answer.

    .venv/bin/python bench/reasoning_ceiling.py --out bench/results/reasoning-ceiling   # mood, LoRA and full: 16 min
    .venv/bin/python bench/reasoning_ceiling.py --task shape --steps 60 --methods lora
    .venv/bin/python bench/reasoning_ceiling.py --steps 320 --methods full --reasoning worked   # counts written out
    .venv/bin/python bench/reasoning_ceiling.py --task odd-one-out --steps 240 --methods full --reasoning worked
    .venv/bin/python bench/reasoning_ceiling.py --task odd-one-out --methods full --sft-learning-rate 2e-3
    .venv/bin/python bench/reasoning_ceiling.py --quick --model DIR --out /tmp/ceiling      # seconds; what tests run

Every training item gets its scene's exact caption (`rise.synthetic.caption`: each object's size, colour, shape and
place) as a reviewer-written reasoning, so the filter keeps it and SFT (`rise.training.sft`, the pipeline's `sft`
stage) trains on image + prompt -> `<think>caption</think><answer>y</answer>` for all of them: the best data RISE's
reasoning stage could ever hand on. Per method (`lora`: the benchmark's LoRA settings; `full`: every weight) it
reports the held-out score at each checkpoint (the task's headline metric: accuracy, or for a box task the share of
boxes at IoU > 0.5) and, for a classification task, the accuracy on training items at the end too, and the
cross-entropy of the answer token among the labels given the exact caption (ln of the label count = no information
taken from the reasoning).

With `--reasoning worked` the reasoning is the rule's worked reasoning (`LabelRule.working`; mood: the caption with
each object's colour family and that family's running count after its sentence, "A small red square on the left:
warm one.", then the totals, "Warm two, cool one."), the reasoning a model would write if it had worked the rule
out: each step then reads only the sentence before it, and the answer a comparison. For the odd one out
(`rise.synthetic.odd_one_out_working`) each sentence ends on its object's colour and shape and how many of those came
so far, and a last sentence names the one that stayed at one, so the box is that of an object the reasoning names.

If even this stays near a constant answer, the method cannot be the reason: the base model cannot yet learn the
rule from the reasoning within the step budget, and `bench/learning.py` will show no method reaching it.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.learning import (
    REPO,
    BenchSettings,
    _machine,
    bench_parser,
    checkpoint_curve,
    pipeline_config,
    pyplot,
    quiet_model_folder,
    write_results,
)
from bench.learning_tasks import REASONINGS, exact_reasoning, get_task, task_records
from rise.training.records import write_snapshot

REASONING_WORDS = {"caption": "exact caption", "worked": "exact caption with the steps to the answer written in"}
METRIC_WORDS = {"accuracy": "accuracy", "accuracy_at_iou": "share of boxes at IoU > 0.5"}
# Both at the learning benchmark's SFT learning rate, so the two differ only in what they train.
METHODS = {"lora": {"use_lora": True}, "full": {"use_lora": False}}


def label_log_probs(loaded: Any, processor: Any, spec: Any, image: Any, reasoning: str) -> Any:
    """Log-probabilities over the task's labels (their first tokens) of the answer that follows `reasoning`, given
    image + prompt + `<think>reasoning</think>`, teacher-forced up to `<answer`. (The tokenizer joins `>` and the
    label into one token, so the prefix stops before the `>`.)"""
    import torch

    from rise.prompts import annotation_messages

    tokenizer = processor.tokenizer
    first_tokens = [tokenizer.encode(">" + label, add_special_tokens=False)[0] for label in spec.labels]
    reply = {"role": "assistant", "content": [{"type": "text", "text": f"<think>{reasoning}</think><answer"}]}
    text = processor.apply_chat_template([*annotation_messages(spec), reply], tokenize=False)
    text = text[: text.rindex("<answer") + len("<answer")]
    with torch.no_grad():
        logits = loaded(**processor(text=[text], images=[image], return_tensors="pt")).logits[0, -1]
    return torch.log_softmax(logits[first_tokens], dim=-1)


def answer_cross_entropy(
    model: str, adapter: str | None, task_name: str, seeds: range, reasoning: str = "caption"
) -> dict[str, float]:
    """Mean cross-entropy of the right label's first token among the labels' first tokens, and how often it is the
    most likely, given image + prompt + the exact reasoning (`exact_reasoning`), teacher-forced up to `<answer`."""
    from rise.modeling import load_model_and_processor

    task = get_task(task_name)
    loaded, processor = load_model_and_processor(model, adapter=adapter, device="cpu", dtype="float32")
    loaded.eval()
    losses, hits = [], 0
    for seed in seeds:
        item = task.make_item(seed)
        log_probs = label_log_probs(loaded, processor, task.spec, item.image, exact_reasoning(item, reasoning))
        right = task.spec.labels.index(item.answer)
        losses.append(-float(log_probs[right]))
        hits += int(int(log_probs.argmax()) == right)
    return {"cross_entropy": round(sum(losses) / len(losses), 4), "accuracy": round(hits / len(losses), 4)}


def run_method(
    method: str, model: str, work: Path, task_name: str, settings: BenchSettings, reasoning: str
) -> dict[str, Any]:
    from rise.training.pipeline import run_pipeline

    task = get_task(task_name)
    data = work / f"data-{reasoning}"
    if not data.exists():
        records = task_records(task, settings.n_train, settings.n_eval, reasoning=reasoning)
        write_snapshot(data, task.spec, records, info={"benchmark_task": task.name, "reasoning": reasoning})
    out = work / f"{method}-{reasoning}"
    config = pipeline_config(model, data, out, settings, seed=0)
    config.sft.max_steps = settings.steps
    config.filter.min_selected = 0  # every item already has its reasoning
    for name, value in METHODS[method].items():
        setattr(config.sft, name, value)
    started = time.perf_counter()
    trained = run_pipeline(config, ["filter", "sft"])["sft"]  # its model, and its adapter after a LoRA run
    seconds = round(time.perf_counter() - started, 1)
    curve = checkpoint_curve(model, data, out, ("filter", "sft"), settings)
    # Training items are seeds 0.. (task_records); held-out ones come from their own seed range.
    train_seeds = range(min(settings.n_eval, settings.n_train))
    return {
        "train_seconds": seconds,
        "learning_rate": config.sft.learning_rate,
        # "accuracy" is the task's headline metric (`BenchTask.metric`): for a box task, IoU > 0.5.
        "curve": [{"step": p["step"], "accuracy": p["metrics"][task.metric]} for p in curve],
        "train_items": (
            answer_cross_entropy(trained["model"], trained["adapter"], task_name, train_seeds, reasoning)
            if task.spec.labels
            else None
        ),
    }


def markdown_report(report: dict[str, Any]) -> str:
    steps = sorted({p["step"] for r in report["methods"].values() for p in r["curve"]})
    reasoning = REASONING_WORDS[report.get("reasoning", "caption")]
    lines = [
        "# Reasoning ceiling",
        "",
        f"Task `{report['task']}`, base model `{report['model']}`: SFT on image + prompt -> {reasoning} + answer "
        f"for all {report['n_train']} training items, {report['steps']} steps, scored greedily on {report['n_eval']} "
        f"held-out items. Made by `{report['command']}` in {report['total_minutes']} min on {report['machine']}.",
        "",
        f"Held-out {METRIC_WORDS[report.get('metric', 'accuracy')]} at each checkpoint:",
        "",
        "| method | " + " | ".join(str(s) for s in steps) + " |",
        "|---" * (len(steps) + 1) + "|",
    ]
    for method, result in report["methods"].items():
        by_step = {p["step"]: p["accuracy"] for p in result["curve"]}
        lines.append(f"| {method} | " + " | ".join(f"{by_step.get(s, float('nan')):.2f}" for s in steps) + " |")
    if report["base_train_items"] is None:  # a box task: no labels to take a cross-entropy over
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"At the end, on {report['train_items']} training items, the answer token given the {reasoning} "
        f"(cross-entropy among the labels; {report['uninformed_cross_entropy']:.3f} = nothing read from the "
        "reasoning):",
        "",
        "| method | learning rate | cross-entropy | accuracy | training seconds |",
        "|---|---|---|---|---|",
    ]
    base = report["base_train_items"]
    lines.append(f"| base | – | {base['cross_entropy']:.3f} | {base['accuracy']:.2f} | – |")
    for method, result in report["methods"].items():
        items = result["train_items"]
        lines.append(
            f"| {method} | {result['learning_rate']:g} | {items['cross_entropy']:.3f} | {items['accuracy']:.2f} | "
            f"{result['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> Path | None:
    """Held-out accuracy against SFT steps, one line per method; None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for method, result in report["methods"].items():
        axes.plot([p["step"] for p in result["curve"]], [p["accuracy"] for p in result["curve"]], "o-", label=method)
    ylabel = f"held-out {METRIC_WORDS[report.get('metric', 'accuracy')]}"
    axes.set(xlabel="SFT steps", ylabel=ylabel, title=f"{report['task']}: SFT on exact reasoning")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "reasoning_ceiling")
    parser.add_argument("--task", default="mood", help="a task of bench/learning_tasks.py")
    parser.add_argument("--steps", type=int, default=120, help="SFT steps per method (the learning benchmark's)")
    parser.add_argument(
        "--reasoning",
        choices=REASONINGS,
        default="caption",
        help="each training item's reasoning: its exact caption, or with the steps to the answer written in",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--sft-learning-rate", type=float, help="learning rate of SFT (default: the task's)")
    args = parser.parse_args(argv)
    if not quiet_model_folder(args.model):
        return 2
    task = get_task(args.task)
    settings = BenchSettings.quick() if args.quick else BenchSettings(steps=args.steps, checkpoints=6, eval_batch=30)
    settings.sft_learning_rate = args.sft_learning_rate
    if args.quick:
        settings.steps = 2
    settings = settings.for_task(task).for_reasoning(args.reasoning)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="rise-ceiling-"))
    started = time.perf_counter()
    model = str(Path(args.model).resolve())
    train_items = min(settings.n_eval, settings.n_train)
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/reasoning_ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(Path(model).relative_to(REPO)) if Path(model).is_relative_to(REPO) else model,
        "machine": _machine(),
        "task": task.name,
        "n_train": settings.n_train,
        "n_eval": settings.n_eval,
        "steps": settings.steps,
        "train_items": train_items,
        "metric": task.metric,
        "uninformed_cross_entropy": math.log(len(task.spec.labels)) if task.spec.labels else None,
        "reasoning": args.reasoning,
        "base_train_items": (
            answer_cross_entropy(model, None, task.name, range(train_items), args.reasoning)
            if task.spec.labels
            else None
        ),
        "methods": {},
    }
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        print(f"{task.name}: SFT ({method}) on exact reasoning, {settings.steps} steps", flush=True)
        report["methods"][method] = run_method(method, model, work, task.name, settings, args.reasoning)
    report["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
    write_results(out, "reasoning_ceiling", report, markdown_report(report), plot_report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Evaluate any model version (a base model, optionally with an adapter) on a snapshot's held-out items.

    report = evaluate_model("Qwen/Qwen2-VL-2B-Instruct", load_snapshot("runs/x/data"), EvalConfig(),
                            adapter="runs/x/rft/final", out_path=Path("runs/x/eval/rise.json"))

    python -m rise.training.evaluate --model Qwen/Qwen2-VL-2B-Instruct --adapter runs/x/rft/final \
        --data runs/x/data --out runs/x/eval/rise.json

The model annotates each held-out image greedily with the app's annotation prompt; the answers are scored by
`rise.training.metrics.task_metrics` and written as a JSON report, with the predictions beside it as JSONL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rise.annotate import AnnotationInput, GenerationSettings, annotate_images
from rise.modeling import ModelLoadError, load_model_and_processor
from rise.training.config import EvalConfig
from rise.training.metrics import bootstrap_intervals, task_metrics
from rise.training.records import Snapshot, load_answer, load_snapshot, spec_to_dict


def evaluate_model(
    model: str,
    snapshot: Snapshot,
    config: EvalConfig,
    *,
    adapter: str | None = None,
    out_path: Path | None = None,
    name: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Annotate the held-out split with the model and score it.

    Args:
        model (`str`): base model id or folder (or a fully fine-tuned folder).
        snapshot (`Snapshot`): the data; `config.split` picks the items (held-out: "eval").
        config (`EvalConfig`): batching, token limit, IoU threshold.
        adapter (`str`, *optional*): a LoRA adapter folder applied on top of `model`.
        out_path (`Path`, *optional*): where to write the JSON report (predictions go to `<stem>.predictions.jsonl`).
        name (`str`, *optional*): the model version's name in the report.

    Returns:
        `dict`: the report (model, adapter, split, item count, metrics, seconds).

    Raises:
        `ValueError`: the split has no items (the report says how to hold some out).
    """
    rows = snapshot.split(config.split)
    if len(rows) == 0:
        raise ValueError(
            f"The snapshot's {config.split!r} split is empty, so there is nothing to evaluate on. Hold out part of "
            "the project (its eval_fraction) and give those items trusted annotations, then snapshot again."
        )
    spec = snapshot.spec
    started = time.perf_counter()
    loaded, processor = load_model_and_processor(model, adapter=adapter, device=device)
    settings = GenerationSettings(batch_size=config.batch_size, max_new_tokens=config.max_new_tokens, temperature=0.0)
    inputs = [AnnotationInput(image=row["image"].convert("RGB"), query=row["query"]) for row in rows]
    results = annotate_images(loaded, processor, spec, inputs, settings)
    golds = [load_answer(answer) for answer in rows["answer"]]
    metrics = task_metrics(
        spec, [r.answer for r in results], golds, [r.score for r in results], iou_threshold=config.iou_threshold
    )
    metrics["format_ok"] = sum(r.format_ok for r in results) / len(results)
    # How far each score could move on another slice of this size: promotion and the UI show it beside the score.
    metrics["ci95"] = bootstrap_intervals(
        spec, [r.answer for r in results], golds, [r.score for r in results], iou_threshold=config.iou_threshold
    )
    report = {
        "name": name or (adapter or model),
        "model": model,
        "adapter": adapter,
        "split": config.split,
        "task": spec_to_dict(spec),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 2),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=1))
        with out_path.with_suffix(".predictions.jsonl").open("w", encoding="utf-8") as handle:
            for item_id, gold, result in zip(rows["item_id"], golds, results, strict=True):
                row = {
                    "item_id": item_id,
                    "gold": gold,
                    "answer": result.answer,
                    "error": result.error,
                    "score": result.score,
                    "raw_text": result.raw_text,
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    del loaded
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rise.training.evaluate", description=evaluate_model.__doc__)
    parser.add_argument("--model", required=True, help="Base model id or folder.")
    parser.add_argument("--adapter", help="LoRA adapter folder on top of the model.")
    parser.add_argument("--data", required=True, help="Training-data snapshot folder.")
    parser.add_argument("--out", type=Path, required=True, help="Where to write the JSON report.")
    parser.add_argument("--split", default="eval", help="Snapshot split (default: the held-out items).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    try:
        config = EvalConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, split=args.split)
        report = evaluate_model(args.model, load_snapshot(args.data), config, adapter=args.adapter, out_path=args.out)
    except (ValueError, OSError, ModelLoadError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

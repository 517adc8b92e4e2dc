"""Score one model version on a job's held-out items, in a process of its own:

    python -m app.worker.evaluate_version --config JOB/pipeline.yaml --model BASE [--adapter DIR] --name NAME --out F

The worker runs it after the pipeline when the serving model's score on the same held-out items is not in the
pipeline's own evaluation (the pipeline scores the new version and the base model), so the promotion compares
like with like. Uses the pipeline config's `evaluation` settings and data snapshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rise.training.config import PipelineConfig
from rise.training.evaluate import evaluate_model
from rise.training.records import load_snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker.evaluate_version", description=__doc__)
    parser.add_argument("--config", required=True, help="The job's pipeline config (data snapshot, evaluation).")
    parser.add_argument("--model", required=True, help="Base model id or folder of the version.")
    parser.add_argument("--adapter", default=None, help="The version's LoRA adapter folder, if any.")
    parser.add_argument("--name", required=True, help="The version's name, for the report.")
    parser.add_argument("--out", required=True, type=Path, help="Where to write the JSON report.")
    args = parser.parse_args(argv)
    config = PipelineConfig.load(args.config)
    snapshot = load_snapshot(config.data)
    partial = args.out.with_suffix(".partial.json")
    evaluate_model(args.model, snapshot, config.evaluation, adapter=args.adapter, out_path=partial, name=args.name)
    # Renamed only when complete, so a report that exists is a whole one.
    partial.replace(args.out)
    print(f"[evaluate_version] {args.name}: report in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

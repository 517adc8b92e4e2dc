"""Run RISE training stages on a training-data snapshot: no database needed, so it runs on any GPU box.

    # one GPU, or CPU
    python -m rise.train --config runs/shapes/config.yaml --stage all
    # several GPUs, or DeepSpeed ZeRO-3: the launcher's config file decides
    accelerate launch --config_file zero3.yaml -m rise.train --config runs/shapes/config.yaml --stage all
    # quick overrides, resume after an interruption (finished stages are skipped), or one stage again
    python -m rise.train --config runs/shapes/config.yaml --set rise_cot.max_steps=50 --set sft.learning_rate=5e-5
    python -m rise.train --config runs/shapes/config.yaml --stage filter --restart

Stages: rise_cot, filter, sft, rft, evaluate (together: all); baseline_sft, visual_rft, evaluate_baselines
(together: baselines); everything. `rise train --project NAME` snapshots a project's verdicts and calls this.
"""

from __future__ import annotations

import argparse
import json
import sys

from rise.training.config import PipelineConfig
from rise.training.pipeline import STAGE_GROUPS, STAGES, run_pipeline
from rise.training.progress import report_stage, start_progress_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rise.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="Pipeline config file (YAML or JSON); every field has a default.")
    parser.add_argument(
        "--stage",
        default="all",
        help=f"Stage(s) to run: {', '.join([*STAGE_GROUPS, *STAGES])}, or a comma-separated list (default: all).",
    )
    parser.add_argument("--model", help="Base model id or folder (overrides the config).")
    parser.add_argument("--data", help="Training-data snapshot folder (overrides the config).")
    parser.add_argument("--output-dir", help="Output folder (overrides the config).")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="Override one config field, e.g. --set rft.max_steps=50 (repeatable; values are YAML).",
    )
    parser.add_argument("--restart", action="store_true", help="Run the selected stages again even if finished.")
    parser.add_argument(
        "--progress-file",
        help="Append JSON-lines progress (stage, step, loss, reward) to this file; `rise worker` tails it.",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    config = PipelineConfig.load(args.config) if args.config else PipelineConfig()
    overrides = list(args.overrides)
    for name, value in (("model", args.model), ("data", args.data), ("output_dir", args.output_dir)):
        if value:
            overrides.append(f"{name}={json.dumps(value)}")
    return config.with_overrides(overrides) if overrides else config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config.require_paths()
    except (ValueError, OSError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2

    if args.progress_file:
        start_progress_file(args.progress_file)

    def report(stage: str, event: str) -> None:
        words = {"start": "running", "skip": "already finished, skipped", "done": "finished"}
        print(f"[rise.train] {stage}: {words[event]}", flush=True)
        report_stage(stage, event)

    results = run_pipeline(config, args.stage, restart=args.restart, progress=report)
    print(json.dumps({stage: _brief(summary) for stage, summary in results.items()}, indent=1, default=str))
    return 0


def _brief(summary: dict) -> dict:
    keys = ("steps", "seconds", "qualified", "not_qualified", "reasons", "model", "adapter", "reports", "skipped")
    return {key: summary[key] for key in keys if key in summary}


if __name__ == "__main__":
    sys.exit(main())

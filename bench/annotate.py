"""Throughput of batched annotation against one image at a time: same model, same images, one run.

    .venv/bin/python bench/annotate.py
    .venv/bin/python bench/annotate.py --images 64 --batch-size 16 --max-new-tokens 64 --min-speedup 3

The model is a 1.7 M-parameter Qwen2-VL-architecture model (`BENCH_MODEL`: text hidden 128, 4 layers, vision embed
128), built offline with random weights. Every completion is exactly `--max-new-tokens` long
(the end token is suppressed until then), so both modes do the same work. Decoding is greedy, and the script also
reports whether both modes wrote the same text, which left padding must not change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from transformers.utils import logging as hf_logging

from rise.annotate import AnnotationInput, GenerationSettings, PredictionResult, annotate_images
from rise.modeling import load_model_and_processor
from rise.synthetic import generate_scene
from rise.tasks import TaskSpec
from rise.tiny_model import TinyModelConfig, build_tiny_model

BENCH_MODEL = TinyModelConfig(
    hidden_size=128,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=512,
    vision_depth=2,
    vision_embed_dim=128,
    initializer_range=0.2,  # varied text, so the output comparison between modes means something
)
SPEC = TaskSpec("classification", labels=("sunny", "stormy", "balanced"))


def timed_run(model, processor, inputs, settings: GenerationSettings) -> tuple[float, list[PredictionResult]]:
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    results = annotate_images(model, processor, SPEC, inputs, settings)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="images annotated in each mode")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of the batched mode")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens generated per image (fixed)")
    parser.add_argument("--device", default=None, help="cuda or cpu; default: cuda if available")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; default: torch's choice")
    parser.add_argument("--min-speedup", type=float, default=None, help="exit 1 if batched is not this much faster")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_model(Path(folder) / "bench-model", BENCH_MODEL)
        model, processor = load_model_and_processor(str(model_dir), device=args.device)
    parameters = sum(p.numel() for p in model.parameters())
    inputs = [AnnotationInput(generate_scene(seed).image) for seed in range(args.images)]
    fixed = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens}
    single = GenerationSettings(batch_size=1, **fixed)
    batched = GenerationSettings(batch_size=args.batch_size, **fixed)

    # Warm-up outside the clock: first calls allocate and pick kernels.
    annotate_images(model, processor, SPEC, inputs[:2], GenerationSettings(batch_size=2, max_new_tokens=4))
    single_seconds, single_results = timed_run(model, processor, inputs, single)
    batched_seconds, batched_results = timed_run(model, processor, inputs, batched)

    same = sum(a.raw_text == b.raw_text for a, b in zip(single_results, batched_results, strict=True))
    tokens = args.images * args.max_new_tokens
    print(f"device: {model.device} ({torch.get_num_threads()} CPU threads), dtype {model.dtype}")
    print(f"model: Qwen2-VL architecture, {parameters / 1e6:.2f} M parameters; {args.images} images of 64x64 pixels")
    print(f"{'mode':<22}{'seconds':>9}{'images/s':>10}{'tokens/s':>10}")
    for name, seconds in (("one image at a time", single_seconds), (f"batched ({args.batch_size})", batched_seconds)):
        print(f"{name:<22}{seconds:>9.2f}{args.images / seconds:>10.2f}{tokens / seconds:>10.0f}")
    speedup = single_seconds / batched_seconds
    print(f"speedup: {speedup:.1f}x; identical completions in both modes: {same}/{args.images}")
    if args.min_speedup is not None and speedup < args.min_speedup:
        print(f"FAIL: batched is {speedup:.1f}x faster, below --min-speedup {args.min_speedup}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

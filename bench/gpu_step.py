"""Time and peak GPU memory of one RISE-CoT step and one RFT step at Qwen2-VL-2B's size, in bf16 on a CUDA GPU.

    .venv/bin/python bench/gpu_step.py
    .venv/bin/python bench/gpu_step.py --num-generations 8 --max-completion-length 256 --full-finetune
    .venv/bin/python bench/gpu_step.py --dims tiny --allow-cpu      # the same code path on a toy model, on CPU

No weights can be downloaded, so the model has Qwen2-VL-2B-Instruct's published dimensions (text: hidden 1536,
28 layers, 12 heads / 2 KV heads, MLP 8960, vocabulary 151,936; vision: 32 layers, width 1280, patch 14) and random
weights; the tokenizer is the project's small offline one, whose ids all fall inside that vocabulary. A random model
never writes an end token, so every completion and every reconstruction runs to its token limit: these are
worst-case step times. Each stage runs `--steps` GRPO steps (the first warms up) through the same building blocks
as the pipeline (`rise.training`), and the report gives every step's time and the peak memory.

On a machine without a CUDA GPU the script says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

NO_GPU_MESSAGE = (
    "No CUDA GPU found: bench/gpu_step.py measures RISE-CoT and RFT steps in bf16 on a CUDA GPU, so there is "
    "nothing to measure here. (--allow-cpu --dims tiny runs the same code on a toy model.)"
)

# Qwen2-VL-2B-Instruct's config.json.
QWEN2_VL_2B_TEXT = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "vocab_size": 151936,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
QWEN2_VL_2B_VISION = {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 1536,
    "num_heads": 16,
    "mlp_ratio": 4,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "vocab_size": 1024,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
}
TINY_VISION = {**QWEN2_VL_2B_VISION, "depth": 2, "embed_dim": 64, "hidden_size": 64, "num_heads": 4, "mlp_ratio": 2}


def build_model(dims: str, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """A random-weight Qwen2-VL of the given dimensions, made directly on `device`, and a matching processor."""
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from rise.tiny_model import SPECIAL_TOKENS, TinyModelConfig, build_processor

    text, vision = (QWEN2_VL_2B_TEXT, QWEN2_VL_2B_VISION) if dims == "qwen2-vl-2b" else (TINY_TEXT, TINY_VISION)
    # Qwen2-VL-2B's image processor: patch 14, and at most 448x448 pixels here so one image is 256 tokens.
    processor = build_processor(TinyModelConfig(patch_size=vision["patch_size"], max_pixels=448 * 448))
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            **text,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype)
    end_ids = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config = GenerationConfig(
        bos_token_id=end_ids[1], eos_token_id=end_ids, pad_token_id=end_ids[1], do_sample=False
    )
    processor.tokenizer.padding_side = "left"
    return model, processor


def synthetic_snapshot(folder: Path, images: int, size: int) -> Any:
    """A small classification snapshot of synthetic scenes (the shape of a single object)."""
    from rise.synthetic import SceneConfig, generate_scene, get_rule
    from rise.tasks import TaskSpec
    from rise.training.records import TrainingRecord, load_snapshot, write_snapshot

    rule = get_rule("shape")
    config = rule.scene_config(SceneConfig(size=size))
    records = []
    for seed in range(images):
        scene = generate_scene(seed, config)
        buffer = io.BytesIO()
        scene.image.save(buffer, format="PNG")
        records.append(
            TrainingRecord(seed, buffer.getvalue(), size, size, answer=rule.label(scene), answer_source="import")
        )
    write_snapshot(folder, TaskSpec("classification", labels=rule.labels), records)
    return load_snapshot(folder)


class StepTimer:
    """Wall time of every optimizer step (synchronising CUDA so queued kernels count)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._sync()
                timer._started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                timer.seconds.append(time.perf_counter() - timer._started)

        self.callback = _Callback()
        self.seconds: list[float] = []
        self._started = 0.0

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def run_stage(
    stage: str, model: Any, processor: Any, snapshot: Any, args: argparse.Namespace, out: Path
) -> tuple[dict, Any]:
    """Build the stage's GRPOTrainer as the pipeline does and time `args.steps` steps; returns the results and the
    model without the stage's LoRA layers, for the next stage."""
    from trl import GRPOConfig, GRPOTrainer

    from rise.training.config import RFTStageConfig, RiseCoTConfig
    from rise.training.reconstruction import PolicyReconstructor, ReconstructionReward, RolloutLog
    from rise.training.rft import rft_dataset, rft_rewards
    from rise.training.rise_cot import reasoning_dataset
    from rise.training.trainer_setup import lora_config, trl_arguments

    common = {
        "max_steps": args.steps,
        "per_device_train_batch_size": args.num_generations,
        "num_generations": args.num_generations,
        "max_completion_length": args.max_completion_length,
        "use_lora": not args.full_finetune,
        "bf16": args.device == "cuda",
        "gradient_checkpointing": args.gradient_checkpointing,
        "logging_steps": 1,
    }
    if stage == "rise_cot":
        # A full fine-tune reconstructs with the live policy: no frozen copy in memory (this measures time).
        config = RiseCoTConfig(
            **common,
            judge="policy" if args.full_finetune else "base",
            reconstruction_max_new_tokens=args.reconstruction_tokens,
            reconstruction_batch_size=args.num_generations,
        )
        dataset = reasoning_dataset(snapshot)
        judge = PolicyReconstructor(
            snapshot.spec,
            processor,
            judge=config.judge,
            batch_size=config.reconstruction_batch_size,
            max_new_tokens=config.reconstruction_max_new_tokens,
        )
        reward = ReconstructionReward(snapshot.spec, reconstruct=judge, rollout_log=RolloutLog(out / "rollouts.jsonl"))
        rewards, weights = [reward], [1.0]
    else:
        config = RFTStageConfig(**common, overlong_buffer=min(32, args.max_completion_length // 2))
        dataset = rft_dataset(snapshot)
        rewards, weights = rft_rewards(snapshot.spec, config)
        judge = None
    trl_args = trl_arguments(
        GRPOConfig,
        config,
        out / stage,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=1.0,
        reward_weights=weights,
    )
    timer = StepTimer()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=trl_args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
        callbacks=[timer.callback],
    )
    if judge is not None:
        judge.trainer = trainer
    trainer.train()
    result = {
        "stage": stage,
        "step_seconds": [round(s, 3) for s in timer.seconds],
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "last_log": next((e for e in reversed(trainer.state.log_history) if "reward" in e), {}),
    }
    trained = trainer.model
    del trainer
    # Take the LoRA layers out again so the next stage starts from the same model.
    return result, trained.unload() if hasattr(trained, "unload") else trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", choices=("qwen2-vl-2b", "tiny"), default="qwen2-vl-2b")
    parser.add_argument("--allow-cpu", action="store_true", help="Run on CPU when there is no GPU (use --dims tiny).")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps per stage; the first one warms up.")
    parser.add_argument("--num-generations", type=int, default=8, help="Completions per image (the paper: 8).")
    parser.add_argument("--max-completion-length", type=int, default=256, help="Tokens per completion.")
    parser.add_argument("--reconstruction-tokens", type=int, default=128, help="Tokens per reconstruction.")
    parser.add_argument("--image-size", type=int, default=448, help="Synthetic image side in pixels.")
    parser.add_argument("--full-finetune", action="store_true", help="Train every weight instead of LoRA.")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--stages", default="rise_cot,rft", help="Comma-separated: rise_cot, rft.")
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    args = parser.parse_args(argv)

    if torch.cuda.is_available():
        args.device = "cuda"
    elif args.allow_cpu:
        args.device = "cpu"
    else:
        print(NO_GPU_MESSAGE)
        return 0
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        snapshot = synthetic_snapshot(tmp_path / "data", images=2, size=args.image_size)
        started = time.perf_counter()
        model, processor = build_model(args.dims, args.device, dtype)
        results: dict[str, Any] = {
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "dims": args.dims,
            "dtype": str(dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in model.parameters()),
            "lora": not args.full_finetune,
            "num_generations": args.num_generations,
            "max_completion_length": args.max_completion_length,
            "reconstruction_tokens": args.reconstruction_tokens,
            "build_seconds": round(time.perf_counter() - started, 1),
            "stages": [],
        }
        for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
            result, model = run_stage(stage, model, processor, snapshot, args, tmp_path)
            results["stages"].append(result)
    for stage in results["stages"]:
        steps = stage["step_seconds"]
        print(
            f"{stage['stage']}: steps {steps} s (steady {steps[-1]:.2f} s), peak memory {stage['peak_memory_gib']} GiB"
        )
    print(json.dumps({k: v for k, v in results.items() if k != "stages"}))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every stage does around its TRL trainer: TRL config, LoRA config, loading the policy, a wall-clock limit,
saving a self-contained final folder, and the stage datasets' chat messages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from rise.modeling import load_model_and_processor
from rise.training.config import RFTStageConfig, RiseCoTConfig, TrainerSettings
from rise.training.progress import progress_callbacks

FINAL_DIR = "final"
# Where a stage's TRL trainer writes (its checkpoints when `save_steps` is set), inside the stage's folder.
TRAINER_DIR = "trainer"


def cuda_available() -> bool:
    return torch.cuda.is_available()


def use_bf16(settings: TrainerSettings) -> bool:
    """bf16 when asked, else where a CUDA GPU supports it; never by default on CPU (slow there)."""
    if settings.bf16 is not None:
        return settings.bf16
    return cuda_available() and torch.cuda.is_bf16_supported()


def trl_arguments(config_cls: type, settings: TrainerSettings, output_dir: str | Path, **stage_fields: Any) -> Any:
    """The TRL config (`GRPOConfig`, `SFTConfig`) for a stage: our settings, then the stage's fields, then
    `extra_trl_args` on top. Without CUDA it sets `use_cpu=True`, so CPU runs need no flags."""
    save_steps = settings.save_steps
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "use_cpu": not cuda_available(),
        "bf16": use_bf16(settings),
        "learning_rate": settings.learning_rate,
        "max_steps": settings.max_steps,
        "num_train_epochs": settings.num_train_epochs,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        # transformers 5 renamed gradient_checkpointing; TRL still reads the old name, which mirrors the new one.
        "gradient_checkpointing": settings.gradient_checkpointing,
        "activation_checkpointing": settings.gradient_checkpointing,
        "logging_steps": settings.logging_steps,
        "seed": settings.seed,
        "save_strategy": "steps" if save_steps else "no",
        "report_to": "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    if save_steps:
        kwargs["save_steps"] = save_steps
    kwargs.update(stage_fields)
    kwargs.update(settings.extra_trl_args)
    return config_cls(**kwargs)


def grpo_arguments(settings: RiseCoTConfig | RFTStageConfig, output_dir: str | Path, **stage_fields: Any) -> Any:
    """`trl_arguments` for a GRPO stage, with the group sampling settings both GRPO stages have; `stage_fields`
    override them."""
    from trl import GRPOConfig

    sampling = {
        "num_generations": settings.num_generations,
        "max_completion_length": settings.max_completion_length,
        "temperature": settings.temperature,
        "beta": settings.beta,
    }
    return trl_arguments(GRPOConfig, settings, output_dir, **{**sampling, **stage_fields})


def lora_config(settings: TrainerSettings) -> Any:
    """A PEFT `LoraConfig` for the settings, or `None` for a full fine-tune."""
    if not settings.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def load_policy(model: str, settings: TrainerSettings, adapter: str | None = None) -> tuple[Any, Any]:
    """The model to train and its processor, on CPU (the trainer moves it to its device), in train mode.

    With `adapter`, that LoRA adapter is loaded trainable, so training continues it (RFT after a LoRA SFT) and the
    result is again one adapter on the unchanged base model.
    """
    dtype = torch.bfloat16 if use_bf16(settings) else torch.float32
    policy, processor = load_model_and_processor(model, device="cpu", dtype=dtype)
    if adapter:
        from peft import PeftModel

        policy = PeftModel.from_pretrained(policy, adapter, is_trainable=True)
    policy.train()
    return policy, processor


class TimeLimitCallback(TrainerCallback):
    """Stops training after the step that crosses `max_seconds` (TRL has no wall-clock limit of its own)."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.started: float | None = None
        self.stopped_early = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and time.monotonic() - self.started >= self.max_seconds:
            self.stopped_early = True
            control.should_training_stop = True
        return control


def time_limit_callbacks(settings: TrainerSettings) -> list[TrainerCallback]:
    """The callbacks every stage gives its trainer: the wall-clock limit, if set, and the JSON-lines progress writer
    when `python -m rise.train --progress-file` asked for one (`rise.training.progress`, read by `rise worker`)."""
    limit = [TimeLimitCallback(settings.max_seconds)] if settings.max_seconds else []
    return [*limit, *progress_callbacks()]


def save_final(trainer: Any, processor: Any, stage_dir: Path) -> Path:
    """Save the trained adapter (or whole model) and the processor to `stage_dir/final`, a folder that loads alone.

    The processor is saved beside the weights because TRL leaves none in its output folder; a LoRA folder holds the
    adapter only and loads on top of the base model.
    """
    final = stage_dir / FINAL_DIR
    trainer.save_model(str(final))
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(str(final))
    trainer.accelerator.wait_for_everyone()
    return final


def train_summary(trainer: Any, callbacks: list[TimeLimitCallback], seconds: float) -> dict[str, Any]:
    """What a stage reports about its training loop: steps, final metrics, whether the time limit stopped it."""
    history = [entry for entry in trainer.state.log_history if "loss" in entry or "reward" in entry]
    return {
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 2),
        "stopped_by_time_limit": any(getattr(c, "stopped_early", False) for c in callbacks),
        "last_log": history[-1] if history else {},
        "train_loss": next((e["train_loss"] for e in trainer.state.log_history if "train_loss" in e), None),
    }


def train_and_save(
    trainer: Any, processor: Any, callbacks: list[TrainerCallback], stage_dir: Path
) -> tuple[dict[str, Any], Path]:
    """Run the training loop, then save the final folder (`save_final`): the loop's `train_summary` and that folder."""
    started = time.perf_counter()
    trainer.train()
    final = save_final(trainer, processor, stage_dir)
    return train_summary(trainer, callbacks, time.perf_counter() - started), final


def as_content_parts(messages: list[dict]) -> list[dict]:
    """Every message's content as a list of `{"type", "text"}` parts.

    Arrow needs one type per column, so a dataset cannot mix string content with part lists; TRL and the chat
    template read both forms the same way.
    """
    converted = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = [{"type": part["type"], "text": part.get("text")} for part in content]
        converted.append({"role": message["role"], "content": parts})
    return converted

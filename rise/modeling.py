"""Load any image-text-to-text model (Hub id or local folder), optionally with a LoRA adapter, ready to generate.

    model, processor = load_model_and_processor("Qwen/Qwen2-VL-2B-Instruct")
    model, processor = load_model_and_processor("models/tiny", adapter="runs/rise-r1/checkpoint-200")

Device and dtype follow the hardware unless given: CUDA in bfloat16 where available, else CPU in float32.
The processor pads on the left, as batched generation needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, PretrainedConfig
from transformers.processing_utils import ProcessorMixin

from rise.errors import RiseError
from rise.processing import IMAGE_ONLY_PROCESSORS, video_processing_available

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
DTYPES |= {"float32": torch.float32, "fp32": torch.float32}


class ModelLoadError(RiseError, RuntimeError):
    """A model, adapter or processor could not be loaded; the message says how to fix it."""


def pick_device(device: str | None = None) -> str:
    """`device` if given, else "cuda" when a GPU is visible, else "cpu"."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, dtype: torch.dtype | str | None = None) -> torch.dtype:
    """`dtype` if given; else bfloat16 on a GPU that supports it and float32 elsewhere (CPU bf16 matmuls are slow)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}, e.g. dtype='bfloat16'")
        return DTYPES[dtype]
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _offline() -> bool:
    return hub_constants.is_offline_mode() or bool(os.environ.get("HF_HUB_OFFLINE"))


def _load_error(what: str, name: str, exc: Exception) -> ModelLoadError:
    """Turn a loading failure into an error that names the fix."""
    if Path(name).expanduser().is_dir():
        return ModelLoadError(
            f"Could not load the {what} in the folder {name!r}: {exc}. "
            "The folder should hold a saved model (config.json, weights, processor files), e.g. one written by "
            "`rise model build-tiny DIR` or `model.save_pretrained(DIR)`."
        )
    if name.startswith((".", "/", "~")):
        return ModelLoadError(
            f"The {what} folder {name!r} does not exist. Pass the path of a saved model folder, "
            "e.g. `rise model build-tiny models/tiny` and then --model models/tiny."
        )
    offline = _offline()
    reason = "HF_HUB_OFFLINE is set, so nothing is downloaded" if offline else "it could not be downloaded"
    fixes = [
        f"download it first on a machine with internet (`hf download {name}`) so it is in the Hugging Face cache",
        "pass a local path to a saved model folder instead (e.g. one made by `rise model build-tiny DIR`)",
    ]
    if offline:
        fixes.append("unset HF_HUB_OFFLINE if this machine can reach the Hub")
    return ModelLoadError(
        f"Could not load the {what} {name!r}: it is not a local folder, it is not in the Hugging Face cache, and "
        f"{reason}. Fix: " + "; or ".join(fixes) + f". (Underlying error: {exc})"
    )


def load_config(name: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise _load_error("model", name, exc) from exc


def load_processor(name: str, config: PretrainedConfig | None = None) -> ProcessorMixin:
    """The model's processor (tokenizer + image processor), padding on the left.

    Qwen2-VL/Qwen2.5-VL get the image-only processor where torchvision is missing (`rise.processing`). Any result
    that is not a full multimodal processor (AutoProcessor falls back to a bare tokenizer when it cannot build one)
    is an error rather than a failure later, at the first image.
    """
    config = config or load_config(name)
    model_type = getattr(config, "model_type", "")
    try:
        if model_type in IMAGE_ONLY_PROCESSORS and not video_processing_available():
            processor = IMAGE_ONLY_PROCESSORS[model_type].from_pretrained(name)
        else:
            processor = AutoProcessor.from_pretrained(name)
    except (OSError, ValueError, TypeError) as exc:
        raise _load_error("processor", name, exc) from exc
    if not isinstance(processor, ProcessorMixin) or getattr(processor, "image_processor", None) is None:
        if model_type in IMAGE_ONLY_PROCESSORS:
            processor = IMAGE_ONLY_PROCESSORS[model_type].from_pretrained(name)
        else:
            raise ModelLoadError(
                f"{name!r} has no image processor (AutoProcessor returned {type(processor).__name__}). "
                "Use an image-text-to-text model whose folder holds preprocessor_config.json or processor_config.json."
            )
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        # Batched generation needs a pad token; the end-of-text token is never attended to under the mask.
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def load_model_and_processor(
    model: str,
    adapter: str | None = None,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[Any, ProcessorMixin]:
    """Load `model` (Hub id or folder) and its processor for generation, with an optional PEFT adapter on top.

    Args:
        model (`str`): Hub id, e.g. "Qwen/Qwen2-VL-2B-Instruct", or the path of a saved model folder.
        adapter (`str`, *optional*): folder of a PEFT (LoRA) adapter trained on `model`.
        device (`str`, *optional*): "cuda", "cuda:1", "cpu"; default: CUDA if available, else CPU.
        dtype (`torch.dtype` or `str`, *optional*): default bfloat16 on CUDA, float32 on CPU.

    Returns:
        `(model, processor)`: the model in eval mode on `device`, and its processor padding on the left.

    Raises:
        `ModelLoadError`: the model, adapter or processor cannot be loaded; the message names the fix.
    """
    model_name = str(model)
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    config = load_config(model_name)
    processor = load_processor(model_name, config)
    try:
        # device_map places the weights on the device as they load, instead of on the CPU first and then copying.
        loaded = AutoModelForImageTextToText.from_pretrained(model_name, dtype=torch_dtype, device_map=device)
    except (OSError, ValueError) as exc:
        raise _load_error("model", model_name, exc) from exc
    if adapter:
        loaded = _apply_adapter(loaded, str(adapter)).to(device)
    loaded.eval()
    return loaded, processor


def _apply_adapter(model: Any, adapter: str) -> Any:
    from peft import PeftModel  # imported here: loading without an adapter should not pay for peft's import

    if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"{adapter!r} is not a PEFT adapter folder (no adapter_config.json). Pass the folder a LoRA training run "
            "saved, e.g. runs/rise-r1/checkpoint-200, or leave the adapter out."
        )
    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not apply the adapter {adapter!r} to the model: {exc}") from exc

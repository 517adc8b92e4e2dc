"""Image-only processors for Qwen2-VL and Qwen2.5-VL.

The stock `Qwen2VLProcessor` / `Qwen2_5_VLProcessor` require a video processor, and the video processors need
torchvision. Where torchvision is missing (or does not import next to the installed torch), the stock classes cannot
be constructed, and `AutoProcessor.from_pretrained` quietly falls back to returning the bare tokenizer. The app only
annotates images, so these subclasses drop the video processor and keep everything else: chat template, image
placeholder expansion and `mm_token_type_ids`.

Importing this module registers both classes with `AutoProcessor`, so a folder saved from them (its
`processor_config.json` names the class) loads with `AutoProcessor.from_pretrained(path)`. Hub checkpoints name the
stock classes; `load_processor` in `rise.modeling` swaps in these ones for them.
"""

from __future__ import annotations

import functools

from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2VLConfig
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor


class Qwen2VLImageProcessorOnly(Qwen2VLProcessor):
    """`Qwen2VLProcessor` without a video processor: images and text only."""

    # The processor's sub-components are read from this signature (ProcessorMixin.get_attributes), so leaving
    # `video_processor` out of it is what makes saving and loading skip the video processor.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageProcessorOnly(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without a video processor: images and text only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


# model_type (config.json) -> the image-only processor that can stand in for the stock one.
IMAGE_ONLY_PROCESSORS: dict[str, type] = {
    "qwen2_vl": Qwen2VLImageProcessorOnly,
    "qwen2_5_vl": Qwen2_5_VLImageProcessorOnly,
}


@functools.cache
def video_processing_available() -> bool:
    """True when torchvision imports, i.e. the stock Qwen processors (with their video processors) can be built."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or a RuntimeError from a torchvision built against another torch
        return False
    return True


AutoProcessor.register(Qwen2VLConfig, Qwen2VLImageProcessorOnly, exist_ok=True)
AutoProcessor.register(Qwen2_5_VLConfig, Qwen2_5_VLImageProcessorOnly, exist_ok=True)

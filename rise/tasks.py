"""Task specifications and the JSON shapes of their answers.

Answers are plain JSON values in original-image pixels, the same shape in the database, in training records and in
rewards:

| task | answer |
|---|---|
| classification (single label) | `"circle"` |
| classification (distribution) | `{"joy": 0.7, "fear": 0.3}` over the whole label set, summing to 1 |
| detection | `[{"label": "circle", "box": [x1, y1, x2, y2]}, ...]` |
| grounding | `[x1, y1, x2, y2]`, the one box the free-text query refers to |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from rise.prompt_fields import check_prompt_overrides

Box = list[float]  # [x1, y1, x2, y2], x1 < x2 and y1 < y2
Answer = Any  # str | dict[str, float] | list[dict[str, Any]] | Box, see the module docstring


class TaskType(enum.StrEnum):
    classification = "classification"
    detection = "detection"
    grounding = "grounding"


class CoordinateFrame(enum.StrEnum):
    """How a model family writes box coordinates (docs/design.md §2). Answers are converted to pixels at the edges."""

    pixels = "pixels"  # original-image pixels: what we store
    qwen2_vl = "qwen2_vl"  # Qwen2-VL: integers normalised to 0..1000
    qwen2_5_vl = "qwen2_5_vl"  # Qwen2.5-VL: pixels of the resized model input
    label_studio = "label_studio"  # percent of the image, top-left corner plus width/height


@dataclass(frozen=True)
class TaskSpec:
    """What a project asks the model to produce.

    Args:
        task_type (`TaskType`): classification, detection or grounding.
        labels (`tuple[str, ...]`): the ordered label set (classes, or box labels for detection).
        synonyms (`dict[str, str]`): extra spellings mapped to a canonical label, e.g. `{"ball": "circle"}`.
        distribution (`bool`): classification answers are probability distributions over `labels`.
        prompt_overrides (`dict[str, str]`): per-stage prompt templates replacing `rise.prompts` defaults.
        frame (`CoordinateFrame`): how the model writes coordinates.
    """

    task_type: TaskType
    labels: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)
    distribution: bool = False
    prompt_overrides: dict[str, str] = field(default_factory=dict)
    frame: CoordinateFrame = CoordinateFrame.qwen2_vl

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_type", TaskType(self.task_type))
        object.__setattr__(self, "frame", CoordinateFrame(self.frame))
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.task_type is TaskType.classification and len(self.labels) < 2:
            raise ValueError(
                f"A classification task needs at least two labels, got {list(self.labels)}. "
                'Example: TaskSpec("classification", labels=("circle", "square"))'
            )
        if self.distribution and self.task_type is not TaskType.classification:
            raise ValueError("distribution=True only applies to classification; set distribution=False.")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"Labels must be unique, got {list(self.labels)}")
        unknown = sorted({target for target in self.synonyms.values() if target not in self.labels})
        if unknown:
            raise ValueError(f"Synonyms point to labels not in the label set: {unknown}. Add them to `labels`.")
        # A bad template fails here, when the project is defined, rather than hours later in the middle of training.
        check_prompt_overrides(self.prompt_overrides, self.task_type)

    @property
    def has_boxes(self) -> bool:
        return self.task_type is not TaskType.classification

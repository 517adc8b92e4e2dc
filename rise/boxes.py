"""Box geometry and coordinate frames.

Every box the app stores is `[x1, y1, x2, y2]` in original-image pixels. Models and Label Studio use other frames
(`rise.tasks.CoordinateFrame`); convert at the edges with `to_pixels` / `from_pixels` and never store anything else.
"""

from __future__ import annotations

import math

from rise.tasks import Box, CoordinateFrame

QWEN2_VL_SCALE = 1000.0

# Qwen2.5-VL's image processor defaults (preprocessor_config.json): patch 14 merged 2x2, so sides are multiples of 28.
QWEN_RESIZE_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280


def smart_resize(
    width: int,
    height: int,
    factor: int = QWEN_RESIZE_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The (width, height) Qwen2-VL/2.5-VL processors resize an image to; Qwen2.5-VL boxes are in this frame.

    Mirrors `transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize`: both sides rounded to a multiple
    of `factor`, total pixels kept within [min_pixels, max_pixels], aspect ratio preserved as closely as possible.

    >>> smart_resize(640, 480)
    (644, 476)
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"Image size must be positive, got {width}x{height}")
    resized_h = max(factor, round(height / factor) * factor)
    resized_w = max(factor, round(width / factor) * factor)
    if resized_h * resized_w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        resized_h = max(factor, math.floor(height / beta / factor) * factor)
        resized_w = max(factor, math.floor(width / beta / factor) * factor)
    elif resized_h * resized_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_h = math.ceil(height * beta / factor) * factor
        resized_w = math.ceil(width * beta / factor) * factor
    return resized_w, resized_h


def clip_box(box: Box, width: float, height: float) -> Box | None:
    """Clip `box` to the image; `None` when nothing of it is left (degenerate, or entirely outside).

    Corners given in the wrong order are swapped first, so `[50, 40, 10, 20]` means `[10, 20, 50, 40]`.

    >>> clip_box([-5, 10, 30, 200], 100, 100)
    [0.0, 10.0, 30.0, 100.0]
    >>> clip_box([120, 10, 130, 20], 100, 100) is None
    True
    """
    if len(box) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
        return None
    x1, x2 = sorted((float(box[0]), float(box[2])))
    y1, y2 = sorted((float(box[1]), float(box[3])))
    x1, x2 = min(max(x1, 0.0), float(width)), min(max(x2, 0.0), float(width))
    y1, y2 = min(max(y1, 0.0), float(height)), min(max(y2, 0.0), float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return [x1, y1, x2, y2]


def _frame_scale(frame: CoordinateFrame, width: int, height: int) -> tuple[float, float]:
    """Units of `frame` per original pixel along x and y."""
    if frame is CoordinateFrame.pixels:
        return 1.0, 1.0
    if frame is CoordinateFrame.qwen2_vl:
        return QWEN2_VL_SCALE / width, QWEN2_VL_SCALE / height
    if frame is CoordinateFrame.qwen2_5_vl:
        resized_w, resized_h = smart_resize(width, height)
        return resized_w / width, resized_h / height
    raise ValueError(f"{frame} boxes are not corner boxes; use to_label_studio / from_label_studio")


def to_pixels(box: Box, frame: CoordinateFrame, width: int, height: int) -> Box | None:
    """Convert a corner box written in `frame` to clipped original-image pixels (`None` if nothing is left)."""
    frame = CoordinateFrame(frame)
    if frame is CoordinateFrame.label_studio:
        return from_label_studio(*box, width=width, height=height)
    sx, sy = _frame_scale(frame, width, height)
    return clip_box([box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy], width, height)


def from_pixels(box: Box, frame: CoordinateFrame, width: int, height: int) -> Box:
    """Convert a pixel box to `frame`; Qwen2-VL coordinates are rounded to integers as the model writes them."""
    frame = CoordinateFrame(frame)
    if frame is CoordinateFrame.label_studio:
        return list(to_label_studio(box, width, height))
    sx, sy = _frame_scale(frame, width, height)
    converted = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
    if frame is not CoordinateFrame.pixels:
        converted = [float(round(v)) for v in converted]
    return converted


def to_label_studio(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel corners to Label Studio's (x, y, width, height) in percent of the image, top-left origin.

    >>> to_label_studio([10, 20, 60, 70], 200, 100)
    (5.0, 20.0, 25.0, 50.0)
    """
    x1, y1, x2, y2 = box
    return (x1 / width * 100.0, y1 / height * 100.0, (x2 - x1) / width * 100.0, (y2 - y1) / height * 100.0)


def from_label_studio(x: float, y: float, w: float, h: float, *, width: int, height: int) -> Box | None:
    """Label Studio percent (x, y, width, height) to clipped pixel corners.

    >>> from_label_studio(5.0, 20.0, 25.0, 50.0, width=200, height=100)
    [10.0, 20.0, 60.0, 70.0]
    """
    return clip_box(
        [x / 100.0 * width, y / 100.0 * height, (x + w) / 100.0 * width, (y + h) / 100.0 * height], width, height
    )


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two corner boxes; 0.0 when either has no area.

    >>> box_iou([0, 0, 10, 10], [5, 0, 15, 10])
    0.3333333333333333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0

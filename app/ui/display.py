"""The image a reviewer sees: small images enlarged by a whole factor so boxes can be grabbed.

The box annotator draws an image at its real size when it fits, so a 64×64 scene would be a thumbnail. Images
smaller than `TARGET_SIDE` are enlarged by the largest whole factor that fits, with nearest-neighbour sampling so
every original pixel stays a crisp square (nothing is invented). Box coordinates are multiplied by the same factor
on the way in and divided on the way out, so stored answers stay in original-image pixels.

Display copies go to Gradio's upload folder (the one place Gradio serves files from without extra `allowed_paths`),
named by content hash, so showing the same item twice writes nothing new.
"""

from __future__ import annotations

from pathlib import Path

from gradio import processing_utils
from gradio.utils import get_upload_folder
from PIL import Image

TARGET_SIDE = 512


def display_scale(width: int, height: int, target: int = TARGET_SIDE) -> int:
    """The whole enlargement factor for an image of this size (1 when it is already large enough).

    >>> display_scale(64, 64), display_scale(100, 40), display_scale(800, 600)
    (8, 5, 1)
    """
    longest = max(int(width), int(height), 1)
    return max(1, target // longest)


def display_copy(image_path: str | Path, width: int, height: int) -> tuple[str, int]:
    """A servable copy of the image for the review screen and its enlargement factor."""
    scale = display_scale(width, height)
    cache = get_upload_folder()
    if scale == 1:
        return processing_utils.save_file_to_cache(image_path, cache), 1
    with Image.open(image_path) as image:
        enlarged = image.convert("RGB").resize((width * scale, height * scale), Image.Resampling.NEAREST)
    return processing_utils.save_pil_to_cache(enlarged, cache, name="display", format="png"), scale

"""The image a reviewer sees: small images enlarged by a whole factor so boxes can be grabbed.

The box annotator draws an image at its real size when it fits, so a 64×64 scene would be a thumbnail. Images
smaller than `TARGET_SIDE` are enlarged by the largest whole factor that fits, with nearest-neighbour sampling so
every original pixel stays a crisp square (nothing is invented). Box coordinates are multiplied by the same factor
on the way in and divided on the way out, so stored answers stay in original-image pixels.

An image shown as a plain `<img>` (not in the box editor) needs no enlarged copy: the browser enlarges it the same
way (`image-rendering: pixelated`), so `served_copy` serves the file as it is.

Copies go to Gradio's upload folder (the one place Gradio serves files from without extra `allowed_paths`), named
by content hash, so showing the same item twice writes nothing new; and each is made once per file and size in this
process (an item is prepared while it waits hidden behind the one on screen, then shown from the same copy).
"""

from __future__ import annotations

from functools import lru_cache
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


def shown_size(width: int, height: int, target: int = TARGET_SIDE) -> tuple[int, int]:
    """The size an image is shown at: small ones enlarged by `display_scale`, large ones shrunk to fit `target`.

    >>> shown_size(64, 48), shown_size(2000, 1000), shown_size(600, 300)
    ((512, 384), (512, 256), (512, 256))
    """
    scale = display_scale(width, height, target)
    if scale > 1:
        return int(width) * scale, int(height) * scale
    shrink = min(1.0, target / max(int(width), int(height), 1))
    return max(1, round(int(width) * shrink)), max(1, round(int(height) * shrink))


@lru_cache(maxsize=4096)
def _copy(path: str, scale: int, width: int, height: int, _signature: tuple[int, int], cache: str) -> str:
    """The copy itself; `_signature` (modification time, size) makes a changed file a new cache entry."""
    if scale == 1:
        return processing_utils.save_file_to_cache(path, cache)
    with Image.open(path) as image:
        enlarged = image.convert("RGB").resize((width * scale, height * scale), Image.Resampling.NEAREST)
    return processing_utils.save_pil_to_cache(enlarged, cache, name="display", format="png")


def _cached_copy(image_path: str | Path, scale: int, width: int, height: int) -> str:
    stat = Path(image_path).stat()
    key = (str(image_path), scale, int(width), int(height), (stat.st_mtime_ns, stat.st_size), get_upload_folder())
    copy = _copy(*key)
    if not Path(copy).exists():  # Gradio's cache was cleaned meanwhile
        _copy.cache_clear()
        copy = _copy(*key)
    return copy


def display_copy(image_path: str | Path, width: int, height: int) -> tuple[str, int]:
    """A servable copy of the image, enlarged for the box editor, and its enlargement factor."""
    scale = display_scale(width, height)
    return _cached_copy(image_path, scale, width, height), scale


def served_copy(image_path: str | Path) -> str:
    """A servable copy of the image as it is, for an `<img>` that the browser enlarges."""
    return _cached_copy(image_path, 1, 0, 0)

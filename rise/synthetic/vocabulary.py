"""The words and colours synthetic scenes are made of: shapes, colours and their families, sizes, positions."""

from __future__ import annotations

# Shapes the generator can draw. "star" needs a large object to read as a star, so it is not in the default set.
ALL_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
DEFAULT_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")

# Six saturated colours far apart in hue and far from the pale neutral backgrounds, so every one stays nameable
# after resizing and JPEG-like blurring in a model's image processor.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "orange": (245, 136, 18),
    "yellow": (240, 204, 22),
    "green": (44, 160, 64),
    "blue": (38, 84, 214),
    "purple": (140, 58, 184),
}

# Two families of three colours each; the "mood" rule counts objects per family.
COLOUR_FAMILIES: dict[str, tuple[str, ...]] = {
    "warm": ("red", "orange", "yellow"),
    "cool": ("green", "blue", "purple"),
}
FAMILY_OF_COLOUR: dict[str, str] = {
    colour: family for family, colours in COLOUR_FAMILIES.items() for colour in colours
}

# Object side as a fraction of the image side. The classes are two-to-one apart so "small" and "large" never blur.
SIZE_FRACTIONS: dict[str, tuple[float, float]] = {
    "small": (0.14, 0.19),
    "large": (0.29, 0.35),
}
SIZES: tuple[str, ...] = tuple(SIZE_FRACTIONS)

# A 3x3 grid over the image, read row by row; an object's position is the cell holding its box centre.
POSITIONS: tuple[tuple[str, ...], ...] = (
    ("top left", "top", "top right"),
    ("left", "centre", "right"),
    ("bottom left", "bottom", "bottom right"),
)
POSITION_PHRASES: dict[str, str] = {
    "top left": "at the top left",
    "top": "at the top",
    "top right": "at the top right",
    "left": "on the left",
    "centre": "in the centre",
    "right": "on the right",
    "bottom left": "at the bottom left",
    "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}

NUMBER_WORDS: tuple[str, ...] = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def position_of(box: list[float], width: int, height: int) -> str:
    """The 3x3 grid cell holding the centre of `box`.

    >>> position_of([0, 0, 10, 10], 64, 64)
    'top left'
    >>> position_of([27, 27, 37, 37], 64, 64)
    'centre'
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    column = min(2, max(0, int(cx * 3 // width)))
    row = min(2, max(0, int(cy * 3 // height)))
    return POSITIONS[row][column]


def number_word(n: int) -> str:
    """Spell small counts, so that number-stripping leakage scrubbers leave them in the reasoning."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)

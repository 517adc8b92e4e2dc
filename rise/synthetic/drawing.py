"""Pixel-exact drawing: each shape is a hard-edged boolean mask, so an object's box is exactly where its pixels are.

No anti-aliasing on purpose: a blended edge pixel would belong to neither the object nor the background, and the
ground-truth box would stop being a fact that a test can check against the image array.
"""

from __future__ import annotations

import math

import numpy as np

# Pale, nearly neutral backgrounds: every channel stays above 200, far from each object colour's darkest channel.
BACKGROUND_TONES: tuple[tuple[int, int, int], ...] = (
    (236, 236, 232),
    (228, 232, 236),
    (238, 234, 226),
    (230, 236, 230),
    (242, 242, 242),
)
TEXTURE_AMPLITUDE = 6.0  # +/- grey levels of the background texture: visible up close, never mistaken for an object
TEXTURE_CELLS = 4  # the texture varies smoothly over a 4x4 lattice, so PNGs stay small


def shape_mask(shape: str, side: int) -> np.ndarray:
    """A `side` x `side` boolean mask of `shape` filling its cell, sampled at pixel centres.

    >>> shape_mask("diamond", 5).astype(int)
    array([[0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [1, 1, 1, 1, 1],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0]])
    """
    if side < 3:
        raise ValueError(f"Shapes need a side of at least 3 pixels to be recognisable, got {side}")
    centres = (np.arange(side) + 0.5) / side  # pixel centres in [0, 1]
    u, v = np.meshgrid(centres, centres)  # u: x, v: y (rows)
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if shape == "square":
        return np.ones((side, side), dtype=bool)
    if shape == "triangle":  # apex at the top centre, base along the bottom edge
        return np.abs(u - 0.5) <= v / 2
    if shape == "diamond":
        return np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.5
    if shape == "star":
        return _polygon_mask(_star_vertices(), u, v)
    raise ValueError(f"Unknown shape {shape!r}; choose from circle, square, triangle, diamond, star")


def _star_vertices(points: int = 5, inner_ratio: float = 0.45) -> list[tuple[float, float]]:
    """A five-pointed star in the unit cell, one point straight up."""
    vertices = []
    for k in range(2 * points):
        radius = 0.5 if k % 2 == 0 else 0.5 * inner_ratio
        angle = -math.pi / 2 + k * math.pi / points
        vertices.append((0.5 + radius * math.cos(angle), 0.5 + 0.05 + radius * math.sin(angle)))
    return vertices


def _polygon_mask(vertices: list[tuple[float, float]], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for every (u, v)."""
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at_v = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < x_at_v)
    return inside


def background(rng: np.random.Generator, width: int, height: int, textured: bool) -> np.ndarray:
    """A pale background, plain or with a faint smooth texture, as a (height, width, 3) uint8 array."""
    tone = np.array(BACKGROUND_TONES[int(rng.integers(len(BACKGROUND_TONES)))], dtype=np.float64)
    image = np.broadcast_to(tone, (height, width, 3)).copy()
    if textured:
        lattice = rng.uniform(-TEXTURE_AMPLITUDE, TEXTURE_AMPLITUDE, size=(TEXTURE_CELLS + 1, TEXTURE_CELLS + 1))
        image += _bilinear(lattice, width, height)[:, :, None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _bilinear(lattice: np.ndarray, width: int, height: int) -> np.ndarray:
    """Upsample a small lattice of values to (height, width) by bilinear interpolation."""
    rows, cols = lattice.shape
    ys = np.linspace(0, rows - 1, height)
    xs = np.linspace(0, cols - 1, width)
    y0 = np.minimum(np.floor(ys).astype(int), rows - 2)
    x0 = np.minimum(np.floor(xs).astype(int), cols - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = lattice[y0][:, x0] * (1 - fx) + lattice[y0][:, x0 + 1] * fx
    bottom = lattice[y0 + 1][:, x0] * (1 - fx) + lattice[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy

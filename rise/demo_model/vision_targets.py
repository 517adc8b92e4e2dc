"""What each image token should see: the colour and shape of the object covering its cell, for an auxiliary loss.

Trained only through the captions, a Qwen2-VL vision tower started from random weights learns where the objects are
but loses their hue: the merged image features share one large common component, and the colour a caption names
stays at chance for thousands of steps. A small linear head on the merged image tokens, trained to name the colour
and shape in each token's cell, gives the tower a direct signal; the head is used in training only and is not part
of the saved model, which stays an ordinary Qwen2-VL.

The targets are exact: objects are flat colours in non-overlapping boxes, so an object's pixels are the pixels of
its colour inside its box.
"""

from __future__ import annotations

import numpy as np
import torch

from rise.synthetic import COLOURS, DEFAULT_SHAPES, Scene

BACKGROUND = 0
COLOUR_CLASSES: tuple[str, ...] = ("background", *COLOURS)
SHAPE_CLASSES: tuple[str, ...] = ("background", *DEFAULT_SHAPES, "star")
MIN_PIXELS_SHARE = 0.05  # a cell is the object's when the object covers at least this share of it


def cell_targets(scene: Scene, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of a `rows` x `cols` grid over the image, in row-major order (the order of Qwen2-VL's merged image
    tokens): the class index of the colour and of the shape of the object covering most of the cell, or 0.

    >>> from rise.synthetic import ObjectSpec, compose_scene
    >>> scene = compose_scene([ObjectSpec("square", "red", "large", 20, x=2, y=2)], seed=0, place=False)
    >>> colours, shapes = cell_targets(scene, 4, 4)
    >>> COLOUR_CLASSES[colours[0]], SHAPE_CLASSES[shapes[0]], COLOUR_CLASSES[colours[-1]]
    ('red', 'square', 'background')
    """
    pixels = np.asarray(scene.image.convert("RGB"))
    height, width = pixels.shape[:2]
    coverage = np.zeros((len(scene.objects), rows, cols))
    cell_h, cell_w = height / rows, width / cols
    for index, obj in enumerate(scene.objects):
        x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
        inside = np.all(pixels[y1:y2, x1:x2] == COLOURS[obj.colour], axis=-1)
        ys, xs = np.nonzero(inside)
        np.add.at(coverage[index], (((ys + y1) // cell_h).astype(int), ((xs + x1) // cell_w).astype(int)), 1)
    colours = np.full(rows * cols, BACKGROUND, dtype=np.int64)
    shapes = np.full(rows * cols, BACKGROUND, dtype=np.int64)
    if scene.objects:
        best = coverage.reshape(len(scene.objects), -1).argmax(0)
        share = coverage.reshape(len(scene.objects), -1).max(0) / (cell_h * cell_w)
        for cell in np.nonzero(share >= MIN_PIXELS_SHARE)[0]:
            obj = scene.objects[best[cell]]
            colours[cell] = COLOUR_CLASSES.index(obj.colour)
            shapes[cell] = SHAPE_CLASSES.index(obj.shape)
    return colours, shapes


class CellHead(torch.nn.Module):
    """Linear read-out of colour and shape from each merged image token (training only)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.colour = torch.nn.Linear(hidden_size, len(COLOUR_CLASSES))
        self.shape = torch.nn.Linear(hidden_size, len(SHAPE_CLASSES))

    def loss(self, features: torch.Tensor, colours: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
        colour_loss = torch.nn.functional.cross_entropy(self.colour(features), colours)
        shape_loss = torch.nn.functional.cross_entropy(self.shape(features), shapes)
        return (colour_loss + shape_loss) / 2

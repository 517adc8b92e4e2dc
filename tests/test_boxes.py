"""Coordinate frames and box geometry, against hand-computed values."""

from __future__ import annotations

import doctest

import pytest

import rise.boxes
from rise.boxes import box_iou, clip_box, from_pixels, smart_resize, to_pixels
from rise.tasks import CoordinateFrame


class TestQwen2VLFrame:
    @pytest.mark.parametrize(
        ("pixels", "width", "height", "frame_box"),
        [
            ([0, 0, 64, 64], 64, 64, [0.0, 0.0, 1000.0, 1000.0]),  # the whole square image
            ([50, 25, 100, 50], 200, 100, [250.0, 250.0, 500.0, 500.0]),  # non-square: x over 200, y over 100
            ([150, 60, 200, 100], 200, 100, [750.0, 600.0, 1000.0, 1000.0]),  # touching the right and bottom borders
            ([1, 1, 2, 2], 3, 3, [333.0, 333.0, 667.0, 667.0]),  # 333.33 and 666.67 round to integers
            ([0, 0, 480, 640], 480, 640, [0.0, 0.0, 1000.0, 1000.0]),  # portrait
        ],
    )
    def test_pixels_to_frame_and_back(self, pixels, width, height, frame_box):
        assert from_pixels(pixels, CoordinateFrame.qwen2_vl, width, height) == frame_box
        back = to_pixels(frame_box, CoordinateFrame.qwen2_vl, width, height)
        # why: one Qwen2-VL unit is width/1000 pixels, so the rounding costs at most half of that
        assert all(abs(a - b) <= max(width, height) / 2000 for a, b in zip(back, pixels, strict=True))

    @pytest.mark.parametrize(
        ("frame_box", "expected"),
        [
            ([-50, -50, 500, 500], [0.0, 0.0, 100.0, 50.0]),  # negative corner clipped to the top-left border
            ([500, 500, 1500, 1500], [100.0, 50.0, 200.0, 100.0]),  # beyond 1000 clipped to the bottom-right border
            ([1000, 0, 1200, 1000], None),  # starts at the right border: no area left
            ([300, 300, 300, 600], None),  # zero width
        ],
    )
    def test_out_of_range_boxes_are_clipped_or_dropped(self, frame_box, expected):
        assert to_pixels(frame_box, CoordinateFrame.qwen2_vl, 200, 100) == expected


class TestQwen25VLFrame:
    def test_smart_resize_rounds_sides_to_multiples_of_28(self):
        assert smart_resize(640, 480) == (644, 476)  # 640/28 = 22.9 -> 23 * 28; 480/28 = 17.1 -> 17 * 28
        assert smart_resize(64, 64) == (56, 56)  # 64/28 = 2.3 -> 2 * 28, and 56*56 is the minimum

    def test_boxes_are_in_resized_pixels(self):
        # 640x480 -> 644x476: x scale 644/640, y scale 476/480
        assert to_pixels([0, 0, 644, 476], CoordinateFrame.qwen2_5_vl, 640, 480) == [0.0, 0.0, 640.0, 480.0]
        assert from_pixels([320, 240, 640, 480], CoordinateFrame.qwen2_5_vl, 640, 480) == [322.0, 238.0, 644.0, 476.0]


class TestLabelStudioFrame:
    def test_percent_boxes_round_trip(self):
        # (x, y, w, h) in percent of a 200x100 image: 10% of 200 = 20 px, 20% of 100 = 20 px
        assert from_pixels([20, 20, 60, 70], CoordinateFrame.label_studio, 200, 100) == [10.0, 20.0, 20.0, 50.0]
        assert to_pixels([10.0, 20.0, 20.0, 50.0], CoordinateFrame.label_studio, 200, 100) == [20.0, 20.0, 60.0, 70.0]


class TestClipAndIoU:
    @pytest.mark.parametrize(
        ("box", "expected"),
        [
            ([0, 0, 100, 100], [0.0, 0.0, 100.0, 100.0]),  # exactly the image: unchanged
            ([50, 40, 10, 20], [10.0, 20.0, 50.0, 40.0]),  # corners in the wrong order are swapped
            ([-10, -10, 0, 50], None),  # touches the left border from outside: no area
            ([0, 0, float("nan"), 10], None),  # NaN is not a coordinate
            ([0, 0, 10], None),  # three numbers are not a box
        ],
    )
    def test_clip_box(self, box, expected):
        assert clip_box(box, 100, 100) == expected

    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),  # identical
            ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # sharing an edge only
            ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),  # quarter overlap: 25 / (100 + 100 - 25)
            ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained
            ([0, 0, 0, 10], [0, 0, 0, 10], 0.0),  # zero area on both sides
        ],
    )
    def test_box_iou(self, a, b, expected):
        assert box_iou(a, b) == pytest.approx(expected)


@pytest.mark.parametrize("module", [rise.boxes], ids=lambda module: module.__name__)
def test_docstring_examples_run(module):
    # why: the >>> examples are the documentation of record; they must stay true
    assert doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0

"""Sub-image boxes match MMEditing's extract_subimages rule, computed by hand."""

import pytest

from preprocessing.crop import axis_positions, scale_box, sub_image_boxes


@pytest.mark.parametrize(
    "size,crop,step,thresh,expected",
    [
        (1000, 480, 240, 0, [0, 240, 480, 520]),  # remainder 40 > 0 -> extra position at 520
        (960, 480, 240, 0, [0, 240, 480]),  # exact fit, no extra
        (1000, 480, 240, 40, [0, 240, 480]),  # remainder 40 not > thresh 40
        (1000, 480, 240, 39, [0, 240, 480, 520]),
        (2040, 480, 240, 0, [0, 240, 480, 720, 960, 1200, 1440, 1560]),  # DIV2K width
        (480, 480, 240, 0, [0]),
        (300, 480, 240, 0, [0]),  # shorter than the crop: one position, whole axis
        (70, 32, 16, 0, [0, 16, 32, 38]),
    ],
)
def test_axis_positions(size, crop, step, thresh, expected):
    assert axis_positions(size, crop, step, thresh) == expected


def test_boxes_row_major_and_sizes():
    boxes = sub_image_boxes(1000, 1000, 480, 240, 0)
    assert len(boxes) == 16
    assert boxes[:5] == [(0, 0, 480, 480), (0, 240, 480, 480), (0, 480, 480, 480), (0, 520, 480, 480),
                         (240, 0, 480, 480)]
    assert boxes[-1] == (520, 520, 480, 480)


def test_div2k_sized_image_count():
    # 1356 x 2040: y [0,240,480,720,876], x 8 positions -> 40 sub-images
    assert len(sub_image_boxes(1356, 2040)) == 40


def test_small_image_kept_whole():
    assert sub_image_boxes(20, 30, 32, 16) == [(0, 0, 20, 30)]
    assert sub_image_boxes(20, 70, 32, 16) == [(0, 0, 20, 32), (0, 16, 20, 32), (0, 32, 20, 32), (0, 38, 20, 32)]


def test_scale_box():
    assert scale_box((520, 240, 480, 480), 4) == (130, 60, 120, 120)
    with pytest.raises(ValueError):
        scale_box((1, 0, 4, 4), 2)


def test_bad_arguments():
    with pytest.raises(ValueError):
        sub_image_boxes(10, 10, 0, 1)

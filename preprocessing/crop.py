"""Sub-image crop boxes, following MMEditing's ``extract_subimages`` (DIV2K, REDS).

Along each axis the crop positions are ``0, step, 2*step, ...`` up to
``size - crop_size``, plus one last position at ``size - crop_size`` when the
strip left uncovered is wider than ``thresh_size``. Boxes go row-major (y, then x);
keys number them from 1.

One deliberate difference: MMEditing fails on an axis shorter than the crop
size. Here such an axis gets one position at 0 spanning the whole axis, so an
image smaller than the crop is kept whole as a single sample (and a 300x2000
image with crop 480 gives 300-high strips).
"""

from __future__ import annotations

__all__ = ["axis_positions", "sub_image_boxes", "scale_box"]


def axis_positions(size: int, crop_size: int, step: int, thresh_size: int = 0) -> list[int]:
    """Start offsets along one axis of length ``size``."""
    if crop_size <= 0 or step <= 0 or thresh_size < 0:
        raise ValueError(f"need crop_size > 0, step > 0, thresh_size >= 0; got {crop_size}, {step}, {thresh_size}")
    if size <= crop_size:
        return [0]
    positions = list(range(0, size - crop_size + 1, step))
    if size - (positions[-1] + crop_size) > thresh_size:
        positions.append(size - crop_size)
    return positions


def sub_image_boxes(
    h: int, w: int, crop_size: int = 480, step: int = 240, thresh_size: int = 0
) -> list[tuple[int, int, int, int]]:
    """Crop boxes ``(y, x, h, w)`` covering an ``h`` x ``w`` image, row-major.

    >>> [b[0] for b in sub_image_boxes(1000, 480)]
    [0, 240, 480, 520]
    """
    bh, bw = min(crop_size, h), min(crop_size, w)
    return [
        (y, x, bh, bw)
        for y in axis_positions(h, crop_size, step, thresh_size)
        for x in axis_positions(w, crop_size, step, thresh_size)
    ]


def scale_box(box: tuple[int, int, int, int], scale: int) -> tuple[int, int, int, int]:
    """The LQ box matching a GT box for an integer downscale factor (all coords must divide)."""
    if any(v % scale for v in box):
        raise ValueError(f"box {box} is not divisible by scale {scale}")
    return tuple(v // scale for v in box)  # type: ignore[return-value]

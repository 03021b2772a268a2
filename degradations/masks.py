"""Inpainting hole masks: boxes, irregular strokes, free-form brushes, masks from a set.

Every mask is a ``uint8`` ``HxW`` array in {0, 1} with 1 marking the hole, drawn from the
``numpy.random.Generator`` it is given. The samplers follow MMEditing 0.x's
``LoadMask`` modes (``bbox``, ``irregular``, ``ff``, ``set``) as listed in the model-zoo
spec; integer ranges are half-open ``[low, high)``, like the reference's ``randint``.
``masked_image`` makes the network input, holes filled with mid-grey.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from degradations.checks import check_rng, int_pair, int_range, is_int

__all__ = [
    "random_bbox",
    "bbox_to_mask",
    "bbox_mask",
    "irregular_mask",
    "brush_stroke_mask",
    "sample_mask_from_set",
    "masked_image",
]


# ----------------------------------------------------------------------------- checks
def _shape_hw(img_shape, name: str = "img_shape") -> tuple[int, int]:
    """``(h, w)`` from an ``(h, w)`` or ``(h, w, c)`` tuple of positive ints."""
    if not isinstance(img_shape, Sequence) or len(img_shape) not in (2, 3):
        raise ValueError(f"{name} must be (h, w) or (h, w, c), got {img_shape!r}")
    if not all(is_int(v) and v > 0 for v in img_shape):
        raise ValueError(f"{name} must hold positive ints, got {img_shape!r}")
    return int(img_shape[0]), int(img_shape[1])


def _float_range(v, name: str, lo: float = -math.inf, hi: float = math.inf) -> tuple[float, float]:
    if not isinstance(v, Sequence) or len(v) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {v!r}")
    low, high = float(v[0]), float(v[1])
    if not (np.isfinite(low) and np.isfinite(high)) or low > high or low < lo or high > hi:
        raise ValueError(f"{name} must be finite with {lo} <= low <= high <= {hi}, got {v!r}")
    return low, high


# ----------------------------------------------------------------------------- bbox
def random_bbox(
    img_shape=(256, 256),
    max_bbox_shape=(128, 128),
    max_bbox_delta=40,
    min_margin=20,
    *,
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """A random box ``(top, left, h, w)`` as in MMEditing's ``random_bbox``.

    The full-size box's top-left corner is drawn from ``[margin, size - margin - max_box)``;
    then ``d`` in ``[0, max_bbox_delta // 2]`` is drawn per axis and the box loses ``d``
    rows (columns) at its top (left) edge: ``top += d``, ``h = max_h - d``. The bottom and
    right edges stay where the full-size box put them, so the box is not re-centred
    (the reference's comment says "centre fixed", its code does not). Box sides thus lie
    in ``[max - max_delta // 2, max]``; for the zoo defaults (256 image, 128 box, delta 40,
    margin 20) that is 108-128 px, top-left in [20, 128), bottom-right edge <= 235.

    Args:
        img_shape: Image ``(h, w)`` (a trailing channel count is ignored).
        max_bbox_shape: Largest box ``(h, w)``, or an int for a square.
        max_bbox_delta: Largest shrink ``(dh, dw)`` (halved, see above), or an int.
        min_margin: Smallest distance ``(mh, mw)`` of the full box to the image border.
        rng: Random generator.

    Returns:
        ``(top, left, h, w)`` in pixels.
    """
    check_rng(rng)
    img_h, img_w = _shape_hw(img_shape)
    max_h, max_w = int_pair(max_bbox_shape, "max_bbox_shape", 1)
    delta_h, delta_w = int_pair(max_bbox_delta, "max_bbox_delta", 0)
    margin_h, margin_w = int_pair(min_margin, "min_margin", 0)
    if max_h > img_h or max_w > img_w:
        raise ValueError(f"max_bbox_shape {max_bbox_shape} exceeds img_shape {img_shape}")
    if delta_h // 2 >= max_h or delta_w // 2 >= max_w:
        raise ValueError(f"max_bbox_delta {max_bbox_delta} would empty a box of max shape {max_bbox_shape}")
    if img_h - max_h <= 2 * margin_h or img_w - max_w <= 2 * margin_w:
        raise ValueError(f"min_margin {min_margin} leaves no room for a {max_bbox_shape} box in {img_shape}")
    top = int(rng.integers(margin_h, img_h - margin_h - max_h))
    left = int(rng.integers(margin_w, img_w - margin_w - max_w))
    d_top = int(rng.integers(0, delta_h // 2 + 1))
    d_left = int(rng.integers(0, delta_w // 2 + 1))
    return top + d_top, left + d_left, max_h - d_top, max_w - d_left


def bbox_to_mask(img_shape, bbox) -> np.ndarray:
    """``uint8`` ``HxW`` mask with 1 inside ``bbox = (top, left, h, w)`` (clipped to the image)."""
    img_h, img_w = _shape_hw(img_shape)
    if not isinstance(bbox, Sequence) or len(bbox) != 4 or not all(is_int(v) for v in bbox):
        raise ValueError(f"bbox must be four ints (top, left, h, w), got {bbox!r}")
    top, left, h, w = (int(v) for v in bbox)
    if h < 0 or w < 0:
        raise ValueError(f"bbox height and width must be >= 0, got {bbox!r}")
    mask = np.zeros((img_h, img_w), dtype=np.uint8)
    mask[max(top, 0):max(top + h, 0), max(left, 0):max(left + w, 0)] = 1
    return mask


def bbox_mask(
    img_shape=(256, 256),
    max_bbox_shape=(128, 128),
    max_bbox_delta=40,
    min_margin=20,
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rectangular hole: ``bbox_to_mask(img_shape, random_bbox(...))``.

    Models that also need the box (DeepFill v1's local discriminator crop) call
    ``random_bbox`` and ``bbox_to_mask`` themselves.
    """
    box = random_bbox(img_shape, max_bbox_shape, max_bbox_delta, min_margin, rng=rng)
    return bbox_to_mask(img_shape, box)


# ----------------------------------------------------------------------------- irregular
def _draw_irregular(h, w, vertices, max_angle, lengths, widths, rng) -> np.ndarray:
    """One draw of the irregular-stroke process (no area constraint)."""
    mask = np.zeros((h, w), dtype=np.uint8)
    for i in range(int(rng.integers(*vertices))):
        row, col = int(rng.integers(h)), int(rng.integers(w))
        n = int(rng.integers(1, 6))  # 1-5 connected segments from this start
        angles = rng.integers(0, max_angle, size=n) + 0.01
        seg_lengths = rng.integers(*lengths, size=n)
        seg_widths = rng.integers(*widths, size=n)
        for angle, length, width in zip(angles, seg_lengths, seg_widths):
            if i % 2 == 0:  # every other start mirrors its angles
                angle = 2 * math.pi - angle
            end_row = int(row + length * math.sin(angle))  # truncation toward zero, as the reference
            end_col = int(col + length * math.cos(angle))
            cv2.line(mask, (col, row), (end_col, end_row), 1, int(width))
            row, col = end_row, end_col
    return mask


def irregular_mask(
    img_shape=(256, 256),
    num_vertices=(4, 10),
    max_angle=6,
    length_range=(20, 128),
    brush_width=(10, 45),
    area_ratio_range=(0.15, 0.65),
    *,
    rng: np.random.Generator,
    max_tries: int = 1000,
) -> np.ndarray:
    """Irregular stroke mask (DeepFill v2 / PConv zoo configs, MMEditing ``irregular``).

    ``num_vertices`` start points are drawn uniformly; from each, 1-5 chained straight
    strokes (``cv2.line``) go out with angle ``k + 0.01`` rad, ``k`` an integer in
    ``[0, max_angle)`` (mirrored to ``2 pi - angle`` for even-numbered starts), length in
    ``length_range`` and width in ``brush_width``. The whole mask is redrawn until its hole
    ratio lies strictly inside ``area_ratio_range``.

    Args:
        img_shape: Image ``(h, w)``.
        num_vertices: Half-open range of the number of start points.
        max_angle: Exclusive upper bound of the integer angle part, in radians (>= 1).
        length_range: Half-open range of stroke lengths, px.
        brush_width: Half-open range of stroke widths, px (>= 1).
        area_ratio_range: Open interval ``(min, max)`` the hole fraction must fall into.
        rng: Random generator.
        max_tries: Redraws before giving up (the range may be unreachable for the shape).

    Returns:
        ``uint8`` ``HxW`` mask, 1 = hole.
    """
    check_rng(rng)
    h, w = _shape_hw(img_shape)
    vertices = int_range(num_vertices, "num_vertices", 1)
    lengths = int_range(length_range, "length_range", 0)
    widths = int_range(brush_width, "brush_width", 1)
    if isinstance(max_angle, bool) or not np.isfinite(max_angle) or int(max_angle) != max_angle or max_angle < 1:
        raise ValueError(f"max_angle must be a whole number >= 1, got {max_angle!r}")
    lo, hi = _float_range(area_ratio_range, "area_ratio_range", 0.0, 1.0)
    if lo >= hi:
        raise ValueError(f"area_ratio_range must have low < high, got {area_ratio_range!r}")
    if not is_int(max_tries) or max_tries < 1:
        raise ValueError(f"max_tries must be a positive int, got {max_tries!r}")
    for _ in range(max_tries):
        mask = _draw_irregular(h, w, vertices, int(max_angle), lengths, widths, rng)
        if lo < mask.mean() < hi:
            return mask
    raise ValueError(f"no irregular mask with hole ratio in {area_ratio_range} after {max_tries} draws")


# ----------------------------------------------------------------------------- free-form
def brush_stroke_mask(
    img_shape=(256, 256),
    num_vertices=(4, 12),
    mean_angle: float = 2 * math.pi / 5,
    angle_range: float = 2 * math.pi / 15,
    brush_width=(12, 40),
    num_loops=(1, 4),
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Free-form brush strokes (DeepFill v2 "ff", MMEditing ``brush_stroke_mask``).

    Each of ``num_loops`` strokes starts at a uniform pixel and walks ``num_vertices``
    steps; the stroke draws its angle bounds ``mean_angle - U(0, angle_range)`` and
    ``mean_angle + U(0, angle_range)``, each step an angle between them (``2 pi - angle``
    on even steps, so the stroke zig-zags) and a length ``N(r, r // 2)`` clipped to
    ``[0, 2r]`` with ``r = diag / 8``; vertices are clipped to the image. The polyline is
    drawn ``width`` thick (``width`` in ``brush_width``) with round joints (discs of
    radius ``width // 2`` on every vertex). The reference's random flips are no-ops
    (their result is discarded), so none are applied here.

    Args:
        img_shape: Image ``(h, w)``.
        num_vertices: Half-open range of steps per stroke.
        mean_angle: Mean turning angle, radians.
        angle_range: Largest deviation of the angle bounds from ``mean_angle``, radians.
        brush_width: Half-open range of stroke widths, px.
        num_loops: Half-open range of the number of strokes (default 1-3).
        rng: Random generator.

    Returns:
        ``uint8`` ``HxW`` mask, 1 = hole (never empty).
    """
    check_rng(rng)
    h, w = _shape_hw(img_shape)
    vertices = int_range(num_vertices, "num_vertices", 1)
    widths = int_range(brush_width, "brush_width", 1)
    loops = int_range(num_loops, "num_loops", 1)
    if not (np.isfinite(mean_angle) and np.isfinite(angle_range)) or angle_range < 0:
        raise ValueError(f"mean_angle and angle_range must be finite with angle_range >= 0, "
                         f"got {mean_angle!r}, {angle_range!r}")
    radius = math.hypot(h, w) / 8
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(*loops))):
        n = int(rng.integers(*vertices))
        a_min = mean_angle - rng.uniform(0, angle_range)
        a_max = mean_angle + rng.uniform(0, angle_range)
        angles = rng.uniform(a_min, a_max, size=n)
        angles[0::2] = 2 * math.pi - angles[0::2]
        steps = np.clip(rng.normal(radius, radius // 2, size=n), 0, 2 * radius)
        pts = [(int(rng.integers(w)), int(rng.integers(h)))]  # (x, y)
        for angle, step in zip(angles, steps):
            x = int(np.clip(pts[-1][0] + step * math.cos(angle), 0, w - 1))
            y = int(np.clip(pts[-1][1] + step * math.sin(angle), 0, h - 1))
            pts.append((x, y))
        width = int(rng.integers(*widths))
        for p, q in zip(pts[:-1], pts[1:]):
            cv2.line(mask, p, q, 1, width)
        for p in pts:
            cv2.circle(mask, p, width // 2, 1, -1)
    return mask


# ----------------------------------------------------------------------------- mask set
def _binary_2d(mask, name: str) -> np.ndarray:
    """``uint8`` HxW {0, 1} from an HxW or HxWxC array (first channel, ``> 0`` is a hole)."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{name} must be a non-empty HxW or HxWxC array, got shape {mask.shape}")
    if mask.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {mask.dtype}")
    if mask.dtype.kind == "f" and np.isnan(mask).any():
        raise ValueError(f"{name} contains NaN")
    return (mask > 0).astype(np.uint8)


def sample_mask_from_set(
    masks: Sequence[np.ndarray],
    out_shape,
    *,
    rng: np.random.Generator,
    rotation=(0.0, 45.0),
    resize: bool = True,
) -> np.ndarray:
    """One mask from a user-provided set (e.g. the PConv irregular masks), augmented.

    As AOT-GAN's training (``LoadMask`` mode ``set`` plus the paper's augmentation): a
    uniformly chosen mask, binarised with ``> 0`` (first channel if it has several),
    resized to ``out_shape`` (nearest neighbour), then rotated about its centre by an
    angle uniform in ``rotation`` degrees (counter-clockwise, nearest neighbour, pixels
    rotated in from outside are valid, 0).

    Args:
        masks: Non-empty list of masks, HxW or HxWxC, any numeric dtype.
        out_shape: Output ``(h, w)``.
        rng: Random generator.
        rotation: ``(low, high)`` rotation range in degrees; ``(0, 0)`` disables it.
        resize: If False, the chosen mask must already be ``out_shape``.

    Returns:
        ``uint8`` ``HxW`` mask, 1 = hole.
    """
    check_rng(rng)
    out_h, out_w = _shape_hw(out_shape, "out_shape")
    if isinstance(masks, np.ndarray) or not isinstance(masks, Sequence) or len(masks) == 0:
        raise ValueError("masks must be a non-empty list of arrays")
    lo, hi = _float_range(rotation, "rotation")
    mask = _binary_2d(masks[int(rng.integers(len(masks)))], "mask")
    if mask.shape != (out_h, out_w):
        if not resize:
            raise ValueError(f"mask shape {mask.shape} differs from out_shape {(out_h, out_w)} and resize is off")
        mask = cv2.resize(mask, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    angle = rng.uniform(lo, hi) if hi > lo else lo
    if angle != 0.0:
        m = cv2.getRotationMatrix2D(((out_w - 1) / 2.0, (out_h - 1) / 2.0), angle, 1.0)
        mask = cv2.warpAffine(mask, m, (out_w, out_h), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (mask > 0).astype(np.uint8)


# ----------------------------------------------------------------------------- masked input
def masked_image(img01: np.ndarray, mask: np.ndarray, fill: float = 127.5 / 255.0) -> np.ndarray:
    """``img * (1 - mask) + fill * mask``: the hole-filled network input.

    ``fill`` defaults to mid-grey, MMEditing's ``GetMaskedImage`` 127.5 on the 0-255 scale
    (0 after the zoo's ``[-1, 1]`` normalisation).

    Args:
        img01: float ``HxW`` or ``HxWxC`` image in [0, 1].
        mask: ``HxW`` or ``HxWx1`` hole mask in [0, 1] (1 = hole), any numeric dtype.
        fill: Value written into the holes.

    Returns:
        Image of ``img01``'s shape and dtype.
    """
    if not isinstance(img01, np.ndarray) or img01.ndim not in (2, 3) or img01.size == 0:
        raise ValueError(f"img01 must be a non-empty HxW or HxWxC array, got {getattr(img01, 'shape', img01)!r}")
    if img01.dtype.kind != "f":
        raise ValueError(f"img01 must be float in [0, 1], got dtype {img01.dtype}")
    if not np.isfinite(img01).all():
        raise ValueError("img01 contains NaN or infinite values")
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "biuf":
        raise ValueError(f"mask must be a numeric numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.shape != img01.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {img01.shape[:2]}")
    m = mask.astype(np.float64)
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    if not np.isfinite(fill):
        raise ValueError(f"fill must be finite, got {fill!r}")
    if img01.ndim == 3:
        m = m[:, :, None]
    return (img01 * (1.0 - m) + fill * m).astype(img01.dtype)

"""Input validation shared by the degradation modules: one-line ValueErrors for bad arguments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_gt(gt: np.ndarray, scale: int, min_side: int = 1) -> None:
    """Raise unless ``gt`` is a finite float HxWx3 image with sides multiples of ``scale``.

    Args:
        gt: The image to check.
        scale: Integer downscale factor the preset will apply.
        min_side: Smallest allowed height/width (some pipelines need room for their kernels).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if not isinstance(gt, np.ndarray):
        raise ValueError(f"gt must be a numpy array, got {type(gt).__name__}")
    if gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"gt must be HxWx3 RGB, got shape {gt.shape}")
    if not np.issubdtype(gt.dtype, np.floating):
        raise ValueError(f"gt must be float in [0, 1], got dtype {gt.dtype}")
    h, w = gt.shape[:2]
    low = max(scale, min_side)
    if h < low or w < low or h % scale or w % scale:
        need = f"positive multiples of scale {scale}" + (f" and at least {low}" if low > scale else "")
        raise ValueError(f"gt height and width must be {need}, got {h}x{w}")
    if not np.isfinite(gt).all():
        raise ValueError("gt contains NaN or infinite values")


def check_rng(rng) -> None:
    """Every random op takes an explicit ``numpy.random.Generator`` (seeded per sample)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def is_int(v) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def int_pair(v, name: str, minimum: int = 0) -> tuple[int, int]:
    """An int or ``(a, b)`` of ints, each ``>= minimum``, as a pair."""
    pair = (v, v) if is_int(v) else v
    if not isinstance(pair, Sequence) or len(pair) != 2 or not all(is_int(x) for x in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(pair[0]), int(pair[1])


def int_range(v, name: str, minimum: int) -> tuple[int, int]:
    """A half-open integer range ``(low, high)`` with ``minimum <= low < high`` (the reference's
    ``randint`` bounds); a single int ``k`` means exactly ``k``, i.e. ``(k, k + 1)``."""
    low, high = int_pair(v, name, minimum)
    if is_int(v):
        high = low + 1
    if low >= high:
        raise ValueError(f"{name} must be a non-empty range (low, high) with low < high, got {v!r}")
    return low, high

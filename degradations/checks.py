"""Input validation shared by the presets: one-line ValueErrors for bad GT images."""

from __future__ import annotations

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

"""Unsharp masking (USM) with a soft threshold mask, as Real-ESRGAN sharpens its GT.

``usm_sharp`` follows BasicSR's definition (``usm_sharp`` / ``USMSharp``): blur with a
``51 x 51`` Gaussian whose sigma OpenCV derives from the size (sigma 0 -> 0.3 * (51 / 2 - 1)
+ 0.8 = 8.0), residual = img - blur; pixels whose |residual| exceeds ``threshold / 255``
form a binary mask, which is blurred with the same Gaussian into a soft mask; the output is
``soft * clip(img + weight * residual, 0, 1) + (1 - soft) * img``.

Borders are reflected without repeating the edge pixel (``BORDER_REFLECT_101``), which is
both ``cv2.GaussianBlur``'s default (the reference CPU path) and torch's ``reflect`` padding
(the reference GPU path). The Gaussian is separable, so two 1-D passes replace the 51x51
correlation (same result up to float32 rounding).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["usm_sharp"]


def usm_sharp(img: np.ndarray, weight: float = 0.5, threshold: float = 10, radius: int = 50) -> np.ndarray:
    """Sharpen ``img`` with a thresholded unsharp mask.

    Args:
        img: ``HxWxC`` (or ``HxW``) float image in [0, 1].
        weight: Amount of residual added back.
        threshold: Residual threshold on the 0-255 scale below which (softly) nothing changes.
        radius: Kernel size; an even value is bumped to the next odd one (50 -> 51).

    Returns:
        float32 image of the same shape, in [0, 1] where ``img`` is.
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must be a non-empty HxW or HxWxC array, got {getattr(img, 'shape', type(img))}")
    if radius % 2 == 0:
        radius += 1
    img = img.astype(np.float32, copy=False)
    ksize = (radius, radius)
    blur = cv2.GaussianBlur(img, ksize, 0).reshape(img.shape)
    residual = img - blur
    mask = (np.abs(residual) * np.float32(255.0) > np.float32(threshold)).astype(np.float32)
    soft = cv2.GaussianBlur(mask, ksize, 0).reshape(img.shape)
    sharp = img + np.float32(weight) * residual
    np.clip(sharp, 0.0, 1.0, out=sharp)
    return soft * sharp + (np.float32(1.0) - soft) * img

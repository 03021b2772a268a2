"""Gaussian blur kernels and 2-D filtering (cross-correlation) on HxW / HxWxC images."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["gaussian_kernel2d", "filter2d"]


def gaussian_kernel2d(size: int, sigma: float) -> np.ndarray:
    """Isotropic Gaussian kernel, normalised to sum 1.

    Samples are taken at offsets ``i - (size - 1) / 2``, so an even ``size`` gives a kernel
    centred between pixels (like MATLAB ``fspecial('gaussian', size, sigma)`` and
    OpenCV 4's ``cv2.getGaussianKernel``); where it lands on the image is set by
    ``filter2d``'s anchor. Not delegated to ``cv2.getGaussianKernel``: the installed OpenCV
    5.0 samples even sizes at offsets 0, 0, +-1.5, +-2.5, ... (the 12x12 BD kernel then
    differs by up to 3e-3).

    Args:
        size: Side length in pixels (>= 1).
        sigma: Standard deviation in pixels (> 0).

    Returns:
        ``[size, size]`` float64 array.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"kernel size must be a positive int, got {size!r}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    k = np.outer(g, g)
    return k / k.sum()


def filter2d(
    img: np.ndarray,
    kernel: np.ndarray,
    anchor: tuple[int, int] | None = None,
    border: int = cv2.BORDER_REPLICATE,
) -> np.ndarray:
    """Correlate every channel of ``img`` with ``kernel`` (``cv2.filter2D``, same size out).

    ``out[y, x] = sum_{i,j} kernel[i, j] * img[y + i - ay, x + j - ax]`` with the anchor
    ``(ax, ay)`` (column, row; OpenCV order), out-of-image pixels taken from ``border``.

    Args:
        img: ``HxW`` or ``HxWxC`` float32/float64 (or uint8) image.
        kernel: 2-D kernel; not flipped (correlation, as in MATLAB ``imfilter``).
        anchor: Kernel point placed on the output pixel; default the centre
            ``(kw // 2, kh // 2)``.
        border: OpenCV border mode.

    Returns:
        Filtered image, same shape and dtype as ``img``.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.size == 0:
        raise ValueError(f"kernel must be a non-empty 2-D array, got shape {kernel.shape}")
    if anchor is None:
        anchor = (-1, -1)  # OpenCV's "centre"
    out = cv2.filter2D(img, -1, kernel, anchor=tuple(int(a) for a in anchor), borderType=border)
    return out.reshape(img.shape)  # OpenCV drops a trailing singleton channel

"""MATLAB-exact bicubic ``imresize``.

The model zoo's BI low-resolution inputs (DIV2K LR, Set5/Set14 LRbicx*, Vimeo-90K BIx4)
were made with MATLAB's ``imresize(img, 1/s, 'bicubic')``. It is hand-written because
no library call reproduces it: OpenCV's INTER_CUBIC uses a=-0.75 and never antialiases;
PIL antialiases with a=-0.5 too but truncates the kernel at the image border instead of
mirroring and rounds 8-bit images between passes. LR inputs made that way are not the
benchmark's LR images (a shifted input distribution costs PSNR), so this module re-derives
MATLAB's algorithm from its definition (spec/model_zoo.md, "MATLAB imresize"):

* kernel: Keys cubic with a=-0.5, support 4;
* when downscaling (scale < 1) the kernel is stretched, h(x) = s*cubic(s*x), width 4/s
  (antialiasing);
* output pixel x (1-based) maps to input position u = x/s + 0.5*(1 - 1/s); its taps are
  left = floor(u - w/2) + 0..P-1 with P = ceil(w) + 2, weighted h(u - tap) and
  normalised to sum 1;
* taps outside the image are mirrored with edge duplication (MATLAB 'symmetric');
* tap columns whose weight is zero for every output pixel are dropped;
* output length is ceil(s*in); the dimensions are resized one at a time, in order of
  increasing scale (height first on ties).

Weights and gather indices are computed once per axis; the resize is then a short loop
over taps, each a gather plus a weighted add over the whole image (taps summed in order).
Arithmetic is float64 throughout.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["imresize"]

_KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel tap weights and 0-based input indices along one axis.

    Returns:
        ``(weights, indices)``, both ``[out_len, taps]``; each weights row sums to 1.
    """
    width = _KERNEL_WIDTH
    if scale < 1:
        width = _KERNEL_WIDTH / scale

        def kernel(t: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * t)

    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based positions
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: position 0 -> 1, -1 -> 2, n+1 -> n, ... (period 2n).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """Resize float64 ``img`` along ``axis`` (0 = rows, 1 = columns)."""
    weights, indices = _contributions(img.shape[axis], out_len, scale)
    shape = [1] * img.ndim
    shape[axis] = out_len
    out = np.zeros(img.shape[:axis] + (out_len,) + img.shape[axis + 1 :], dtype=np.float64)
    tap = np.empty_like(out)  # reused: large temporaries per tap cost more than the maths
    for p in range(weights.shape[1]):
        np.take(img, indices[:, p], axis=axis, out=tap)
        tap *= weights[:, p].reshape(shape)
        out += tap
    return out


def _check_args(
    img: np.ndarray, scale: float | None, output_shape: tuple[int, int] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Validate inputs; return the per-axis scales and output size (rows, cols)."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"imresize expects a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"imresize expects a non-empty HxW or HxWxC array, got shape {img.shape}")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"imresize supports uint8 or floating images, got dtype {img.dtype}")
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of scale or output_shape")
    in_h, in_w = img.shape[:2]
    if scale is not None:
        valid = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        if not valid or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        scale = float(scale)
        return (scale, scale), (math.ceil(scale * in_h), math.ceil(scale * in_w))
    if (
        not isinstance(output_shape, (tuple, list))
        or len(output_shape) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in output_shape)
    ):
        raise ValueError(f"output_shape must be two positive ints (rows, cols), got {output_shape!r}")
    out_h, out_w = int(output_shape[0]), int(output_shape[1])
    return (out_h / in_h, out_w / in_w), (out_h, out_w)


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale_or_size, 'bicubic')`` (antialias on).

    Args:
        img: ``HxW`` or ``HxWxC`` image, uint8 or floating point (any range).
        scale: Resize factor for both axes; output size is ``ceil(scale * size)``.
        output_shape: ``(rows, cols)`` of the output instead of ``scale``; each axis then
            uses its own factor ``out / in``.

    Returns:
        The resized image. uint8 in gives uint8 out (clipped to [0, 255], rounded half
        away from zero like MATLAB); floating in gives the same float dtype out, unclipped.

    Raises:
        ValueError: on a non-array, wrong rank, empty image, unsupported dtype, or when
            not exactly one of ``scale`` / ``output_shape`` is a valid value.
    """
    scales, out_size = _check_args(img, scale, output_shape)
    out = img.astype(np.float64, copy=False)  # never written to
    # MATLAB sorts the dimensions by scale (stable): the most-shrunk axis goes first.
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        out = _resize_axis(out, axis, out_size[axis], scales[axis])
    if img.dtype == np.uint8:
        return np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)
    return out.astype(img.dtype, copy=False)

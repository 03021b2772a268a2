"""Area / bilinear / bicubic resize with the semantics of ``torch.nn.functional.interpolate``.

Real-ESRGAN's reference resizes on the GPU with ``F.interpolate(x, scale_factor=s)`` (first
order) or ``F.interpolate(x, size=...)`` (second order, final step), ``align_corners=False``,
no antialiasing. This module reproduces those semantics on the CPU:

* ``bilinear`` / ``bicubic``: ``cv2.resize`` (INTER_LINEAR / INTER_CUBIC; both half-pixel
  centres, two / four taps with no antialiasing, bicubic a = -0.75, replicated borders, as
  torch). Given ``scale_factor`` torch maps output pixel ``d`` to ``(d + 0.5) / s - 0.5``,
  not through ``in / out``; OpenCV does the same when called with ``fx = fy = s`` and no
  ``dsize``, and then makes ``round(in * s)`` pixels where torch makes ``floor(in * s)``, so
  the extra last row/column is cropped.
* ``area``: torch's adaptive average pooling (output pixel ``i`` = plain mean of input
  pixels ``floor(i n / m) .. ceil((i + 1) n / m) - 1``), computed here with float32
  window sums, one axis at a time. ``cv2.INTER_AREA`` is *not* used: it weights by
  fractional pixel overlap when downscaling by a non-integer factor and interpolates
  bilinearly when upscaling, both different from torch.

Measured against ``F.interpolate`` (torch 2.13 CPU, float32, 400x400x3 smooth random image,
``align_corners=False``), max |difference| on the [0, 1] scale:

* bilinear / bicubic, ``size=`` or ``scale_factor=`` calls, scales 0.15-1.5: <= 6.2e-6 (float
  rounding of the weights; mean ~4e-7). Calling ``cv2.resize`` with ``dsize`` instead of
  ``fx`` for a ``scale_factor`` call would differ by up to 0.23 (s = 1.13, output 451 px:
  coordinates mapped through 451/400 instead of 1.13).
* scales near 1: torch's area and bilinear copy a same-size result (s in (1, 1 + 1/n)),
  its bicubic still resamples through ``1 / s``; OpenCV copies whenever ``round(n * s) == n``
  (also s slightly below 1, where torch shrinks by one pixel). Those cases are computed
  with dense per-axis weights here (<= 8e-6).
* area: <= 2.4e-7 here; ``cv2.INTER_AREA`` would differ by 0.03-0.13 at non-integer factors
  (0 at 0.5 and 1.0).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["RESIZE_MODES", "resize", "scaled_size"]

RESIZE_MODES = ("area", "bilinear", "bicubic")
_CV_INTERP = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def scaled_size(hw: tuple[int, int], scale_factor: float) -> tuple[int, int]:
    """Output size of ``F.interpolate(scale_factor=s)``: ``floor(n * s)`` per axis."""
    return int(math.floor(hw[0] * scale_factor)), int(math.floor(hw[1] * scale_factor))


def _area_rows(x: np.ndarray, out: int) -> np.ndarray:
    """Adaptive average pooling of ``x`` (``n x ...``) to ``out`` rows, float32 window sums.

    Window ``i`` is rows ``[floor(i n / out), ceil((i + 1) n / out))`` (neighbouring windows
    may share a row). Windows are at most ``ceil(n / out) + 1`` rows long, so the sum is a
    short loop of whole-row gathers, each masked where a window is shorter.
    """
    n = x.shape[0]
    i = np.arange(out, dtype=np.int64)
    start = (i * n) // out
    end = -((-(i + 1) * n) // out)  # ceil((i + 1) n / out)
    count = end - start
    bshape = (out,) + (1,) * (x.ndim - 1)
    acc = x[start].copy()
    for t in range(1, int(count.max())):
        rows = x[np.minimum(start + t, n - 1)]
        short = count <= t
        if short.any():
            rows[short] = 0.0
        acc += rows
    return acc / count.astype(np.float32).reshape(bshape)


def _area(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """torch's ``adaptive_avg_pool2d`` of an ``HxWxC`` image, one axis at a time."""
    out = img if oh == img.shape[0] else _area_rows(img, oh)
    if ow != img.shape[1]:
        out = np.ascontiguousarray(_area_rows(np.ascontiguousarray(out.transpose(1, 0, 2)), ow).transpose(1, 0, 2))
    return out.astype(np.float32, copy=False)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys cubic (a = -0.75, torch's and OpenCV's) weights of the taps -1, 0, 1, 2 at offset ``t``."""
    a = -0.75
    x = np.stack([t + 1, t, 1 - t, 2 - t], axis=-1)
    ax = np.abs(x)
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return np.where(ax <= 1, near, far)


def _interp_axis(x: np.ndarray, out: int, axis: int, scale: float, mode: str) -> np.ndarray:
    """torch's bilinear/bicubic along one axis with source ``(d + 0.5) / scale - 0.5`` (float64)."""
    n = x.shape[axis]
    src = (np.arange(out, dtype=np.float64) + 0.5) / scale - 0.5
    if mode == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = np.floor(src).astype(np.int64)
        t = src - i0
        idx = np.stack([i0, i0 + 1], axis=-1)
        wts = np.stack([1 - t, t], axis=-1)
    else:
        i0 = np.floor(src).astype(np.int64)
        idx = i0[:, None] + np.arange(-1, 3)[None, :]
        wts = _cubic_weights(src - i0)
    mat = np.zeros((out, n))
    np.add.at(mat, (np.repeat(np.arange(out), idx.shape[1]), np.clip(idx, 0, n - 1).ravel()), wts.ravel())
    return np.moveaxis(np.tensordot(mat, np.moveaxis(x, axis, 0), axes=(1, 0)), 0, axis)


def resize(
    img: np.ndarray, size_hw: tuple[int, int] | None, mode: str, *, scale_factor: float | None = None
) -> np.ndarray:
    """Resize ``img`` like ``F.interpolate(..., mode=mode, align_corners=False)``.

    Args:
        img: ``HxWxC`` float image.
        size_hw: Output ``(height, width)``, like ``F.interpolate(size=...)``; ``None`` with
            ``scale_factor`` for ``floor(n * scale_factor)``.
        mode: ``area``, ``bilinear`` or ``bicubic``.
        scale_factor: If given, like ``F.interpolate(scale_factor=...)``: the output is
            ``floor(n * s)`` and coordinates map through ``1 / s``.

    Returns:
        float32 ``size_hw[0] x size_hw[1] x C`` image (bicubic may overshoot [0, 1], as torch).
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(RESIZE_MODES)}")
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must be a non-empty HxWxC array, got {getattr(img, 'shape', type(img))}")
    if scale_factor is not None:
        if not (math.isfinite(scale_factor) and scale_factor > 0):
            raise ValueError(f"scale_factor must be a positive finite number, got {scale_factor!r}")
        want = scaled_size(img.shape[:2], scale_factor)
        if size_hw is not None and tuple(size_hw) != want:
            raise ValueError(f"size_hw {tuple(size_hw)} disagrees with scale_factor {scale_factor} (-> {want})")
        size_hw = want
    if size_hw is None:
        raise ValueError("give size_hw or scale_factor")
    oh, ow = int(size_hw[0]), int(size_hw[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"output size must be at least 1x1, got {oh}x{ow}")
    img = img.astype(np.float32, copy=False)
    h, w, c = img.shape
    if (oh, ow) == (h, w) and (scale_factor is None or scale_factor == 1):
        return img.copy()
    if mode == "area":
        return _area(img, oh, ow)
    interp = _CV_INTERP[mode]
    if scale_factor is None:
        out = cv2.resize(img, (ow, oh), interpolation=interp)
    elif (oh, ow) == (h, w) and mode == "bilinear":
        out = img.copy()  # torch's bilinear copies a same-size input whatever the scale
    elif (round(h * scale_factor), round(w * scale_factor)) == (h, w):
        # OpenCV would compute dsize == input size and just copy; torch resamples through
        # 1 / s (s near 1). Rare, so done with dense per-axis weights.
        out = _interp_axis(_interp_axis(img.astype(np.float64), oh, 0, scale_factor, mode), ow, 1, scale_factor, mode)
        out = out.astype(np.float32)
    else:
        out = cv2.resize(img, None, fx=scale_factor, fy=scale_factor, interpolation=interp)
        out = out[:oh, :ow]
    return np.ascontiguousarray(out.reshape(out.shape[0], out.shape[1], c))

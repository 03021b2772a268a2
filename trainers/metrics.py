"""PSNR / SSIM with MMEditing's evaluation conventions (spec/model_zoo.md, "Metrics").

Images are ``HxWxC`` RGB (or ``HxW``) arrays on the 0..255 scale, computed in float64.
``crop_border`` pixels are removed from every edge first; ``convert_to="y"`` scores the
BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (not rounded). SSIM is
the Wang et al. Gaussian-window form on the valid region only, without MATLAB's automatic
downsampling, averaged over channels (``channels="blue"`` reproduces MMEditing 0.x's
cropped-RGB figure instead, see ``ssim``). A dataset score is the mean of per-sample scores.

Zoo tables differ in how predictions become images: MMEditing 1.x scores the clamped,
unrounded float output, 0.x rounds it to uint8 first; ``tensor_to_image(round=...)``
picks the convention.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np
import torch

__all__ = ["to_y", "psnr", "ssim", "tensor_to_image"]

ColorSpace = Literal["rgb", "y"]
SsimChannels = Literal["mean", "blue"]

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an ``HxWx3`` RGB image on 0..255; ``HxW`` float64 in [16, 235]."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"to_y expects an HxWx3 RGB image, got shape {img.shape}")
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _prepare(
    pred: np.ndarray, gt: np.ndarray, crop_border: int, convert_to: ColorSpace
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, crop and colour-convert a pair; returns float64 ``HxWxC`` arrays."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC images, got shape {pred.shape}")
    if convert_to not in ("rgb", "y"):
        raise ValueError(f"convert_to must be 'rgb' or 'y', got {convert_to!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative int, got {crop_border!r}")
    h, w = pred.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")
    if crop_border:
        pred = pred[crop_border:-crop_border, crop_border:-crop_border]
        gt = gt[crop_border:-crop_border, crop_border:-crop_border]
    if convert_to == "y":
        pred, gt = to_y(pred), to_y(gt)
    pred, gt = pred.astype(np.float64), gt.astype(np.float64)
    if pred.ndim == 2:
        pred, gt = pred[..., None], gt[..., None]
    return pred, gt


def psnr(pred: np.ndarray, gt: np.ndarray, crop_border: int = 0, convert_to: ColorSpace = "rgb") -> float:
    """Peak signal-to-noise ratio in dB for 0..255 images; ``inf`` for identical images.

    Args:
        pred: Prediction, ``HxWx3`` RGB (``HxW`` allowed for ``"rgb"``), 0..255.
        gt: Ground truth, same shape.
        crop_border: Pixels removed from each edge before scoring (the zoo uses the scale).
        convert_to: ``"rgb"`` scores all channels; ``"y"`` scores the luma channel.

    Raises:
        ValueError: on a shape mismatch or a crop that leaves no pixels.
    """
    pred, gt = _prepare(pred, gt, crop_border, convert_to)
    mse = float(np.mean((pred - gt) ** 2))
    if mse == 0:
        return float("inf")
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def _gaussian_window() -> np.ndarray:
    g = cv2.getGaussianKernel(_SSIM_WINDOW, _SSIM_SIGMA)  # odd size: the analytic Gaussian
    return np.outer(g, g)


def _ssim_channel(x: np.ndarray, y: np.ndarray, window: np.ndarray) -> float:
    """Mean SSIM map of one float64 channel over the window's valid region."""
    r = _SSIM_WINDOW // 2

    def local_mean(img: np.ndarray) -> np.ndarray:
        return cv2.filter2D(img, -1, window)[r:-r, r:-r]

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2)
    return float(np.mean(num / den))


def ssim(
    pred: np.ndarray,
    gt: np.ndarray,
    crop_border: int = 0,
    convert_to: ColorSpace = "rgb",
    channels: SsimChannels = "mean",
) -> float:
    """Structural similarity (11x11 Gaussian window, sigma 1.5).

    ``channels="mean"`` averages the per-channel SSIM: the correct figure, and what every
    MMEditing version reports for Y, for gray images and for RGB with ``crop_border=0``.

    ``channels="blue"`` scores the blue channel of an RGB image only. That is the figure
    MMEditing 0.x reports for RGB SSIM with ``crop_border > 0`` (its SR benchmarks): 0.x
    crops with ``img[c:-c, c:-c, None]`` (0.16.1 ``mmedit/core/evaluation/metrics.py``
    l. 349-356), an ``HxWx1x3`` array, so its channel loop runs once and scores
    ``img[..., 0]``, the first channel of its BGR arrays (``tensor2img`` flips RGB to BGR).
    Use it only to reproduce those 0.x figures; it needs ``convert_to="rgb"`` and an
    ``HxWx3`` image. PSNR is unaffected (its MSE runs over every element either way).

    Args and raises as for ``psnr``; additionally the cropped image must be at least
    11x11 so the window has a valid position, and ``channels`` must be ``"mean"`` or
    ``"blue"`` (``"blue"`` only with an RGB image scored as RGB).
    """
    if channels not in ("mean", "blue"):
        raise ValueError(f"channels must be 'mean' or 'blue', got {channels!r}")
    pred, gt = _prepare(pred, gt, crop_border, convert_to)
    h, w, c = pred.shape
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(f"ssim needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, got {h}x{w}")
    if channels == "blue" and (convert_to != "rgb" or c != 3):
        raise ValueError(f"channels='blue' needs an HxWx3 RGB image scored as 'rgb', got {c} channel(s) as {convert_to!r}")
    window = _gaussian_window()
    scored = [2] if channels == "blue" else range(c)
    return float(np.mean([_ssim_channel(pred[..., i], gt[..., i], window) for i in scored]))


def tensor_to_image(t: torch.Tensor, round: bool = False) -> np.ndarray:
    """``[C, H, W]`` RGB tensor in [0, 1] -> ``HxWxC`` float64 array on 0..255.

    Values are clamped to [0, 1] before scaling. ``round=False`` is MMEditing 1.x (scores
    the float output), ``round=True`` is 0.x (rounds to 8-bit levels, half to even).
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 3:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"tensor_to_image expects a [C, H, W] tensor, got {shape}")
    img = t.detach().to("cpu", torch.float64).clamp(0, 1).permute(1, 2, 0).numpy() * 255.0
    return np.round(img) if round else img

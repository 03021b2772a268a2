"""NIQE, the no-reference quality score of Mittal et al., as MMEditing 0.x reports it.

"Making a 'Completely Blind' Image Quality Analyzer" (IEEE SPL 2013): fit a multivariate
Gaussian to natural-scene statistics of 96x96 blocks at two scales and report its distance
to the Gaussian of pristine images (``data/niqe_pris_params.npz``, MATLAB's
``modelparameters.mat``). Lower is better. The zoo's NIQE figures come from MMEditing
0.16's ``niqe`` (``mmedit/core/evaluation/metrics.py``), which this module reproduces
(spec/model_zoo.md, "Metrics"):

* the image is reduced to its BT.601 luma Y (or ``cv2`` gray), computed the way mmedit
  computes it (float32 ``mmcv.bgr2ycbcr``), cropped by ``crop_border``, then **rounded**
  to integer levels (numpy's half to even), as MATLAB's uint8 ``rgb2ycbcr`` output is;
* the image is cut to whole 96x96 blocks from the top-left; blocks are visited column by
  column (MATLAB's ``blkproc`` order);
* scale 1 runs in **float32**, as mmedit does: the local mean and deviation (7x7 Gaussian
  window from the params file, replicate border) and the normalised coefficients. This is
  not cosmetic: in flat areas the coefficients are rounding noise (or exactly zero, which
  makes a block's features NaN), and double precision moves such scores by percents
  (2.7 % on the test suite's astronaut crop, 25 % with one flat block);
* scale 2 is mmedit's ``MATLABLikeResize`` by 0.5 of ``Y / 255``: MATLAB's antialiased
  bicubic taps, summed in float32 in mmedit's order (``half_scale``), then float64. The
  float64 ``degradations.matlab_resize.imresize`` gives the same image to 2e-7 but not
  bit for bit, which moves scores of images with flat areas by up to ~7e-5 relative;
* per block: an AGGD fit of the coefficients and of their products with the four
  neighbours (18 features), the shape found on the grid 0.2:0.001:10 by nearest ratio;
* pooling: NaN-ignoring mean, covariance over blocks with no NaN feature;
  ``sqrt(d^T pinv((cov_pris + cov) / 2) d)`` with ``d = mu_pris - mu``.

Where mmedit has no sensible answer this module differs, and says so: with a single
complete block mmedit's ``np.cov`` call returns the scalar variance of its 36 features
(numpy treats one row as one variable) and adds it to every covariance entry; here the
covariance of one block is zero (MATLAB's ``nancov``). An image with no complete block
(flat, or structure along one axis only) makes mmedit raise ``LinAlgError``; here it
raises ``ValueError``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

__all__ = ["BLOCK", "PristineModel", "pristine_model", "niqe", "luma", "mscn", "aggd_fit", "block_features",
           "half_scale", "image_features", "mvg_distance"]

BLOCK = 96
_PARAMS_PATH = Path(__file__).with_name("data") / "niqe_pris_params.npz"
# MATLAB's 0.2:0.001:10 (9801 shapes) and the ratio E[|x|]^2 / E[x^2] of a GGD of each shape.
# (Computed from 1 / alpha, as mmedit does: 2 * (1 / a) and 2 / a differ in the last bit.)
_ALPHAS = np.arange(0.2, 10.001, 0.001)
_INV = 1 / _ALPHAS
_RATIOS = gamma(2 * _INV) ** 2 / (gamma(_INV) * gamma(3 * _INV))
# Neighbour shifts (rows, cols): right, down, down-right, down-left.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_SUM_CHUNK = 8192
# Half-scale taps of MATLAB's antialiased bicubic: 0.5 * cubic(0.5 * d) for d = -3.5..3.5,
# all exact binary fractions; output pixel i reads input pixels 2i-3 .. 2i+4 (mirrored).
_HALF_TAPS = np.array([-3, -9, 29, 111, 111, 29, -9, -3], dtype=np.float32) / np.float32(256)


class PristineModel(NamedTuple):
    """The natural-image Gaussian: ``mu`` (36,), ``cov`` (36, 36), the 7x7 ``window``."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray


@functools.cache
def pristine_model() -> PristineModel:
    """The pristine model shipped with the package (read once)."""
    with np.load(_PARAMS_PATH) as p:
        return PristineModel(p["mu_pris_param"].reshape(-1), p["cov_pris_param"], p["gaussian_window"])


def luma(img: np.ndarray, convert_to: Literal["y", "gray"] = "y") -> np.ndarray:
    """float32 ``HxW`` Y (BT.601, 16..235) or gray of an RGB image on 0..255, as mmedit has it.

    Arithmetic follows ``mmcv.bgr2ycbcr`` / ``bgr2gray`` on ``float32(img) / 255``, so the
    values round like mmedit's; they differ from the exact ``trainers.metrics.to_y`` by up
    to 2e-5, which moves the rounded level of 92 of the 2^24 colours.
    """
    bgr = np.asarray(img, dtype=np.float32)[..., ::-1] / np.float32(255)
    if convert_to == "y":
        y = (np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0) / 255.0
        return y.astype(np.float32) * np.float32(255)
    return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY) * np.float32(255)


def mscn(img: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients ``(img - mu) / (sigma + 1)`` and sigma.

    Local statistics use ``window`` with replicated borders; arithmetic stays in the
    image's dtype (float32 at scale 1, float64 at scale 2, as in mmedit).
    """
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1), sigma


def _mean(x: np.ndarray) -> float:
    """Mean as numpy 1.x's ``np.mean`` (mmedit's) computes it, in ``x``'s dtype.

    numpy 1.x sums a long array in chunks of 8192 (its buffer size), pairwise within a
    chunk and in order across chunks, then rounds ``sum / n`` once to the dtype; numpy 2
    sums pairwise throughout. The last bit matters where a shape lands between grid
    points, so the chunks are summed here explicitly.
    """
    if x.size == 0:
        return float("nan")
    total = x.dtype.type(0)
    for start in range(0, x.size, _SUM_CHUNK):
        total = total + np.add.reduce(x[start : start + _SUM_CHUNK])
    return float(x.dtype.type(float(total) / x.size))


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit: ``(alpha, beta_left, beta_right)``.

    Moment matching (Lasmar et al.): the one-sided deviations give the asymmetry, the ratio
    ``E[|x|]^2 / E[x^2]`` corrected for it picks the shape ``alpha`` nearest on the grid
    0.2:0.001:10; the scales follow from the deviations. Moments are taken in ``x``'s
    dtype, the rest in float64. A side with no samples gives NaN scales and ``alpha`` 0.2
    (the first grid point, as MATLAB's ``min`` and numpy's ``argmin`` pick on NaN).
    """
    x = np.ravel(x)
    f = x.dtype.type
    left = np.sqrt(f(_mean(x[x < 0] ** 2)))
    right = np.sqrt(f(_mean(x[x > 0] ** 2)))
    gamma_hat = float(left / right) if right else float("nan")
    mean_sq = _mean(x * x)
    r_hat = _mean(np.abs(x)) ** 2 / mean_sq if mean_sq else float("nan")
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = float(_ALPHAS[np.argmin((_RATIOS - r_norm) ** 2)])
    scale = float(np.sqrt(gamma(1 / alpha) / gamma(3 / alpha)))
    return alpha, float(left) * scale, float(right) * scale


def block_features(block: np.ndarray) -> np.ndarray:
    """The 18 NIQE features of one block of coefficients.

    ``[alpha, mean scale]`` of the coefficients, then for each neighbour product
    (right, down, down-right, down-left, circular) ``[alpha, mean, beta_l, beta_r]``.
    """
    alpha, b_l, b_r = aggd_fit(block)
    feats = [alpha, (b_l + b_r) / 2]
    for shift in _SHIFTS:
        alpha, b_l, b_r = aggd_fit(block * np.roll(block, shift, axis=(0, 1)))
        feats += [alpha, (b_r - b_l) * (gamma(2 / alpha) / gamma(1 / alpha)), b_l, b_r]
    return np.array(feats, dtype=np.float64)


def half_scale(img: np.ndarray) -> np.ndarray:
    """mmedit's ``MATLABLikeResize(scale=0.5)`` of a float image: rows, then columns.

    MATLAB bicubic with antialiasing, symmetric borders, output ``ceil(n / 2)``; each pass
    multiplies and sums the eight taps in float32, in tap order. Returns float64.
    """
    out = np.asarray(img, dtype=np.float32)
    for axis in (0, 1):
        n = out.shape[axis]
        m = -(-n // 2)
        mirror = np.concatenate([np.arange(n), np.arange(n - 1, -1, -1)])
        taps = mirror[np.mod(2 * np.arange(m)[:, None] - 3 + np.arange(8), 2 * n)]
        acc = np.take(out, taps[:, 0], axis=axis) * _HALF_TAPS[0]
        for t in range(1, 8):
            acc = acc + np.take(out, taps[:, t], axis=axis) * _HALF_TAPS[t]
        out = acc
    return out.astype(np.float64)


def image_features(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``[blocks, 36]`` features of a rounded float32 Y image: 18 at scale 1, 18 at scale 2.

    The image is cut to whole ``BLOCK`` x ``BLOCK`` blocks (top-left); blocks are listed
    column by column. Scale 2 uses ``BLOCK / 2`` blocks of the half-scale image.
    """
    rows, cols = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    img = img[: rows * BLOCK, : cols * BLOCK]
    per_scale = []
    for scale in (1, 2):
        coeffs, _ = mscn(img, window)
        b = BLOCK // scale
        per_scale.append([block_features(coeffs[r * b : (r + 1) * b, c * b : (c + 1) * b])
                          for c in range(cols) for r in range(rows)])
        img = half_scale(img / np.float32(255)) * 255.0
    return np.concatenate([np.array(f) for f in per_scale], axis=1)


def mvg_distance(features: np.ndarray, model: PristineModel) -> float:
    """NIQE: distance between the blocks' Gaussian and the pristine one (paper, Eq. 10).

    Raises:
        ValueError: if no block has all 36 features finite.
    """
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        raise ValueError("NIQE is undefined for this image: no 96x96 block has finite features (flat image?)")
    mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(model.cov)
    d = model.mu - mu
    return float(np.sqrt(d @ np.linalg.pinv((model.cov + cov) / 2) @ d))


def niqe(img: np.ndarray, crop_border: int = 0, convert_to: Literal["y", "gray"] = "y") -> float:
    """NIQE of one image (lower is better), equal to MMEditing 0.16.1's ``niqe``.

    Args:
        img: ``HxWx3`` RGB or ``HxW`` gray image on 0..255 (uint8 or float).
        crop_border: Pixels removed from each edge first (the zoo uses the SR scale).
        convert_to: For RGB: ``"y"`` BT.601 luma (the zoo's), or ``"gray"`` (cv2's
            0.299/0.587/0.114 gray). Ignored for a gray image.

    Raises:
        ValueError: on a bad shape or argument, an image with less than one 96x96 block
            after cropping, or one with no block of finite features.
    """
    img = np.asarray(img)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"niqe expects an HxWx3 RGB or HxW gray image, got shape {img.shape}")
    if convert_to not in ("y", "gray"):
        raise ValueError(f"convert_to must be 'y' or 'gray', got {convert_to!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative int, got {crop_border!r}")
    y = luma(img, convert_to) if img.ndim == 3 else img.astype(np.float32)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    if min(y.shape) < BLOCK:
        raise ValueError(f"niqe needs at least {BLOCK}x{BLOCK} pixels after cropping, got {y.shape[0]}x{y.shape[1]}")
    model = pristine_model()
    return mvg_distance(image_features(np.round(y), model.window), model)

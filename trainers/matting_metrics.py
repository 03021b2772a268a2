"""Alpha-matting metrics SAD, MSE, GRAD and CONN as MMEditing 0.16.1 computes them.

spec/model_zoo.md ("Metrics", matting line). The Comp-1k tables of DIM, IndexNet and GCA
score one test image at a time and average the per-image scores over the dataset.

Conventions shared by every function here (those of the reference evaluation):

* ``gt_alpha`` is the ground-truth matte as read from its PNG in grayscale: ``HxW`` uint8,
  0..255 (not a float copy: a float32 ``k/255`` from the batch converts back exactly with
  ``np.round(alpha * 255).astype(np.uint8)``).
* ``trimap`` is the original ``HxW`` trimap with values in {0, 128, 255} only (0 background,
  128 unknown, 255 foreground), any integer dtype; never the resized or one-hot network input.
* ``pred_alpha`` is the *processed* prediction: ``HxW`` uint8 from :func:`prepare_pred_alpha`,
  so it is 0 wherever the trimap is 0 and 255 wherever it is 255.
* Arguments are ``(pred_alpha, gt_alpha, trimap)``. MMEditing's own functions take
  ``(alpha, trimap, pred_alpha)``; mind the order when porting a call.

The arithmetic follows the reference step by step, precision included: SAD and MSE in
float64; GRAD's gradient magnitudes and CONN's whole computation in float32, summed by numpy
in float32 over the full image, then divided by 1000 in float64. (That last step is numpy 1.x's
scalar promotion, under which the zoo figures were made: ``float32 scalar / 1000`` gave a
float64. Running the reference's code under numpy 2 divides in float32 and moves GRAD and CONN
by up to half a float32 ulp; this module matches the numpy 1.x figures bit for bit.)

GRAD and CONN use OpenCV, as the reference does (``cv2.normalize``,
``cv2.filter2D``, ``cv2.connectedComponentsWithStats``), so borders, min-max scaling and the
labelling order of equal-size components are the reference's by construction.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "CONN_LEVELS",
    "connectivity_error",
    "gaussian_gradient_kernel",
    "gaussian_gradient_magnitude",
    "gradient_error",
    "matting_scores",
    "mse",
    "prepare_pred_alpha",
    "sad",
]

_UNKNOWN = 128
_TRIMAP_VALUES = (0, _UNKNOWN, 255)
_GRAD_SIGMA = 1.4
_CONN_STEP = 0.1
_CONN_MIN_DIFF = 0.15


def _conn_thresholds(step: float) -> np.ndarray:
    """CONN's thresholds 0, step, ..., 1 (float64, built like the reference: arange to 1 + step)."""
    return np.arange(0, 1 + step, step)


def _uint8_levels(thresholds: np.ndarray) -> np.ndarray:
    """Smallest uint8 value ``k`` with ``float32(k / 255) >= t`` for each threshold ``t``.

    Thresholding the uint8 matte at these levels selects exactly the pixels the float
    comparison selects (the same in float32 and float64 for every ``k/255``; the tests check
    the table), and avoids float work per threshold.
    """
    scaled = (np.arange(256, dtype=np.float32) / np.float32(255)).astype(np.float64)
    return np.searchsorted(scaled, thresholds, side="left")


#: uint8 levels of CONN's thresholds 0.1 .. 1.0: pixel ``k`` passes threshold ``i`` iff ``k >= CONN_LEVELS[i]``.
CONN_LEVELS = _uint8_levels(_conn_thresholds(_CONN_STEP)[1:])


def _check_trimap(trimap: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    trimap = np.asarray(trimap)
    if trimap.shape != shape or trimap.ndim != 2:
        raise ValueError(f"trimap must be HxW and match the alpha's shape {shape}, got {trimap.shape}")
    if not np.issubdtype(trimap.dtype, np.integer):
        raise ValueError(f"trimap must hold integers 0/128/255, got dtype {trimap.dtype}")
    bad = ~np.isin(trimap, _TRIMAP_VALUES)
    if bad.any():
        raise ValueError(f"trimap values must be 0, 128 or 255; found {np.unique(trimap[bad])[:5].tolist()}")
    return trimap


def _check_u8(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an HxW matte, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 on 0..255, got dtype {arr.dtype}")
    return arr


def _check_inputs(pred_alpha, gt_alpha, trimap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a metric's inputs; the prediction must already be forced by the trimap."""
    pred_alpha = _check_u8("pred_alpha", pred_alpha)
    gt_alpha = _check_u8("gt_alpha", gt_alpha)
    if pred_alpha.shape != gt_alpha.shape:
        raise ValueError(f"pred_alpha and gt_alpha shapes differ: {pred_alpha.shape} vs {gt_alpha.shape}")
    trimap = _check_trimap(trimap, gt_alpha.shape)
    if (pred_alpha[trimap == 0] != 0).any() or (pred_alpha[trimap == 255] != 255).any():
        raise ValueError("pred_alpha is not forced by the trimap (0 where 0, 255 where 255); use prepare_pred_alpha")
    return pred_alpha, gt_alpha, trimap


def prepare_pred_alpha(pred01: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """The mattors' test-time processing of a predicted alpha, before any metric.

    In order, as MMEditing 0.16.1's ``restore_shape`` then ``evaluate`` do it:
    1. take the network output as float32 (a copy; what the model's tensor gives);
    2. clip to [0, 1] (some mattors have no output activation);
    3. set 0 where the trimap is 0 and 1 where it is 255;
    4. multiply by 255, round half to even (``np.round``, in float32), cast to uint8.

    Shape restoration (cropping the test-time padding, or resizing back for IndexNet) comes
    before this and is the task's job: ``pred01`` must already have the trimap's size.

    Args:
        pred01: ``HxW`` predicted alpha on the [0, 1] scale, any float dtype; values outside
            [0, 1] are clipped. NaN or inf raises (the reference would cast them to garbage).
        trimap: the original ``HxW`` trimap, values in {0, 128, 255}.

    Returns:
        ``HxW`` uint8 matte on 0..255, ready for :func:`sad` and the others.
    """
    pred = np.array(pred01, dtype=np.float32)
    if pred.ndim != 2:
        raise ValueError(f"pred01 must be an HxW alpha, got shape {pred.shape}")
    trimap = _check_trimap(trimap, pred.shape)
    if not np.isfinite(pred).all():
        raise ValueError("pred01 holds NaN or inf")
    pred = np.clip(pred, 0, 1)
    pred[trimap == 0] = 0
    pred[trimap == 255] = 1
    return np.round(pred * 255).astype(np.uint8)


def sad(pred_alpha: np.ndarray, gt_alpha: np.ndarray, trimap: np.ndarray) -> float:
    """Sum of absolute differences over the whole image (not only the unknown region), on the
    [0, 1] scale, divided by 1000."""
    pred_alpha, gt_alpha, trimap = _check_inputs(pred_alpha, gt_alpha, trimap)
    diff = pred_alpha.astype(np.float64) / 255 - gt_alpha.astype(np.float64) / 255
    return float(np.abs(diff).sum() / 1000)


def mse(pred_alpha: np.ndarray, gt_alpha: np.ndarray, trimap: np.ndarray) -> float:
    """Squared differences summed over the whole image on the [0, 1] scale, divided by the number
    of unknown (128) trimap pixels.

    With no unknown pixel the reference returns 0 rather than failing; so does this function,
    so that dataset means match the zoo tables. (Since the prediction is forced to the trimap
    everywhere else, such a sample only differs where the ground truth itself disagrees with
    its trimap.)
    """
    pred_alpha, gt_alpha, trimap = _check_inputs(pred_alpha, gt_alpha, trimap)
    unknown = int((trimap == _UNKNOWN).sum())
    if unknown == 0:
        return 0.0
    diff = pred_alpha.astype(np.float64) / 255 - gt_alpha.astype(np.float64) / 255
    return float((diff**2).sum() / unknown)


def gaussian_gradient_kernel(sigma: float = _GRAD_SIGMA, epsilon: float = 1e-2) -> np.ndarray:
    """The x-derivative-of-Gaussian correlation kernel of GRAD (float64, square, odd size).

    ``K[i, j] = g(i - h) * g'(j - h)``, ``g`` the normalised 1-D Gaussian of ``sigma``, scaled to
    unit L2 norm. The half size ``h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma epsilon)))`` is the
    first integer distance at which the Gaussian density ``g`` is at most ``epsilon`` (the rule of
    MATLAB's ``gaussgradient``); 4 for sigma 1.4, a 9x9 kernel. The y kernel is the transpose.
    Built here rather than taken from scipy.ndimage, whose derivative kernels are normalised by
    the Gaussian's sum instead (same shape, other scale; the tests compare the two).
    """
    half = np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon)))
    x = np.arange(int(2 * half + 1)) - half
    gauss = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dgauss = -x * gauss / sigma**2
    kernel = np.outer(gauss, dgauss)
    return kernel / np.sqrt((kernel**2).sum())


def gaussian_gradient_magnitude(img: np.ndarray, sigma: float = _GRAD_SIGMA) -> np.ndarray:
    """``sqrt(gx^2 + gy^2)`` of a float64 image, ``gx``/``gy`` the correlations with
    :func:`gaussian_gradient_kernel` and its transpose, borders replicated (float64)."""
    kx = gaussian_gradient_kernel(sigma)
    gx = cv2.filter2D(img, -1, kx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, -1, np.ascontiguousarray(kx.T), borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx**2 + gy**2)


def _minmax(alpha_u8: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] in float64 with ``cv2.normalize`` (the reference's rounding; a
    constant image maps to 0)."""
    out = np.zeros(alpha_u8.shape, np.float64)
    cv2.normalize(alpha_u8.astype(np.float64), out, 1.0, 0.0, cv2.NORM_MINMAX)
    return out


def gradient_error(
    pred_alpha: np.ndarray, gt_alpha: np.ndarray, trimap: np.ndarray, sigma: float = _GRAD_SIGMA
) -> float:
    """Gradient error: each matte min-max scaled on its own, Gaussian-gradient magnitudes
    (float32) compared, squared differences summed over unknown pixels, divided by 1000."""
    pred_alpha, gt_alpha, trimap = _check_inputs(pred_alpha, gt_alpha, trimap)
    gt_grad = gaussian_gradient_magnitude(_minmax(gt_alpha), sigma).astype(np.float32)
    pred_grad = gaussian_gradient_magnitude(_minmax(pred_alpha), sigma).astype(np.float32)
    loss = ((gt_grad - pred_grad) ** 2 * (trimap == _UNKNOWN)).sum()
    return float(loss) / 1000  # float32 sum, float64 division: see the module docstring


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 4-connected component of ``mask`` (the first in OpenCV's
    label order on ties; all False when ``mask`` is empty)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    if sizes.size == 0:
        return np.zeros(mask.shape, bool)
    return labels == int(np.argmax(sizes)) + 1


def connectivity_error(pred_alpha: np.ndarray, gt_alpha: np.ndarray, trimap: np.ndarray) -> float:
    """Connectivity error with thresholds 0.1 .. 1.0 in steps of 0.1, in float32.

    At each threshold ``t`` the largest 4-connected component of ``(gt >= t) & (pred >= t)`` is
    found; a pixel's level ``l`` is the threshold just below the first one at which it is outside
    that component (1 if never). With ``d = alpha - l`` and ``phi = 1 - d * [d >= 0.15]`` for each
    matte, the error is ``sum |phi_gt - phi_pred|`` over unknown pixels, divided by 1000.
    """
    pred_alpha, gt_alpha, trimap = _check_inputs(pred_alpha, gt_alpha, trimap)
    thresholds = _conn_thresholds(_CONN_STEP)
    level = np.full(gt_alpha.shape, -1.0, np.float32)
    for i, k in enumerate(CONN_LEVELS, start=1):
        component = _largest_component((gt_alpha >= k) & (pred_alpha >= k))
        level[(level == -1) & ~component] = thresholds[i - 1]
    level[level == -1] = 1

    def phi(alpha_u8: np.ndarray) -> np.ndarray:
        diff = alpha_u8.astype(np.float32) / 255 - level
        return 1 - diff * (diff >= _CONN_MIN_DIFF)

    err = (np.abs(phi(gt_alpha) - phi(pred_alpha)) * (trimap == _UNKNOWN)).sum()
    return float(err) / 1000  # float32 sum, float64 division: see the module docstring


def matting_scores(pred01: np.ndarray, gt_alpha_u8: np.ndarray, trimap_u8: np.ndarray) -> dict[str, float]:
    """One test image's ``sad``, ``mse``, ``grad`` and ``conn`` as the Comp-1k tables report them.

    Args:
        pred01: ``HxW`` network output on [0, 1] (unclipped is fine), already at the original
            image size (padding removed / resized back).
        gt_alpha_u8: ``HxW`` uint8 ground-truth matte as read from its PNG.
        trimap_u8: ``HxW`` original trimap, values in {0, 128, 255}.
    """
    pred = prepare_pred_alpha(pred01, trimap_u8)
    args = (pred, gt_alpha_u8, trimap_u8)
    return {
        "sad": sad(*args),
        "mse": mse(*args),
        "grad": gradient_error(*args),
        "conn": connectivity_error(*args),
    }

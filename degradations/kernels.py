"""Blur kernels of the Real-ESRGAN family and the sampler of their parameters.

Kernels (Wang et al. 2021, "Real-ESRGAN", Sec. 3.2; spec/degradations.md):

* bivariate Gaussian ``exp(-q / 2)``, where ``q = [x y] S^-1 [x y]^T`` and
  ``S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``;
* generalized Gaussian ``exp(-q^beta / 2)``;
* plateau ``1 / (1 + q^beta)``;
* circular low-pass (2-D sinc / jinc) ``omega J1(omega r) / (2 pi r)``, centre
  ``omega^2 / (4 pi)``.

``x`` runs along columns and ``y`` along rows, both centred on the kernel's middle pixel
(odd sizes). Kernels are computed in float64, normalised to sum 1 and returned as
float32 (the reference converts them to ``torch.FloatTensor``). Isotropic variants are
the anisotropic formulas with ``sigma_y = sigma_x`` and ``theta = 0``.

``sample_kernel_params`` is the parameter sampler, kept apart from the kernel builders so
a batched torch path can share it: it draws what the reference dataset draws
(``random.choice`` of an odd size 7..21, a sinc coin, the kernel type by its
probability, sigmas, rotation and beta) from a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "KERNEL_KINDS",
    "KernelParams",
    "circular_lowpass",
    "filter2d",
    "gaussian_aniso",
    "generalized_gaussian",
    "j1",
    "make_kernel",
    "pad_kernel",
    "plateau",
    "sample_kernel_params",
    "trim_kernel",
]

#: Kernel types of ``random_mixed_kernels`` plus ``sinc`` (circular low-pass).
KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int, got {size!r}")
    return int(size)


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


@lru_cache(maxsize=32)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Column (x) and row (y) offsets from the centre, ``[size, size]`` float64 each (read-only)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``q = [x y] S^-1 [x y]^T`` on the kernel grid."""
    sigma_x = _check_positive("sigma_x", sigma_x)
    sigma_y = _check_positive("sigma_y", sigma_y)
    theta = float(theta)
    if not math.isfinite(theta):
        raise ValueError(f"theta must be finite, got {theta!r}")
    xx, yy = _grid(_check_size(size))
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x * sigma_x, sigma_y * sigma_y]) @ rot.T
    inv = np.linalg.inv(cov)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def _normalised(k: np.ndarray) -> np.ndarray:
    return (k / np.sum(k)).astype(np.float32)


def gaussian_aniso(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Bivariate (rotated, anisotropic) Gaussian kernel ``exp(-q / 2)``, sum 1, float32 ``[size, size]``."""
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """Generalized Gaussian ``exp(-q^beta / 2)`` (beta 1 = Gaussian), sum 1, float32."""
    beta = _check_positive("beta", beta)
    return _normalised(np.exp(-0.5 * np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta)))


def plateau(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (1 + q^beta)``, sum 1, float32."""
    beta = _check_positive("beta", beta)
    return _normalised(1.0 / (np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta) + 1.0))


_J1_NODES = 128
_J1_TAU = 2 * np.pi * np.arange(_J1_NODES) / _J1_NODES
_J1_SIN = np.sin(_J1_TAU)
_J1_MAX_X = 60.0


def j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1 (float64), for ``|x| <= 60``.

    Bessel's integral ``J1(x) = 1/(2 pi) * int_0^{2 pi} cos(t - x sin t) dt`` by the
    trapezoidal rule over the full period. The integrand is periodic and entire, so the
    error is ``sum_k |J_{1 +- kN}(x)|``; with N = 128 nodes and ``|x| <= 60`` that is
    below float64 resolution (tests compare with ``scipy.special.j1``). Kernels need
    ``x <= pi * 10 * sqrt(2) ~ 44``. Written here so ``degradations`` needs no scipy.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.all(np.abs(x) <= _J1_MAX_X):
        raise ValueError(f"j1 is accurate for |x| <= {_J1_MAX_X}, got max |x| {np.abs(x).max()}")
    flat = x.reshape(-1, 1)
    vals = np.cos(_J1_TAU[None, :] - flat * _J1_SIN[None, :]).mean(axis=1)
    return vals.reshape(x.shape)


@lru_cache(maxsize=32)
def _radii(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct distances from the centre (the first is 0) and the index map back to the grid."""
    xx, yy = _grid(size)
    d2 = (xx * xx + yy * yy).round().astype(np.int64)  # exact integers on an integer grid
    uniq, inverse = np.unique(d2, return_inverse=True)
    r = np.sqrt(uniq.astype(np.float64))
    r.setflags(write=False)
    inverse = inverse.reshape(size, size)
    inverse.setflags(write=False)
    return r, inverse


def circular_lowpass(size: int, omega: float) -> np.ndarray:
    """Circular low-pass (sinc) kernel with cutoff ``omega`` (radians/pixel), sum 1, float32.

    ``k(r) = omega * J1(omega r) / (2 pi r)``, with its limit ``omega^2 / (4 pi)`` at
    ``r = 0``; the size-limited kernel is then normalised (like the reference's
    ``circular_lowpass_kernel``), so it has negative lobes and ringing.
    """
    size = _check_size(size)
    omega = _check_positive("omega", omega)
    r, inverse = _radii(size)  # J1 once per distinct radius (about size^2 / 8 of them)
    vals = np.empty_like(r)
    vals[0] = omega * omega / (4 * np.pi)  # r = 0
    vals[1:] = omega * j1(omega * r[1:]) / (2 * np.pi * r[1:])
    return _normalised(vals[inverse])


def pad_kernel(k: np.ndarray, size: int = 21) -> np.ndarray:
    """Zero-pad a square odd kernel to ``size x size`` (centred); a larger kernel is an error."""
    k = np.asarray(k)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side, got shape {k.shape}")
    size = _check_size(size)
    if k.shape[0] > size:
        raise ValueError(f"kernel of size {k.shape[0]} does not fit in {size}")
    p = (size - k.shape[0]) // 2
    return np.pad(k, ((p, p), (p, p)))


@dataclass(frozen=True)
class KernelParams:
    """Everything that defines one kernel; ``make_kernel`` turns it into an array.

    Attributes:
        kind: One of ``KERNEL_KINDS``.
        size: Odd side length.
        sigma_x, sigma_y, theta: Gaussian-family shape (iso kinds: ``sigma_y == sigma_x``,
            ``theta == 0``); unused for ``sinc``.
        beta: Shape exponent of ``generalized_*`` and ``plateau_*``; unused otherwise.
        omega: Cutoff of ``sinc``; unused otherwise.
    """

    kind: str
    size: int
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    theta: float = 0.0
    beta: float = 1.0
    omega: float = 0.0


def make_kernel(params: KernelParams) -> np.ndarray:
    """The ``[size, size]`` float32 kernel (sum 1) described by ``params``."""
    kind = params.kind
    if kind == "sinc":
        return circular_lowpass(params.size, params.omega)
    shape = (params.size, params.sigma_x, params.sigma_y, params.theta)
    if kind in ("iso", "aniso"):
        return gaussian_aniso(*shape)
    if kind in ("generalized_iso", "generalized_aniso"):
        return generalized_gaussian(*shape, params.beta)
    if kind in ("plateau_iso", "plateau_aniso"):
        return plateau(*shape, params.beta)
    raise ValueError(f"unknown kernel kind {kind!r}; known: {', '.join(KERNEL_KINDS)}")


def _split_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """The reference's beta draw: a fair coin, then U(lo, 1) or U(1, hi).

    With betap = [1, 2] the first branch is U(1, 1), so beta is exactly 1 half the time
    (a quirk of the reference, kept).
    """
    lo, hi = beta_range
    if rng.random() < 0.5:
        return float(rng.uniform(lo, 1.0))
    return float(rng.uniform(1.0, hi))


def sample_kernel_params(
    rng: np.random.Generator,
    *,
    kinds: Sequence[str] = KERNEL_KINDS[:6],
    probs: Sequence[float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sigma_range: Sequence[float] = (0.2, 3.0),
    rotation_range: Sequence[float] = (-math.pi, math.pi),
    betag_range: Sequence[float] = (0.5, 4.0),
    betap_range: Sequence[float] = (1.0, 2.0),
    sinc_prob: float = 0.1,
    sizes: Sequence[int] = tuple(range(7, 22, 2)),
    sinc_omega_small: Sequence[float] = (math.pi / 3, math.pi),
    sinc_omega_large: Sequence[float] = (math.pi / 5, math.pi),
    sinc_large_from: int = 13,
) -> KernelParams:
    """Draw one blur kernel's parameters as Real-ESRGAN's dataset does (kernel1 / kernel2).

    Order of draws: size uniform over ``sizes``; with probability ``sinc_prob`` a sinc
    kernel with ``omega ~ U(sinc_omega_small)`` for sizes below ``sinc_large_from``, else
    ``U(sinc_omega_large)``; otherwise a kind from ``kinds`` with ``probs``,
    ``sigma_x ~ U(sigma_range)``, and for anisotropic kinds ``sigma_y ~ U(sigma_range)``,
    ``theta ~ U(rotation_range)`` (isotropic: ``sigma_y = sigma_x``, ``theta = 0``), and a
    split beta draw (``_split_beta``) for generalized / plateau kinds. No kernel noise
    (the x4plus config uses none).

    Returns:
        A ``KernelParams`` (unpadded size; pad to 21 with ``pad_kernel`` if needed).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(kinds) != len(probs) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"kinds {kinds} and probs {probs.tolist()} must match and sum to 1")
    size = int(sizes[int(rng.integers(len(sizes)))])
    if rng.random() < sinc_prob:
        lo, hi = sinc_omega_small if size < sinc_large_from else sinc_omega_large
        return KernelParams("sinc", size, omega=float(rng.uniform(lo, hi)))
    cdf = np.cumsum(probs) / probs.sum()
    kind = kinds[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(kinds) - 1)]
    if kind not in KERNEL_KINDS[:6]:
        raise ValueError(f"unknown kernel kind {kind!r}")
    sigma_x = float(rng.uniform(*sigma_range))
    if kind.endswith("aniso"):
        sigma_y = float(rng.uniform(*sigma_range))
        theta = float(rng.uniform(*rotation_range))
    else:
        sigma_y, theta = sigma_x, 0.0
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _split_beta(rng, betag_range)
    elif kind.startswith("plateau"):
        beta = _split_beta(rng, betap_range)
    return KernelParams(kind, size, sigma_x=sigma_x, sigma_y=sigma_y, theta=theta, beta=beta)


# Border rows/columns whose total |weight| is below this are dropped before filtering: the
# dropped mass is far below float32 resolution of the result, and the filter gets cheaper
# (a sigma-0.5 Gaussian zero-padded to 21x21 becomes 5x5).
_TRIM_MASS = 1e-9


def trim_kernel(k: np.ndarray) -> np.ndarray:
    """Drop symmetric border rings of ``k`` whose total |weight| is below 1e-9 (no renormalisation)."""
    k = np.asarray(k)
    a = np.abs(k.astype(np.float64))
    n = k.shape[0]
    c = 0
    while n - 2 * (c + 1) >= 1:
        inner = a[c + 1 : n - c - 1, c + 1 : n - c - 1].sum()
        if a[c : n - c, c : n - c].sum() - inner >= _TRIM_MASS:
            break
        c += 1
    return k[c : n - c, c : n - c] if c else k


# Separable-sum costs relative to cv2.filter2D, measured at 400x400x3 float32 on one core
# (ms): filter2D k x k direct ~0.017 k^2 below 130 taps, then OpenCV switches to a DFT at
# ~6 ms whatever k; sepFilter2D ~0.2 + 0.075 k per separable term, plus ~0.15 per add.
_SVD_TAIL = 1e-8


def _direct_cost(k: int) -> float:
    return 0.017 * k * k if k * k < 130 else 6.0


def _separable_terms(kernel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``[(column_kernel, row_kernel), ...]`` summing to ``kernel`` if cheaper than filter2D.

    A truncated SVD: terms are dropped while the dropped singular values add up to at
    most 1e-8 (the result then moves by < 1e-7, below float32 resolution at 1). Isotropic
    Gaussians are rank 1; rotated anisotropic kernels need ~5-15 terms and often stay 2-D.
    """
    k = kernel.shape[0]
    if k < 3:
        return None
    u, sv, vt = np.linalg.svd(kernel.astype(np.float64))
    tail = np.cumsum(sv[::-1])[::-1]  # tail[i] = sum of sv[i:]
    rank = int(np.argmax(np.append(tail, 0.0) <= _SVD_TAIL))
    rank = max(rank, 1)
    if rank * (0.2 + 0.075 * k) + (rank - 1) * 0.15 >= _direct_cost(k):
        return None
    return [((u[:, i] * sv[i]).astype(np.float32), vt[i].astype(np.float32)) for i in range(rank)]


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel with a square odd ``kernel``, reflected borders, same size out.

    What BasicSR's ``filter2D`` does on the GPU (``reflect`` padding by ``k // 2`` then a
    grouped ``conv2d``, i.e. correlation), via ``cv2.filter2D`` with ``BORDER_REFLECT_101``
    (torch's ``reflect``). Zero-padding a kernel to 21x21 does not change the result, so
    the kernel is first trimmed of negligible border rings (``trim_kernel``), and a kernel
    that is (numerically) a short sum of separable ones is applied as such
    (``cv2.sepFilter2D`` per term) when that is cheaper. Results agree with the padded
    torch computation to float32 rounding (~1e-6).

    Args:
        img: ``HxWxC`` float32 image.
        kernel: ``[k, k]`` kernel, k odd.

    Returns:
        float32 image of the same shape.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side, got shape {kernel.shape}")
    kernel = trim_kernel(kernel).astype(np.float32)
    img = img.astype(np.float32, copy=False)
    if kernel.shape == (1, 1):
        return img * kernel[0, 0]
    terms = _separable_terms(kernel)
    if terms is None:
        out = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    else:
        out = None
        for col, row in terms:
            part = cv2.sepFilter2D(img, -1, row, col, borderType=cv2.BORDER_REFLECT_101)
            out = part if out is None else cv2.add(out, part, dst=out)
    return out.reshape(img.shape)

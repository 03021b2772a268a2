"""Additive Gaussian and Poisson noise, as Real-ESRGAN's ``*_noise_pt`` functions define them.

Both ops take an ``HxWxC`` float image in [0, 1] (C = 3 for the gray variants), add noise
drawn from the given generator, and clip to [0, 1] (clip, no rounding: the reference
calls them with ``clip=True, rounds=False``). Arithmetic is float32 except the Poisson
rates. Per-sample parameters (sigma / scale, gray flag) come from the caller's sampler.

Deviation from the reference (batched torch): the reference's gray Gaussian noise map is
one ``H x W`` draw shared by every gray sample of the batch (a quirk); here every sample
draws its own. The colour noise the reference always draws and then discards for gray
samples is not drawn here. Values of the random numbers differ anyway (numpy vs torch
streams); the distributions are the reference's.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["gaussian_noise", "poisson_noise", "poisson_levels", "rgb_to_gray"]

# torchvision.transforms.functional.rgb_to_grayscale (ITU-R 601-2 luma, torchvision's rounding)
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _check_img(img: np.ndarray, gray: bool) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"image must be a non-empty HxWxC array, got {getattr(img, 'shape', type(img))}")
    if gray and img.shape[2] != 3:
        raise ValueError(f"gray noise needs an RGB image, got {img.shape[2]} channels")
    return img.astype(np.float32, copy=False)


def gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """``clip(img + N(0, (sigma / 255)^2), 0, 1)``.

    Args:
        img: ``HxWxC`` float image in [0, 1].
        sigma: Standard deviation on the 0-255 scale.
        gray: One noise map shared by all channels (luminance-only noise) instead of one
            per channel.
        rng: The sample's generator.

    Returns:
        float32 image, same shape.
    """
    img = _check_img(img, gray)
    h, w, c = img.shape
    noise = rng.standard_normal((h, w, 1 if gray else c), dtype=np.float32)
    noise *= np.float32(sigma / 255.0)
    out = img + noise
    return np.clip(out, 0.0, 1.0, out=out)


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """``HxWx1`` luma with torchvision's weights (0.2989, 0.587, 0.114), float32."""
    r, g, b = (np.float32(w) for w in _GRAY_WEIGHTS)
    return (r * img[..., 0] + g * img[..., 1] + b * img[..., 2])[..., None]


def poisson_levels(levels: np.ndarray) -> int:
    """``2 ** ceil(log2(#distinct values))`` of an integer 0..255 array (the reference's ``vals``)."""
    n = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
    return int(2 ** math.ceil(math.log2(n)))


_CDF_TAIL = 1e-17


_GUIDE = 512  # guide entries per level; > every table length used (lam <= 256), so ~1 step


@lru_cache(maxsize=16)
def _poisson_tables(vals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inversion tables of Poisson(lam_k), lam_k = float32(k / 255) * vals, k = 0..255.

    Returns ``(cdf, value, guide)``: every level's CDF concatenated into ``cdf`` (the last
    entry of each forced to 1; the cut tail is below 1e-17), ``value[i]`` the count that
    entry ``i`` stands for, and ``guide[k * 512 + m]`` the first entry of level ``k`` whose
    CDF exceeds ``m / 512`` (Chen and Asau's guide table).
    """
    cdfs, values, guides, offset = [], [], [], 0
    for k in range(256):
        lam = float(np.float32(k) / np.float32(255.0)) * vals
        if lam == 0.0:
            cdf = np.ones(1)
        else:
            n = int(lam + 12.0 * math.sqrt(lam) + 40.0)
            j = np.arange(n, dtype=np.float64)
            log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n, dtype=np.float64)))])
            cdf = np.cumsum(np.exp(j * math.log(lam) - lam - log_fact))
            cut = int(np.searchsorted(cdf, 1.0 - _CDF_TAIL))  # first entry with 1 - cdf <= tail
            cdf = cdf[: min(cut + 1, n)]
            cdf[-1] = 1.0
        guides.append(offset + np.searchsorted(cdf, np.arange(_GUIDE) / _GUIDE, side="right"))
        values.append(np.arange(len(cdf), dtype=np.float32))
        cdfs.append(cdf)
        offset += len(cdf)
    guide = np.concatenate(guides).astype(np.int32)
    return np.concatenate(cdfs), np.concatenate(values), guide


def _poisson_counts(levels: np.ndarray, vals: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(float32(level / 255) * vals) draws for a uint8 ``levels`` array, as float32.

    Inversion with a guide table (Chen and Asau 1974): one float64 uniform per pixel, a
    table lookup and on average about one CDF comparison. The distribution is exact up to
    the float64 rounding of the tabulated CDFs (< 1e-13); it is several times faster than
    ``Generator.poisson`` because 8-bit levels give at most 256 distinct rates.
    """
    cdf, value, guide = _poisson_tables(vals)
    u = rng.random(levels.size)
    pos = levels.ravel().astype(np.int32)
    pos *= _GUIDE
    pos += (u * _GUIDE).astype(np.int32)
    j = guide[pos]
    active = np.flatnonzero(cdf[j] <= u)
    while active.size:
        j[active] += 1
        active = active[cdf[j[active]] <= u[active]]
    return value[j].reshape(levels.shape)


def poisson_noise(img: np.ndarray, scale: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN's Poisson (shot) noise: ``clip(img + scale * noise, 0, 1)``.

    As ``generate_poisson_noise_pt``: the image (or, for ``gray``, its luma) is first
    quantised, ``x_q = clip(round(x * 255), 0, 255) / 255``; ``vals`` is
    ``2 ** ceil(log2(n))`` with ``n`` the number of distinct 8-bit levels in ``x_q``
    (over all channels of the sample); ``noise = Poisson(x_q * vals) / vals - x_q``. The
    noise is added to the *unquantised* image. Gray noise is one luma map shared by the
    three channels. ``n`` is counted with a histogram of the levels instead of
    ``torch.unique``: the same number, as ``x_q`` is one-to-one with the level.

    Args:
        img: ``HxWxC`` float image in [0, 1] (RGB when ``gray``).
        scale: Noise multiplier.
        gray: Luma noise shared by all channels instead of per-channel noise.
        rng: The sample's generator.

    Returns:
        float32 image, same shape.
    """
    img = _check_img(img, gray)
    src = rgb_to_gray(img) if gray else img
    levels = np.clip(np.round(src * np.float32(255.0)), 0, 255).astype(np.uint8)
    vals = poisson_levels(levels)
    # rate = x_q * vals with x_q = level / 255, as the reference computes it (float32)
    quant = levels.astype(np.float32) / np.float32(255.0)
    counts = _poisson_counts(levels, vals, rng)
    noise = counts / np.float32(vals) - quant
    noise *= np.float32(scale)
    out = img + noise  # broadcasts the 1-channel gray noise over RGB
    return np.clip(out, 0.0, 1.0, out=out)

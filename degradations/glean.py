"""GLEAN's blind x8 degradation: the training LR of ``glean_in128out1024_4x2_300k_ffhq_celebahq``
(mmedit 0.16 ``RandomBlur``, ``RandomResize``, ``RandomNoise``, ``RandomJPEGCompression``,
``RandomResize``, ``Quantize``, ``RandomResize`` on the GT, in that order), for one image:

1. blur with a 41x41 Gaussian kernel, isotropic (sigma ~ U(0.2, 10)) or anisotropic (sigma_x,
   sigma_y ~ U(0.2, 10), rotation ~ U(-pi, pi)), each with p 0.5 (OpenCV ``filter2D``, reflected
   borders);
2. downscale by s ~ U(1/32, 1) to ``int(H s) x int(W s)`` with OpenCV bilinear, area or bicubic
   (p 1/3 each);
3. add Gaussian noise, sigma ~ U(0, 50) / 255 per channel;
4. JPEG at quality ``round(U(5, 50))``;
5. resize back to the GT size (bilinear / area / bicubic, p 1/3 each), quantise to 8-bit levels;
6. area-downscale to ``GT / scale`` (128 for the zoo's 1024 px faces at x8).

Deviations, as in :mod:`degradations.realbasicvsr`: noise is clipped to [0, 1] before the JPEG
step (which clips anyway, so the result is the same), and the JPEG codec gets BGR (0.x hands it
RGB as BGR, swapping the chroma planes). Parameters come from the sample's generator, not
numpy's global one, so the draws are the reference's distribution, not its sequence.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from degradations.checks import check_gt
from degradations.jpeg import jpeg
from degradations.kernels import filter2d, gaussian_aniso
from degradations.noise import gaussian_noise

KERNEL_SIZE = 41
SIGMA = (0.2, 10.0)
DOWN_SCALE = (0.03125, 1.0)
NOISE_SIGMA = (0.0, 50.0)
JPEG_QUALITY = (5, 50)
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC)  # bilinear, area, bicubic


def _resize(img: np.ndarray, h: int, w: int, interpolation: int) -> np.ndarray:
    out = cv2.resize(img, (w, h), interpolation=interpolation)
    return out[..., None] if out.ndim == 2 else out


def glean(gt: np.ndarray, *, scale: int, rng: np.random.Generator) -> np.ndarray:
    """GLEAN's blind degradation (module docstring) of a float32 RGB ``gt`` in [0, 1]."""
    check_gt(gt, scale)
    h, w = gt.shape[:2]
    if rng.random() < 0.5:  # isotropic
        sigma_x = rng.uniform(*SIGMA)
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_x, sigma_y, theta = rng.uniform(*SIGMA), rng.uniform(*SIGMA), rng.uniform(-math.pi, math.pi)
    img = filter2d(gt.astype(np.float32), gaussian_aniso(KERNEL_SIZE, sigma_x, sigma_y, theta))
    s = rng.uniform(*DOWN_SCALE)
    img = _resize(img, max(int(h * s), 1), max(int(w * s), 1), INTERPOLATIONS[rng.integers(3)])
    img = gaussian_noise(img, rng.uniform(*NOISE_SIGMA), gray=False, rng=rng)
    img = jpeg(img, round(rng.uniform(*JPEG_QUALITY)))
    img = _resize(img, h, w, INTERPOLATIONS[rng.integers(3)])
    img = np.clip(np.round(img * 255.0), 0, 255) / 255.0
    return _resize(img.astype(np.float32), h // scale, w // scale, cv2.INTER_AREA)

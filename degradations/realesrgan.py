"""Real-ESRGAN's second-order degradation (the official x4plus pipeline) on the CPU.

Wang et al. 2021, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data"; parameters of ``options/train_realesrgan_x4plus.yml`` and the order of
operations of ``RealESRGANDataset`` + ``RealESRGANModel.feed_data`` (spec/degradations.md):

1. ``gt_usm = usm_sharp(gt)`` (the L1/perceptual target);
2. first order on ``gt_usm``: blur (kernel1), resize up/down/keep with a random mode by
   ``scale_factor``, Gaussian or Poisson noise (clip), clamp, JPEG;
3. second order: blur (kernel2) with p 0.8, resize to ``ori / scale * s``, noise (clip);
4. final step, 50/50: [resize to ``ori / scale``, sinc, clamp, JPEG] or
   [clamp, JPEG, resize to ``ori / scale``, sinc];
5. ``lq = round(clamp(out) * 255) / 255``.

``sample_params`` draws everything one sample needs into a ``RealESRGANParams`` (the
sampler, shared with the batched torch path ``torch_path.apply_batch``); ``apply`` is
deterministic given the params (the noise values come from a generator seeded by
``params.noise_seed``). ``pack_params`` / ``unpack_params`` turn the params into a fixed
float64 vector and back (exactly), so they can travel in numeric batches from the Ray Data
actors that draw them to the training worker that applies them (``device: gpu``).

Per-sample vs per-batch: the reference draws the resize direction/scale/mode, the
Gaussian-vs-Poisson choice, the second-blur coin and the final-order coin once per GPU
batch (and then shuffles samples through a 180-pair pool to decorrelate batches); its gray
Gaussian noise map is shared across the batch. This CPU path draws *everything per
sample*, which is the distribution the pool approximates, and needs no pool.

Other deviations from the GPU reference: JPEG is libjpeg at ``int(q)`` (``jpeg.py``)
instead of DiffJPEG at float q; resize and filtering reproduce ``F.interpolate`` /
``filter2D`` to float32 rounding (``resize.py``, ``kernels.filter2d``); output sizes that
would be 0 for tiny inputs are clamped to 1 pixel (the reference would fail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from degradations.checks import check_gt
from degradations.jpeg import jpeg
from degradations.kernels import KERNEL_KINDS, KernelParams, filter2d, make_kernel, sample_kernel_params
from degradations.noise import gaussian_noise, poisson_noise
from degradations.resize import RESIZE_MODES, resize
from degradations.usm import usm_sharp

__all__ = [
    "PARAMS_WIDTH",
    "X4PLUS",
    "NoiseDraw",
    "RealESRGANConfig",
    "RealESRGANParams",
    "ResizeDraw",
    "apply",
    "pack_params",
    "paired_crop_corner",
    "paired_random_crop",
    "realesrgan",
    "sample_params",
    "unpack_params",
]

_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


@dataclass(frozen=True)
class RealESRGANConfig:
    """Every probability and range of the degradation (defaults: train_realesrgan_x4plus.yml)."""

    # blur kernels (dataset side)
    kernel_sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    kernel_list: tuple[str, ...] = _KINDS
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    kernel_list2: tuple[str, ...] = _KINDS
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    rotation_range: tuple[float, float] = (-math.pi, math.pi)
    # sinc cutoff for kernel1/kernel2: U(pi/3, pi) below size 13, else U(pi/5, pi)
    sinc_omega_small: tuple[float, float] = (math.pi / 3, math.pi)
    sinc_omega_large: tuple[float, float] = (math.pi / 5, math.pi)
    final_sinc_prob: float = 0.8
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)
    # first order
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # second order
    second_blur_prob: float = 0.8
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # final step
    final_resize_first_prob: float = 0.5  # [resize, sinc, JPEG] vs [JPEG, resize, sinc]
    resize_modes: tuple[str, ...] = RESIZE_MODES
    # unsharp masking of the GT
    usm_weight: float = 0.5
    usm_threshold: float = 10.0
    usm_radius: int = 50


X4PLUS = RealESRGANConfig()


@dataclass(frozen=True)
class ResizeDraw:
    """One resize: ``direction`` up/down/keep, its ``scale`` (1 for keep) and ``mode``."""

    direction: str
    scale: float
    mode: str


@dataclass(frozen=True)
class NoiseDraw:
    """One noise step: ``kind`` gaussian (``sigma`` on 0-255) or poisson (``scale``), ``gray`` flag."""

    kind: str
    sigma: float = 0.0
    scale: float = 0.0
    gray: bool = False


@dataclass(frozen=True)
class RealESRGANParams:
    """Everything drawn for one sample.

    ``sinc`` None is the reference's 21x21 delta (a no-op). ``noise_seed`` seeds the
    generator of the noise values, so ``apply`` is a function of (gt, params) alone.
    """

    kernel1: KernelParams
    kernel2: KernelParams
    sinc: KernelParams | None
    resize1: ResizeDraw
    noise1: NoiseDraw
    jpeg1: float
    second_blur: bool
    resize2: ResizeDraw
    noise2: NoiseDraw
    final_resize_first: bool
    final_mode: str
    jpeg2: float
    noise_seed: int = 0


# ----------------------------------------------------------------------------- packing
# A RealESRGANParams as one fixed-size float64 vector, so that parameters drawn on the CPU
# travel in numeric (Ray Data / torch) batches to the device that applies them. Names
# become indices into these tuples; every value is exact in float64 (the 63-bit noise seed
# travels as two 32-bit halves).
_DIRECTIONS = ("up", "down", "keep")
_NOISE_KINDS = ("gaussian", "poisson")
_KERNEL_FIELDS = 7  # kind (-1: none), size, sigma_x, sigma_y, theta, beta, omega
_RESIZE_FIELDS = 3  # direction, scale, mode
_NOISE_FIELDS = 4  # kind, sigma, scale, gray
#: Length of ``pack_params``' vector.
PARAMS_WIDTH = 3 * _KERNEL_FIELDS + 2 * _RESIZE_FIELDS + 2 * _NOISE_FIELDS + 7


def _index(options: tuple, value: str, what: str) -> float:
    try:
        return float(options.index(value))
    except ValueError:
        raise ValueError(f"cannot pack {what} {value!r}; known: {', '.join(options)}") from None


def _pack_kernel(k: KernelParams | None) -> list[float]:
    if k is None:
        return [-1.0] + [0.0] * (_KERNEL_FIELDS - 1)
    return [_index(KERNEL_KINDS, k.kind, "kernel kind"), float(k.size), k.sigma_x, k.sigma_y, k.theta, k.beta, k.omega]


def _unpack_kernel(v) -> KernelParams | None:
    if v[0] < 0:
        return None
    return KernelParams(KERNEL_KINDS[int(v[0])], int(v[1]), float(v[2]), float(v[3]), float(v[4]), float(v[5]),
                        float(v[6]))


def pack_params(p: RealESRGANParams) -> np.ndarray:
    """``p`` as a float64 vector of ``PARAMS_WIDTH`` values (``unpack_params`` inverts it exactly)."""
    seed = int(p.noise_seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"noise_seed must be in [0, 2**64), got {seed}")
    v = _pack_kernel(p.kernel1) + _pack_kernel(p.kernel2) + _pack_kernel(p.sinc)
    for r in (p.resize1, p.resize2):
        v += [_index(_DIRECTIONS, r.direction, "resize direction"), r.scale,
              _index(RESIZE_MODES, r.mode, "resize mode")]
    for n in (p.noise1, p.noise2):
        v += [_index(_NOISE_KINDS, n.kind, "noise kind"), n.sigma, n.scale, float(n.gray)]
    v += [p.jpeg1, float(p.second_blur), float(p.final_resize_first),
          _index(RESIZE_MODES, p.final_mode, "resize mode"), p.jpeg2, float(seed >> 32), float(seed & 0xFFFFFFFF)]
    return np.asarray(v, dtype=np.float64)


def unpack_params(v) -> RealESRGANParams:
    """The ``RealESRGANParams`` packed in ``v`` (a ``PARAMS_WIDTH`` vector; any array-like)."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (PARAMS_WIDTH,):
        raise ValueError(f"packed params must have shape ({PARAMS_WIDTH},), got {v.shape}")
    kernels = [_unpack_kernel(v[i * _KERNEL_FIELDS : (i + 1) * _KERNEL_FIELDS]) for i in range(3)]
    o = 3 * _KERNEL_FIELDS
    resizes = []
    for _ in range(2):
        resizes.append(ResizeDraw(_DIRECTIONS[int(v[o])], float(v[o + 1]), RESIZE_MODES[int(v[o + 2])]))
        o += _RESIZE_FIELDS
    noises = []
    for _ in range(2):
        noises.append(NoiseDraw(_NOISE_KINDS[int(v[o])], float(v[o + 1]), float(v[o + 2]), bool(v[o + 3])))
        o += _NOISE_FIELDS
    jpeg1, second_blur, final_first, final_mode, jpeg2, hi, lo = v[o : o + 7]
    return RealESRGANParams(
        kernel1=kernels[0], kernel2=kernels[1], sinc=kernels[2], resize1=resizes[0], noise1=noises[0],
        jpeg1=float(jpeg1), second_blur=bool(second_blur), resize2=resizes[1], noise2=noises[1],
        final_resize_first=bool(final_first), final_mode=RESIZE_MODES[int(final_mode)], jpeg2=float(jpeg2),
        noise_seed=(int(hi) << 32) | int(lo),
    )


# ----------------------------------------------------------------------------- sampling
def _choice(rng: np.random.Generator, options, probs=None):
    if probs is None:
        return options[int(rng.integers(len(options)))]
    cdf = np.cumsum(probs) / np.sum(probs)
    return options[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(options) - 1)]


def _resize_draw(rng: np.random.Generator, probs, scale_range, modes) -> ResizeDraw:
    direction = _choice(rng, ("up", "down", "keep"), probs)
    if direction == "up":
        scale = float(rng.uniform(1.0, scale_range[1]))
    elif direction == "down":
        scale = float(rng.uniform(scale_range[0], 1.0))
    else:
        scale = 1.0
    return ResizeDraw(direction, scale, _choice(rng, modes))


def _noise_draw(rng: np.random.Generator, gaussian_prob, sigma_range, poisson_range, gray_prob) -> NoiseDraw:
    if rng.random() < gaussian_prob:
        sigma = float(rng.uniform(*sigma_range))
        return NoiseDraw("gaussian", sigma=sigma, gray=bool(rng.random() < gray_prob))
    scale = float(rng.uniform(*poisson_range))
    return NoiseDraw("poisson", scale=scale, gray=bool(rng.random() < gray_prob))


def sample_params(rng: np.random.Generator, cfg: RealESRGANConfig = X4PLUS) -> RealESRGANParams:
    """Draw one sample's degradation parameters (all per sample; see the module docstring)."""
    k1 = sample_kernel_params(
        rng, kinds=cfg.kernel_list, probs=cfg.kernel_prob, sigma_range=cfg.blur_sigma,
        rotation_range=cfg.rotation_range, betag_range=cfg.betag_range, betap_range=cfg.betap_range,
        sinc_prob=cfg.sinc_prob, sizes=cfg.kernel_sizes, sinc_omega_small=cfg.sinc_omega_small,
        sinc_omega_large=cfg.sinc_omega_large,
    )
    k2 = sample_kernel_params(
        rng, kinds=cfg.kernel_list2, probs=cfg.kernel_prob2, sigma_range=cfg.blur_sigma2,
        rotation_range=cfg.rotation_range, betag_range=cfg.betag_range2, betap_range=cfg.betap_range2,
        sinc_prob=cfg.sinc_prob2, sizes=cfg.kernel_sizes, sinc_omega_small=cfg.sinc_omega_small,
        sinc_omega_large=cfg.sinc_omega_large,
    )
    sinc = None
    if rng.random() < cfg.final_sinc_prob:
        size = int(_choice(rng, cfg.kernel_sizes))
        sinc = KernelParams("sinc", size, omega=float(rng.uniform(*cfg.final_sinc_omega)))
    resize1 = _resize_draw(rng, cfg.resize_prob, cfg.resize_range, cfg.resize_modes)
    noise1 = _noise_draw(rng, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range, cfg.gray_noise_prob)
    jpeg1 = float(rng.uniform(*cfg.jpeg_range))
    second_blur = bool(rng.random() < cfg.second_blur_prob)
    resize2 = _resize_draw(rng, cfg.resize_prob2, cfg.resize_range2, cfg.resize_modes)
    noise2 = _noise_draw(
        rng, cfg.gaussian_noise_prob2, cfg.noise_range2, cfg.poisson_scale_range2, cfg.gray_noise_prob2
    )
    final_resize_first = bool(rng.random() < cfg.final_resize_first_prob)
    final_mode = _choice(rng, cfg.resize_modes)
    jpeg2 = float(rng.uniform(*cfg.jpeg_range2))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    return RealESRGANParams(
        kernel1=k1, kernel2=k2, sinc=sinc, resize1=resize1, noise1=noise1, jpeg1=jpeg1,
        second_blur=second_blur, resize2=resize2, noise2=noise2,
        final_resize_first=final_resize_first, final_mode=final_mode, jpeg2=jpeg2,
        noise_seed=noise_seed,
    )


def _check_gt(gt: np.ndarray, scale: int) -> None:
    """The x4plus pipeline needs at least 8 px (and two LQ pixels) per side."""
    check_gt(gt, scale, min_side=max(2 * scale, 8))


def _noise(img: np.ndarray, draw: NoiseDraw, rng: np.random.Generator) -> np.ndarray:
    if draw.kind == "gaussian":
        return gaussian_noise(img, draw.sigma, draw.gray, rng)
    return poisson_noise(img, draw.scale, draw.gray, rng)


def _size(h: float, w: float) -> tuple[int, int]:
    return max(int(h), 1), max(int(w), 1)


def _jpeg(img: np.ndarray, q: float) -> np.ndarray:
    return jpeg(np.clip(img, 0.0, 1.0), q)


def apply(
    gt: np.ndarray, params: RealESRGANParams, scale: int = 4, cfg: RealESRGANConfig = X4PLUS
) -> dict[str, np.ndarray]:
    """Degrade ``gt`` with the drawn ``params``.

    Args:
        gt: float32 ``HxWx3`` RGB in [0, 1]; H and W multiples of ``scale``, at least 8.
        params: From ``sample_params``.
        scale: Downscale factor of the final LQ.
        cfg: USM settings are read from here.

    Returns:
        ``{"lq": float32 (H/scale)x(W/scale)x3 on the 8-bit grid, "gt": float32 USM'd GT}``.
    """
    _check_gt(gt, scale)
    rng = np.random.default_rng(params.noise_seed)
    gt = gt.astype(np.float32, copy=False)
    gt_usm = usm_sharp(gt, cfg.usm_weight, cfg.usm_threshold, cfg.usm_radius)
    ori_h, ori_w = gt.shape[:2]

    # first order
    out = filter2d(gt_usm, make_kernel(params.kernel1))
    if params.resize1.direction != "keep":
        s = params.resize1.scale
        if min(math.floor(ori_h * s), math.floor(ori_w * s)) >= 1:
            out = resize(out, None, params.resize1.mode, scale_factor=s)  # F.interpolate(scale_factor=s)
        else:
            out = resize(out, _size(ori_h * s, ori_w * s), params.resize1.mode)
    out = _noise(out, params.noise1, rng)
    out = _jpeg(out, params.jpeg1)

    # second order
    if params.second_blur:
        out = filter2d(out, make_kernel(params.kernel2))
    s2 = params.resize2.scale
    out = resize(out, _size(ori_h / scale * s2, ori_w / scale * s2), params.resize2.mode)
    out = _noise(out, params.noise2, rng)

    # final: resize to the LQ size + sinc, and JPEG, in a random order
    lq_hw = (ori_h // scale, ori_w // scale)
    if params.final_resize_first:
        out = resize(out, lq_hw, params.final_mode)
        if params.sinc is not None:
            out = filter2d(out, make_kernel(params.sinc))
        out = _jpeg(out, params.jpeg2)
    else:
        out = _jpeg(out, params.jpeg2)
        out = resize(out, lq_hw, params.final_mode)
        if params.sinc is not None:
            out = filter2d(out, make_kernel(params.sinc))
    lq = np.clip(np.round(out * np.float32(255.0)), 0.0, 255.0) / np.float32(255.0)
    return {"lq": lq.astype(np.float32, copy=False), "gt": gt_usm}


def realesrgan(gt: np.ndarray, *, scale: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Preset ``realesrgan``: sample x4plus parameters from ``rng`` and apply them.

    Returns ``{"lq", "gt"}``, ``gt`` being the USM-sharpened GT (the training target).
    """
    _check_gt(gt, scale)
    return apply(gt, sample_params(rng, X4PLUS), scale=scale)


def paired_random_crop(
    lq: np.ndarray, gt: np.ndarray, gt_size: int, scale: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a random ``gt_size`` GT patch and the matching ``gt_size / scale`` LQ patch.

    As BasicSR's ``paired_random_crop``: the LQ corner is uniform over all valid positions
    (``randint(0, h_lq - lq_size)`` inclusive), the GT corner is ``scale`` times it.
    """
    h, w = lq.shape[:2]
    if gt.shape[0] != h * scale or gt.shape[1] != w * scale:
        raise ValueError(f"gt {gt.shape[:2]} is not {scale}x lq {lq.shape[:2]}")
    top, left = paired_crop_corner((h, w), gt_size, scale, rng)
    lq_size = gt_size // scale
    return (
        lq[top : top + lq_size, left : left + lq_size],
        gt[top * scale : top * scale + gt_size, left * scale : left * scale + gt_size],
    )


def paired_crop_corner(
    lq_hw: tuple[int, int], gt_size: int, scale: int, rng: np.random.Generator
) -> tuple[int, int]:
    """The LQ ``(top, left)`` corner ``paired_random_crop`` draws (same draws, same order).

    Lets a caller draw the crop on the CPU and cut it later elsewhere (the batched torch
    path crops on the training device).
    """
    if gt_size % scale:
        raise ValueError(f"gt_size {gt_size} is not divisible by scale {scale}")
    lq_size = gt_size // scale
    h, w = lq_hw
    if h < lq_size or w < lq_size:
        raise ValueError(f"lq {h}x{w} is smaller than the patch {lq_size}x{lq_size}")
    top = int(rng.integers(0, h - lq_size + 1))
    left = int(rng.integers(0, w - lq_size + 1))
    return top, left

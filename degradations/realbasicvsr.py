"""RealBasicVSR's second-order video degradation with per-frame random walks.

Chan et al. 2022, "Investigating Tradeoffs in Real-World Video Super-Resolution"; the
training pipeline of mmagic ``configs/real_basicvsr/*`` (``random_degradations.py``),
parameters in ``spec/degradations.md``. One clip goes through:

1. **Mirror.** The stream loads ``T`` (15) GT frames; they are mirrored to ``2T`` (30)
   *before* degradation, so the mirrored half gets its own parameters (the walk goes on).
2. **USM.** The GT is sharpened (unsharp mask 51, weight 0.5, threshold 10); the sharpened
   GT is both the training target ``gt`` and the input of the degradation.
3. **First order:** blur (p 1) -> resize -> noise -> JPEG -> video compression.
4. **Second order:** blur (p 0.8) -> resize -> noise -> JPEG.
5. **Shuffled final stage:** in random order, video compression and [resize to the LQ size
   ``GT / scale`` (64x64 for 256 GT), then a sinc blur (p 0.8)].
6. Quantise to 8-bit levels (round, clip), as mmedit 0.x does.

**Random walk.** Discrete choices are drawn once per clip: kernel type and size, noise type
and gray flag, resize direction and interpolation, codec and bitrate, whether an optional
op runs, the final order. Continuous parameters start at ``U(range)`` and every next frame
moves by ``U(-step, step)``, clipped to the range (kernel sigmas, rotation, betas, sinc
cutoff, resize scale, noise level, JPEG quality rounded to an int after each step). The
sampler (:func:`sample_clip_params`) draws everything, including a seed for the noise
realisations; :func:`apply_clip` is then deterministic.

**Frame sizes.** With a resize step every frame of a clip gets its own size. Each frame keeps
its own size through every op: first-order size ``even(H * s1_t)``; the video codec encodes
at frame 0's size but gives every frame back at its own size (``video_codec``); second-order
size ``even(h_t * s2_t)`` from the frame's own current height/width; the final resize maps
every frame to ``GT / scale``. "even" is ``2 * floor(x / 2)``, at least 2 (mmagic 1.x
``is_size_even``, in the RealBasicVSR configs).

Deviations from the reference, all deliberate:

* The reference's video compression rescales every frame to frame 0's size (PyAV does it
  silently), so after the first order all frames share frame 0's scale and the second
  order walks from there. Here each frame keeps its own resolution chain (see above).
* Its ``uint8`` cast wraps overshoots (-1.3 -> 255) and it sets ``pict_type = 'NONE'``,
  which crashes PyAV >= 14: fixed in ``video_codec``; ``"h264"`` is pinned to libx264,
  x264 runs single-threaded without mbtree (reproducibility, see ``video_codec``).
* x264 runs with the ``veryfast`` preset instead of its default ``medium``
  (``VideoConfig.x264_preset``; ``None`` restores ``medium``): half the encode time (the
  largest single cost of a clip) for the same distortion at a given bitrate (measured on
  256x256 clips: PSNR within 0.35 dB over 1e4..1e5 bits/frame, a shift far smaller than
  the bitrate's random range).
* Generalized / plateau kernels: the reference passes the walked beta ``b`` as a
  one-point range ``[b, b]`` to ``random_mixed_kernels``, whose split draw
  (``U(lo, 1)`` or ``U(1, hi)``) then becomes ``U(b, 1)`` or ``U(1, b)``: either way a
  fresh uniform draw between 1 and ``b`` every frame, so the kernel's beta jumps instead
  of walking and is biased towards 1. Here the walked beta is used as is.
* Noise is clipped to [0, 1] (the ``noise`` ops' convention); the reference leaves it
  unclipped until the JPEG step, which always follows and clips, so the result is the
  same. Gray Poisson noise uses the luma weights of the ``noise`` module (0.2989, 0.587,
  0.114) instead of OpenCV's (0.299, 0.587, 0.114).
* JPEG is fed RGB->BGR properly (``jpeg``); the 0.x reference hands RGB to OpenCV as BGR,
  which swaps the chroma planes inside the codec.
* Blurs use a separable (low-rank) decomposition of the kernel when that is exact to
  about 1e-4 in the L1 sense (negligible outer rings trimmed, 1e-5, plus dropped singular
  terms, 1e-4: output error below 1.1e-4, a thirtieth of an 8-bit level) and cheaper
  than a 2-D correlation, and correlate kernels above 11x11 directly in four quadrants
  instead of OpenCV's DFT path; borders are ``BORDER_REFLECT_101`` as ``cv2.filter2D``'s
  default. Together about 2.5x faster than ``cv2.filter2D`` on one core.
* Resize: bilinear and bicubic go through ``degradations.resize`` with a target size (that
  is ``cv2.resize``, as the reference); ``area`` uses ``cv2.INTER_AREA`` as the reference
  does (``degradations.resize``'s area is torch's adaptive pooling, for Real-ESRGAN).
* The random numbers are numpy ``Generator`` streams, not the global ``np.random`` /
  ``random`` states, so values differ draw for draw; the distributions are the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from degradations.jpeg import jpeg
from degradations.kernels import KernelParams, make_kernel
from degradations.noise import gaussian_noise, poisson_noise
from degradations.resize import resize
from degradations.usm import usm_sharp
from degradations.video_codec import CODECS, compress_video

__all__ = [
    "REALBASICVSR",
    "BlurConfig",
    "BlurParams",
    "ClipParams",
    "FinalParams",
    "JpegConfig",
    "JpegParams",
    "NoiseConfig",
    "NoiseParams",
    "OrderParams",
    "RealBasicVSRConfig",
    "ResizeConfig",
    "ResizeParams",
    "VideoConfig",
    "VideoParams",
    "apply_clip",
    "realbasicvsr_clip",
    "sample_clip_params",
]

_PI = 3.1416  # the configs' rounding of pi (rotation range, final sinc cutoff)
_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
_SIZES = tuple(range(7, 22, 2))
_INTERPS = ("bilinear", "area", "bicubic")
_THIRDS = (1 / 3, 1 / 3, 1 / 3)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BlurConfig:
    """``RandomBlur``: probability, kernel families and the walk of their parameters.

    ``omega=None`` is the Real-ESRGAN rule for the sinc cutoff: ``U(pi/3, pi)`` for sizes
    below 13, else ``U(pi/5, pi)``. Sigma x and y share ``sigma`` and ``sigma_step``.
    """

    prob: float = 1.0
    kinds: tuple[str, ...] = _KINDS
    kind_probs: tuple[float, ...] = (0.405, 0.225, 0.108, 0.027, 0.108, 0.027, 0.1)
    sizes: tuple[int, ...] = _SIZES
    sigma: tuple[float, float] = (0.2, 3.0)
    rotation: tuple[float, float] = (-_PI, _PI)
    betag: tuple[float, float] = (0.5, 4.0)
    betap: tuple[float, float] = (1.0, 2.0)
    omega: tuple[float, float] | None = None
    sigma_step: float = 0.02
    rotation_step: float = 0.31416
    betag_step: float = 0.05
    betap_step: float = 0.1
    omega_step: float = 0.0628


@dataclass(frozen=True)
class ResizeConfig:
    """``RandomResize``: direction (up/down/keep), scale range and walk step, interpolation."""

    mode_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    scale: tuple[float, float] = (0.15, 1.5)
    step: float = 0.015
    interps: tuple[str, ...] = _INTERPS
    interp_probs: tuple[float, ...] = _THIRDS
    even: bool = True


@dataclass(frozen=True)
class NoiseConfig:
    """``RandomNoise``: Gaussian sigma on the 0-255 scale, Poisson scale, gray-noise odds."""

    prob: float = 1.0
    gaussian_prob: float = 0.5
    gaussian_sigma: tuple[float, float] = (1.0, 30.0)
    gaussian_sigma_step: float = 0.1
    gaussian_gray_prob: float = 0.4
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    poisson_scale_step: float = 0.005
    poisson_gray_prob: float = 0.4


@dataclass(frozen=True)
class JpegConfig:
    """``RandomJPEGCompression``: start quality ``round(U(range))``, walk step, rounded."""

    prob: float = 1.0
    quality: tuple[float, float] = (30.0, 95.0)
    step: float = 3.0


@dataclass(frozen=True)
class VideoConfig:
    """``RandomVideoCompression``: codec and bitrate (bits per frame), fixed per clip."""

    prob: float = 1.0
    codecs: tuple[str, ...] = ("libx264", "h264", "mpeg4")
    codec_probs: tuple[float, ...] = _THIRDS
    bitrate: tuple[int, int] = (10_000, 100_000)
    x264_preset: str | None = "veryfast"  # None: x264's default (medium), as the reference


@dataclass(frozen=True)
class RealBasicVSRConfig:
    """Every probability, range and step of the RealBasicVSR training degradation."""

    mirror: bool = True
    usm_weight: float = 0.5
    usm_threshold: float = 10.0
    usm_radius: int = 51
    blur1: BlurConfig = field(default_factory=BlurConfig)
    resize1: ResizeConfig = field(default_factory=ResizeConfig)
    noise1: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg1: JpegConfig = field(default_factory=JpegConfig)
    video1: VideoConfig = field(default_factory=VideoConfig)
    blur2: BlurConfig = field(default_factory=lambda: BlurConfig(prob=0.8, sigma=(0.2, 1.5)))
    resize2: ResizeConfig = field(
        default_factory=lambda: ResizeConfig(mode_probs=(0.3, 0.4, 0.3), scale=(0.3, 1.2), step=0.03)
    )
    noise2: NoiseConfig = field(
        default_factory=lambda: NoiseConfig(gaussian_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5))
    )
    jpeg2: JpegConfig = field(default_factory=JpegConfig)
    video_final: VideoConfig = field(default_factory=VideoConfig)
    final_interps: tuple[str, ...] = _INTERPS
    final_interp_probs: tuple[float, ...] = _THIRDS
    sinc_final: BlurConfig = field(
        default_factory=lambda: BlurConfig(prob=0.8, kinds=("sinc",), kind_probs=(1.0,), omega=(_PI / 3, _PI))
    )
    video_first_prob: float = 0.5  # DegradationsWithShuffle of two items: a fair coin


REALBASICVSR = RealBasicVSRConfig()
"""The configuration of mmagic's ``realbasicvsr_*_reds`` training pipelines."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class BlurParams:
    """One kernel per frame (same kind and size); empty when the blur is skipped."""

    kernels: tuple[KernelParams, ...] = ()

    @property
    def applied(self) -> bool:
        return bool(self.kernels)


@dataclass(frozen=True)
class ResizeParams:
    """Direction (``up``/``down``/``keep``), interpolation and one scale per frame."""

    direction: str
    interp: str
    scales: tuple[float, ...]
    even: bool = True


@dataclass(frozen=True)
class NoiseParams:
    """Noise type, gray flag and one level per frame (sigma on 0-255, or Poisson scale).

    ``kind`` is ``None`` when the noise is skipped.
    """

    kind: str | None
    gray: bool = False
    levels: tuple[float, ...] = ()


@dataclass(frozen=True)
class JpegParams:
    """One integer quality per frame; empty when JPEG is skipped."""

    qualities: tuple[int, ...] = ()


@dataclass(frozen=True)
class VideoParams:
    """Codec and bitrate for the whole clip; ``codec`` ``None`` when skipped."""

    codec: str | None
    bitrate: int = 0
    x264_preset: str | None = None


@dataclass(frozen=True)
class OrderParams:
    """One degradation order: blur -> resize -> noise -> JPEG (-> video, first order only)."""

    blur: BlurParams
    resize: ResizeParams
    noise: NoiseParams
    jpeg: JpegParams
    video: VideoParams | None = None


@dataclass(frozen=True)
class FinalParams:
    """The shuffled last stage: video compression and [resize to LQ size + sinc blur]."""

    video_first: bool
    video: VideoParams
    interp: str
    sinc: BlurParams


@dataclass(frozen=True)
class ClipParams:
    """Everything random about one clip's degradation (``num_frames`` after mirroring)."""

    num_frames: int
    mirror: bool
    first: OrderParams
    second: OrderParams
    final: FinalParams
    noise_seed: int
    usm: tuple[float, float, int] = (0.5, 10.0, 51)


# --------------------------------------------------------------------------- sampler


def _choice(rng: np.random.Generator, options: Sequence, probs: Sequence[float]):
    """One of ``options`` drawn with ``probs`` (one uniform; plain Python, it runs ~10x a clip)."""
    total = math.fsum(probs)
    if len(options) != len(probs) or min(probs) < 0 or abs(total - 1.0) > 1e-6:
        raise ValueError(f"options {tuple(options)} and probabilities {tuple(probs)} must match and sum to 1")
    u = rng.random() * total
    acc = 0.0
    for option, p in zip(options, probs):
        acc += p
        if u < acc:
            return option
    return options[-1]


def _walk(rng: np.random.Generator, start: float, lo: float, hi: float, step: float, n: int) -> list[float]:
    """``start`` then ``n - 1`` steps of ``U(-step, step)``, each clipped to ``[lo, hi]``."""
    v = float(start)
    out = [v]
    if n > 1:
        for d in rng.uniform(-step, step, n - 1).tolist():
            v += d
            v = lo if v < lo else hi if v > hi else v
            out.append(v)
    return out


def _sample_blur(rng: np.random.Generator, cfg: BlurConfig, n: int) -> BlurParams:
    if rng.random() >= cfg.prob:
        return BlurParams()
    kind = _choice(rng, cfg.kinds, cfg.kind_probs)
    size = int(cfg.sizes[int(rng.integers(len(cfg.sizes)))])
    if kind == "sinc":
        if cfg.omega is not None:
            lo, hi = cfg.omega
        else:  # Real-ESRGAN's rule
            lo, hi = (math.pi / 3, math.pi) if size < 13 else (math.pi / 5, math.pi)
        omegas = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.omega_step, n)
        return BlurParams(tuple(KernelParams("sinc", size, omega=w) for w in omegas))
    sx = _walk(rng, rng.uniform(*cfg.sigma), *cfg.sigma, cfg.sigma_step, n)
    if kind.endswith("aniso"):
        sy = _walk(rng, rng.uniform(*cfg.sigma), *cfg.sigma, cfg.sigma_step, n)
        th = _walk(rng, rng.uniform(*cfg.rotation), *cfg.rotation, cfg.rotation_step, n)
    else:  # isotropic: sigma_y = sigma_x, no rotation
        sy, th = sx, [0.0] * n
    if kind.startswith("generalized"):
        beta = _walk(rng, rng.uniform(*cfg.betag), *cfg.betag, cfg.betag_step, n)
    elif kind.startswith("plateau"):
        beta = _walk(rng, rng.uniform(*cfg.betap), *cfg.betap, cfg.betap_step, n)
    else:
        beta = [1.0] * n
    return BlurParams(
        tuple(KernelParams(kind, size, sigma_x=a, sigma_y=b, theta=c, beta=d) for a, b, c, d in zip(sx, sy, th, beta))
    )


def _sample_resize(rng: np.random.Generator, cfg: ResizeConfig, n: int) -> ResizeParams:
    interp = _choice(rng, cfg.interps, cfg.interp_probs)
    direction = _choice(rng, ("up", "down", "keep"), cfg.mode_probs)
    lo, hi = cfg.scale
    start = {"up": lambda: rng.uniform(1.0, hi), "down": lambda: rng.uniform(lo, 1.0), "keep": lambda: 1.0}[direction]()
    return ResizeParams(direction, interp, tuple(_walk(rng, start, lo, hi, cfg.step, n)), cfg.even)


def _sample_noise(rng: np.random.Generator, cfg: NoiseConfig, n: int) -> NoiseParams:
    if rng.random() >= cfg.prob:
        return NoiseParams(None)
    if rng.random() < cfg.gaussian_prob:
        kind, rng_range, step, gray_p = "gaussian", cfg.gaussian_sigma, cfg.gaussian_sigma_step, cfg.gaussian_gray_prob
    else:
        kind, rng_range, step, gray_p = "poisson", cfg.poisson_scale, cfg.poisson_scale_step, cfg.poisson_gray_prob
    gray = bool(rng.random() < gray_p)
    return NoiseParams(kind, gray, tuple(_walk(rng, rng.uniform(*rng_range), *rng_range, step, n)))


def _sample_jpeg(rng: np.random.Generator, cfg: JpegConfig, n: int) -> JpegParams:
    if rng.random() >= cfg.prob:
        return JpegParams()
    lo, hi = cfg.quality
    q = round(float(rng.uniform(lo, hi)))
    out = [int(q)]
    for d in rng.uniform(-cfg.step, cfg.step, n - 1).tolist():
        q = round(min(max(q + d, lo), hi))  # the reference rounds the walked quality every frame
        out.append(int(q))
    return JpegParams(tuple(out))


def _sample_video(rng: np.random.Generator, cfg: VideoConfig) -> VideoParams:
    if rng.random() >= cfg.prob:
        return VideoParams(None)
    codec = _choice(rng, cfg.codecs, cfg.codec_probs)
    if codec not in CODECS:
        raise ValueError(f"unknown video codec {codec!r}; known: {', '.join(CODECS)}")
    return VideoParams(codec, int(rng.integers(cfg.bitrate[0], cfg.bitrate[1] + 1)), cfg.x264_preset)


def sample_clip_params(
    rng: np.random.Generator, num_frames: int, cfg: RealBasicVSRConfig = REALBASICVSR
) -> ClipParams:
    """Draw all random parameters of one clip's degradation.

    Args:
        rng: The sample's generator.
        num_frames: Frames to degrade, i.e. after mirroring (30 for 15 loaded frames).
        cfg: Probabilities, ranges and steps (default: the RealBasicVSR training config).

    Returns:
        A ``ClipParams``; pass it to :func:`apply_clip`.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    n = int(num_frames)
    first = OrderParams(
        _sample_blur(rng, cfg.blur1, n),
        _sample_resize(rng, cfg.resize1, n),
        _sample_noise(rng, cfg.noise1, n),
        _sample_jpeg(rng, cfg.jpeg1, n),
        _sample_video(rng, cfg.video1),
    )
    second = OrderParams(
        _sample_blur(rng, cfg.blur2, n),
        _sample_resize(rng, cfg.resize2, n),
        _sample_noise(rng, cfg.noise2, n),
        _sample_jpeg(rng, cfg.jpeg2, n),
    )
    final = FinalParams(
        video_first=bool(rng.random() < cfg.video_first_prob),
        video=_sample_video(rng, cfg.video_final),
        interp=_choice(rng, cfg.final_interps, cfg.final_interp_probs),
        sinc=_sample_blur(rng, cfg.sinc_final, n),
    )
    return ClipParams(
        num_frames=n,
        mirror=cfg.mirror,
        first=first,
        second=second,
        final=final,
        noise_seed=int(rng.integers(2**63)),
        usm=(cfg.usm_weight, cfg.usm_threshold, cfg.usm_radius),
    )


# --------------------------------------------------------------------------- ops

_L1_TOL = 1e-4  # max sum |K - K_approx| of a separable approximation of a blur kernel


def _separable_terms(kernel: np.ndarray, max_terms: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Rank-r factors ``[(col, row), ...]`` with ``sum |K - sum col row^T| <= _L1_TOL``, or None."""
    k = kernel.astype(np.float64)
    u, s, vt = np.linalg.svd(k)
    # sum |E| <= sqrt(#entries) * ||E||_F, and ||E||_F^2 = sum of the dropped s_i^2
    tail = np.sqrt(np.cumsum((s * s)[::-1])[::-1])  # tail[r] = ||K - K_r||_F
    bound = k.shape[0] * np.append(tail, 0.0)[1:]  # bound for keeping r + 1 terms
    r = int(np.argmax(bound <= _L1_TOL)) + 1
    if r > max_terms:
        return None
    return [((u[:, i] * s[i]).astype(np.float32), vt[i].astype(np.float32)) for i in range(r)]


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Drop outer rings of the kernel whose total |weight| is below a tenth of the tolerance."""
    a = np.abs(kernel.astype(np.float64))
    n = a.shape[0]
    c = n // 2
    for r in range(c + 1):  # keep radius r: the centred (2r+1)^2 window
        if a.sum() - a[c - r : c + r + 1, c - r : c + r + 1].sum() <= _L1_TOL / 10:
            return kernel[c - r : c + r + 1, c - r : c + r + 1]
    return kernel


def _correlate(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Direct 2-D correlation, reflect-101 borders, without OpenCV's DFT path for big kernels.

    OpenCV filters float images through a DFT from 13x13 kernels on, which on one core
    costs about what a direct 21x21 correlation would. A larger kernel is therefore cut
    into four quadrants that share the centre pixel (each at most 11x11, so correlated
    directly, anchored at its corner on the centre) and the four results are summed.
    """
    size = k.shape[0]
    if size <= 11:
        return cv2.filter2D(img, -1, k).reshape(img.shape)
    c = size // 2
    out = None
    for rows, ay in ((slice(0, c + 1), c), (slice(c, size), 0)):
        for cols, ax in ((slice(0, c + 1), c), (slice(c, size), 0)):
            tile = k[rows, cols].copy()
            if ay == 0:
                tile[0, :] = 0  # the centre row belongs to the upper quadrants
            if ax == 0:
                tile[:, 0] = 0  # the centre column belongs to the left quadrants
            part = cv2.filter2D(img, -1, tile, anchor=(ax, ay)).reshape(img.shape)
            out = part if out is None else cv2.add(out, part, dst=out)
    return out


def _blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D(img, -1, kernel)`` (reflect-101 borders), separably where that is exact and cheaper."""
    k = _trim(kernel).astype(np.float32)
    size = k.shape[0]
    if size == 1:
        return img * np.float32(k[0, 0])
    # Single-core cost in units of one 2-D tap (measured on 256x256x3 float32): a direct
    # correlation costs size^2 up to 11x11, then (four quadrants, see _correlate) about
    # 390 at 13x13 to 625 at 21x21; one separable term costs about 15 + 3.7 * size.
    direct = size * size if size <= 11 else 390 + 30 * (size - 13)
    max_terms = int(direct // (15 + 3.7 * size))
    terms = _separable_terms(k, max_terms) if max_terms >= 1 else None
    if terms is None:
        return _correlate(img, k)
    out = None
    for col, row in terms:
        part = cv2.sepFilter2D(img, -1, row, col).reshape(img.shape)
        out = part if out is None else cv2.add(out, part, dst=out)
    return out


def _apply_blur(frames: list[np.ndarray], p: BlurParams) -> list[np.ndarray]:
    if not p.applied:
        return frames
    return [_blur(f, make_kernel(kp)) for f, kp in zip(frames, p.kernels)]


def _resize(img: np.ndarray, size_hw: tuple[int, int], interp: str) -> np.ndarray:
    if img.shape[:2] == tuple(size_hw):
        return img
    if interp == "area":  # cv2 area semantics, as the reference (resize.resize's is torch's)
        out = cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
        return out.reshape(size_hw[0], size_hw[1], img.shape[2])
    return resize(img, size_hw, interp)


def _scaled(n: int, s: float, even: bool) -> int:
    x = n * s
    return max(2, 2 * int(x // 2)) if even else max(1, int(x))


def _apply_resize(frames: list[np.ndarray], p: ResizeParams) -> list[np.ndarray]:
    out = []
    for f, s in zip(frames, p.scales):
        size = (_scaled(f.shape[0], s, p.even), _scaled(f.shape[1], s, p.even))
        out.append(_resize(f, size, p.interp))
    return out


def _apply_noise(frames: list[np.ndarray], p: NoiseParams, rng: np.random.Generator) -> list[np.ndarray]:
    if p.kind is None:
        return frames
    op = gaussian_noise if p.kind == "gaussian" else poisson_noise
    return [op(f, level, p.gray, rng) for f, level in zip(frames, p.levels)]


def _apply_jpeg(frames: list[np.ndarray], p: JpegParams) -> list[np.ndarray]:
    if not p.qualities:
        return frames
    return [jpeg(f, q) for f, q in zip(frames, p.qualities)]


def _apply_video(frames: list[np.ndarray], p: VideoParams | None) -> list[np.ndarray]:
    if p is None or p.codec is None:
        return frames
    return compress_video(frames, p.codec, p.bitrate, x264_preset=p.x264_preset)


def _apply_order(frames: list[np.ndarray], p: OrderParams, rng: np.random.Generator) -> list[np.ndarray]:
    frames = _apply_blur(frames, p.blur)
    frames = _apply_resize(frames, p.resize)
    frames = _apply_noise(frames, p.noise, rng)
    frames = _apply_jpeg(frames, p.jpeg)
    return _apply_video(frames, p.video)


def _apply_final(frames: list[np.ndarray], p: FinalParams, lq_hw: tuple[int, int]) -> list[np.ndarray]:
    if p.video_first:
        frames = _apply_video(frames, p.video)
    frames = _apply_blur([_resize(f, lq_hw, p.interp) for f in frames], p.sinc)
    if not p.video_first:
        frames = _apply_video(frames, p.video)
    return frames


def _check_clip(gt_frames, scale: int) -> tuple[int, int]:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if isinstance(gt_frames, np.ndarray) and gt_frames.ndim == 4:
        gt_frames = list(gt_frames)
    if not isinstance(gt_frames, (list, tuple)) or len(gt_frames) == 0:
        raise ValueError("gt_frames must be a non-empty list of HxWx3 float frames")
    first = gt_frames[0]
    for i, f in enumerate(gt_frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"gt frame {i} must be an HxWx3 RGB array, got {getattr(f, 'shape', type(f).__name__)}")
        if not np.issubdtype(f.dtype, np.floating):
            raise ValueError(f"gt frame {i} must be float in [0, 1], got dtype {f.dtype}")
        if f.shape != first.shape:
            raise ValueError(f"gt frames must share one size: frame 0 is {first.shape}, frame {i} is {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"gt frame {i} contains NaN or infinite values")
    h, w = first.shape[:2]
    if h < scale or w < scale or h % scale or w % scale:
        raise ValueError(f"gt height and width must be positive multiples of scale {scale}, got {h}x{w}")
    return h // scale, w // scale


def apply_clip(gt_frames: list[np.ndarray], params: ClipParams, scale: int = 4) -> dict[str, list[np.ndarray]]:
    """Degrade one GT clip with fixed parameters (deterministic).

    Args:
        gt_frames: ``T`` float RGB frames ``HxWx3`` in [0, 1], all the same size, H and W
            multiples of ``scale`` (a ``[T, H, W, 3]`` array works too).
        params: From :func:`sample_clip_params` with ``num_frames = 2T`` (mirrored) or ``T``.
        scale: GT / LQ size ratio.

    Returns:
        ``{"lq": [...], "gt": [...]}``: ``2T`` (or ``T``) float32 frames each; ``lq`` frames
        are ``(H/scale)x(W/scale)x3`` on the 8-bit grid, ``gt`` the sharpened GT frames
        (the mirrored half holds the same arrays as the first half, in reverse order).
    """
    lq_hw = _check_clip(gt_frames, scale)
    frames = [np.ascontiguousarray(f, dtype=np.float32) for f in gt_frames]
    want = 2 * len(frames) if params.mirror else len(frames)
    if params.num_frames != want:
        raise ValueError(f"params are for {params.num_frames} frames, the clip gives {want} (mirror={params.mirror})")
    weight, threshold, radius = params.usm
    gt = [usm_sharp(f, weight, threshold, radius) for f in frames]  # before mirroring: half the work
    if params.mirror:
        gt = gt + gt[::-1]
    rng = np.random.default_rng(params.noise_seed)
    lq = _apply_order(list(gt), params.first, rng)
    lq = _apply_order(lq, params.second, rng)
    lq = _apply_final(lq, params.final, lq_hw)
    lq = [np.clip(np.rint(f * np.float32(255.0)), 0.0, 255.0) * np.float32(1.0 / 255.0) for f in lq]
    return {"lq": lq, "gt": gt}


def realbasicvsr_clip(
    gt_frames, *, scale: int, rng: np.random.Generator, cfg: RealBasicVSRConfig = REALBASICVSR
) -> dict[str, np.ndarray]:
    """Preset entry: sample parameters and degrade a clip, as RealBasicVSR trains.

    Args:
        gt_frames: ``T`` (15 in the reference) float RGB frames ``HxWx3`` in [0, 1], or a
            ``[T, H, W, 3]`` array.
        scale: GT / LQ size ratio (4).
        rng: The sample's generator.
        cfg: Degradation settings (default: the RealBasicVSR training config).

    Returns:
        ``{"lq": [2T, H/scale, W/scale, 3], "gt": [2T, H, W, 3]}`` float32 arrays (the GT
        unsharp-masked, as the pixel loss wants it).
    """
    n = len(gt_frames) if isinstance(gt_frames, (list, tuple, np.ndarray)) else 0
    if n == 0:
        raise ValueError("gt_frames must be a non-empty list of HxWx3 float frames")
    params = sample_clip_params(rng, 2 * n if cfg.mirror else n, cfg)
    out = apply_clip(gt_frames, params, scale)
    return {"lq": np.stack(out["lq"]), "gt": np.stack(out["gt"])}

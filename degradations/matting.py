"""Matting data synthesis: trimaps from alpha, compositing, crops, affine and colour jitter.

Alpha mattes are ``uint8`` ``HxW`` (0-255) where trimaps are made from them, as in the
reference pipelines (DIM / GCA / IndexNet in MMEditing 0.x); images elsewhere are float
in [0, 1]. Trimaps are ``uint8`` ``HxW`` with 0 = background, 128 = unknown,
255 = foreground. Integer ranges are half-open ``[low, high)`` like the reference's
``randint``: ``kernel_size_range=(1, 30)`` draws sizes 1-29.

Pipeline pieces by zoo config (MMEditing 0.x): DIM and the ``*_dimaug`` configs composite
with a background fitted by :func:`fit_background_crop` (Comp-1k's offline rule), crop with
:func:`crop_around_unknown` and draw :func:`generate_trimap`; IndexNet uses
:func:`generate_trimap_distance` before the crop; GCA fits the background with
:func:`fit_background_resize`, overlays a second foreground
(:func:`composite_two_foregrounds`), warps with :func:`random_affine`, crops with
:func:`crop_around_center` and jitters the foreground with :func:`random_jitter`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import math
from dataclasses import dataclass
from numbers import Real

import cv2
import numpy as np
from PIL import Image

from degradations.checks import check_rng, int_range, is_int

__all__ = [
    "generate_trimap",
    "generate_trimap_distance",
    "composite",
    "merge_uint8",
    "composite_two_foregrounds",
    "crop_around_unknown",
    "crop_around_center",
    "fit_background_crop",
    "fit_background_resize",
    "AffineParams",
    "sample_affine_params",
    "inverse_affine_matrix",
    "apply_affine",
    "random_affine",
    "random_jitter",
]

_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


_RESIZABLE = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64))


# ----------------------------------------------------------------------------- checks
def _alpha_u8(alpha, name: str = "alpha") -> np.ndarray:
    """``uint8`` HxW alpha (an HxWx1 array is squeezed)."""
    if not isinstance(alpha, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(alpha).__name__}")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.ndim != 2 or alpha.size == 0:
        raise ValueError(f"{name} must be a non-empty HxW array, got shape {alpha.shape}")
    if alpha.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0-255), got dtype {alpha.dtype}")
    return alpha


def _image(x, name: str, dtype_kind: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.size == 0:
        raise ValueError(f"{name} must be a non-empty HxW or HxWxC array, got shape {x.shape}")
    if x.dtype.kind not in dtype_kind:
        raise ValueError(f"{name} has dtype {x.dtype}, expected kind {dtype_kind!r}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _alpha_float(alpha, name: str, hw: tuple[int, int]) -> np.ndarray:
    """Float alpha in [0, 1] shaped ``HxWx1`` (from HxW or HxWx1), checked against ``hw``."""
    alpha = _image(alpha, name, "f")
    if alpha.ndim == 3:
        if alpha.shape[2] != 1:
            raise ValueError(f"{name} must be HxW or HxWx1, got shape {alpha.shape}")
        alpha = alpha[:, :, 0]
    if alpha.shape != hw:
        raise ValueError(f"{name} shape {alpha.shape} does not match image shape {hw}")
    if alpha.min() < 0 or alpha.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1]")
    return alpha[:, :, None]


# ----------------------------------------------------------------------------- trimaps
def generate_trimap(
    alpha_uint8: np.ndarray,
    kernel_size_range=(1, 30),
    iterations=(1, 2),
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Trimap by random erosion / dilation of the alpha (DIM, GCA ``GenerateTrimap``).

    An erosion and a dilation kernel size are drawn independently from
    ``kernel_size_range`` (elliptical ``k x k`` structuring elements), and iteration counts
    independently from ``iterations``. Foreground (255) is where the eroded alpha is 255
    (the ``alpha == 255`` region shrunk), background (0) where the dilated alpha is 0 (the
    ``alpha == 0`` region shrunk), unknown (128) everywhere else.

    Args:
        alpha_uint8: ``uint8`` HxW alpha matte.
        kernel_size_range: Half-open range of kernel sizes; an int fixes the size.
        iterations: Half-open range of erode/dilate iterations; an int fixes it.
        rng: Random generator.

    Returns:
        ``uint8`` HxW trimap in {0, 128, 255}.
    """
    check_rng(rng)
    alpha = _alpha_u8(alpha_uint8, "alpha_uint8")
    k_lo, k_hi = int_range(kernel_size_range, "kernel_size_range", 1)
    i_lo, i_hi = int_range(iterations, "iterations", 1)
    k_erode, k_dilate = (int(k) for k in rng.integers(k_lo, k_hi, size=2))
    it_erode, it_dilate = (int(i) for i in rng.integers(i_lo, i_hi, size=2))
    eroded = cv2.erode(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_erode, k_erode)),
                       iterations=it_erode)
    dilated = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_dilate, k_dilate)),
                         iterations=it_dilate)
    trimap = np.full(alpha.shape, 128, dtype=np.uint8)
    trimap[eroded == 255] = 255
    trimap[dilated == 0] = 0
    return trimap


def generate_trimap_distance(
    alpha_uint8: np.ndarray,
    dist_range=(1, 20),
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Trimap by Euclidean distance to the soft region (IndexNet, ``GenerateTrimapWithDistTransform``).

    Pixels with ``0 < alpha < 255`` are unknown, and so is every pixel within ``d`` px
    (exact L2 distance transform, ``<= d``) of one, ``d`` drawn from ``dist_range``
    (default 1-19 px, the reference's ``randint(1, 20)``). The rest is 255 where
    ``alpha == 255`` and 0 where ``alpha == 0``. A hard (binary) alpha has no soft region
    and so gets no unknown band, as in the reference.

    Args:
        alpha_uint8: ``uint8`` HxW alpha matte.
        dist_range: Half-open range of the distance threshold, px; an int fixes it.
        rng: Random generator.

    Returns:
        ``uint8`` HxW trimap in {0, 128, 255}.
    """
    check_rng(rng)
    alpha = _alpha_u8(alpha_uint8, "alpha_uint8")
    d_lo, d_hi = int_range(dist_range, "dist_range", 0)
    known = ((alpha == 0) | (alpha == 255)).astype(np.uint8)
    dist = cv2.distanceTransform(known, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    thr = int(rng.integers(d_lo, d_hi))
    trimap = np.where(alpha == 255, 255, 0).astype(np.uint8)
    if not known.all():  # with no soft pixel the transform returns huge values anyway
        trimap[dist <= thr] = 128
    return trimap


# ----------------------------------------------------------------------------- composition
def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``fg * a + bg * (1 - a)`` (``MergeFgAndBg``), float in [0, 1].

    Args:
        fg: float ``HxWxC`` (or HxW) foreground in [0, 1].
        bg: float background, same shape as ``fg``.
        alpha: float ``HxW`` or ``HxWx1`` alpha in [0, 1].

    Returns:
        float32 merged image, ``fg``'s shape.
    """
    fg = _image(fg, "fg", "f")
    bg = _image(bg, "bg", "f")
    if fg.shape != bg.shape:
        raise ValueError(f"fg shape {fg.shape} does not match bg shape {bg.shape}")
    a = _alpha_float(alpha, "alpha", fg.shape[:2]).astype(np.float32)
    if fg.ndim == 2:
        a = a[:, :, 0]
    return (fg * a + bg * (1.0 - a)).astype(np.float32)


def merge_uint8(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Comp-1k's offline merge: ``uint8(fg * a + bg * (1 - a))`` with ``a = alpha / 255``.

    Computed in float64 and truncated (not rounded), as the Comp-1k composition script
    (``preprocess_comp1k_dataset.py`` / DIM's ``compose``) does.

    Args:
        fg: ``uint8`` HxWxC foreground.
        bg: ``uint8`` background, same shape.
        alpha: ``uint8`` HxW or HxWx1 alpha.

    Returns:
        ``uint8`` merged image.
    """
    fg = _image(fg, "fg", "u")
    bg = _image(bg, "bg", "u")
    if fg.dtype != np.uint8 or bg.dtype != np.uint8:
        raise ValueError(f"fg and bg must be uint8, got {fg.dtype} and {bg.dtype}")
    if fg.shape != bg.shape:
        raise ValueError(f"fg shape {fg.shape} does not match bg shape {bg.shape}")
    a = _alpha_u8(alpha)
    if a.shape != fg.shape[:2]:
        raise ValueError(f"alpha shape {a.shape} does not match image shape {fg.shape[:2]}")
    # Where alpha is 0 or 255 the formula gives bg or fg exactly (x * 1.0 + y * 0.0 == x), so
    # only the soft pixels -- usually a thin rim -- need the float64 arithmetic.
    out = np.where((a == 255)[:, :, None] if fg.ndim == 3 else a == 255, fg, bg)
    soft = np.nonzero((a > 0) & (a < 255))
    af = a[soft].astype(np.float64) / 255.0
    if fg.ndim == 3:
        af = af[:, None]
    out[soft] = (fg[soft] * af + bg[soft] * (1.0 - af)).astype(np.uint8)
    return out


def composite_two_foregrounds(
    fg1: np.ndarray, alpha1: np.ndarray, fg2: np.ndarray, alpha2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Overlay a second foreground behind the first (GCA ``CompositeFg``).

    ``alpha = 1 - (1 - a1)(1 - a2)`` (two 50 % layers make 75 %) and
    ``fg = a1 * fg1 + (1 - a1) * fg2`` -- the reference's formula, which does not divide
    by the new alpha. If the combined alpha is 1 everywhere the inputs are returned
    unchanged (the reference skips the composition then). The caller resizes the second
    sample to the first's size beforehand and draws the reference's 0.5 probability.

    Args:
        fg1, fg2: float ``HxWxC`` foregrounds in [0, 1], same shape.
        alpha1, alpha2: float ``HxW`` (or ``HxWx1``) alphas in [0, 1].

    Returns:
        ``(fg, alpha)``: float32 ``HxWxC`` and float32 ``HxW``.
    """
    fg1 = _image(fg1, "fg1", "f")
    fg2 = _image(fg2, "fg2", "f")
    if fg1.ndim != 3 or fg1.shape != fg2.shape:
        raise ValueError(f"fg1 and fg2 must be HxWxC of one shape, got {fg1.shape} and {fg2.shape}")
    a1 = _alpha_float(alpha1, "alpha1", fg1.shape[:2]).astype(np.float32)
    a2 = _alpha_float(alpha2, "alpha2", fg1.shape[:2]).astype(np.float32)
    alpha = 1.0 - (1.0 - a1) * (1.0 - a2)
    if not np.any(alpha < 1):
        return fg1.astype(np.float32), a1[:, :, 0]
    fg = fg1 * a1 + fg2 * (1.0 - a1)
    return fg.astype(np.float32), alpha[:, :, 0].astype(np.float32)


# ----------------------------------------------------------------------------- cropping
def _choose_top_left(unknown: np.ndarray, crop_h: int, crop_w: int, rng) -> tuple[int, int]:
    """Top-left of a ``crop_h x crop_w`` window centred on a random unknown pixel.

    Centres are preferred where the whole window fits; otherwise any unknown pixel is used
    and the window is shifted back inside the image; with no unknown pixel the window sits
    at the top-left corner (the reference's fallback).
    """
    h, w = unknown.shape
    dh, dw = crop_h // 2, crop_w // 2
    inner = np.zeros_like(unknown)
    inner[dh:h - dh, dw:w - dw] = True
    candidates = unknown & inner
    if not candidates.any():
        candidates = unknown
    if candidates.any():
        rows, cols = np.nonzero(candidates)
        i = int(rng.integers(rows.size))
        cy, cx = int(rows[i]), int(cols[i])
    else:
        cy, cx = dh, dw
    return int(np.clip(cy - dh, 0, h - crop_h)), int(np.clip(cx - dw, 0, w - crop_w))


def _resize(x: np.ndarray, hw: tuple[int, int], interpolation: int) -> np.ndarray:
    out = cv2.resize(x, (hw[1], hw[0]), interpolation=interpolation)
    return out.reshape(hw + x.shape[2:])  # cv2 drops a trailing singleton channel


def crop_around_unknown(
    arrays,
    trimap: np.ndarray,
    crop_sizes=(320, 480, 640),
    out_size=320,
    *,
    rng: np.random.Generator,
    interpolations: Mapping[str, str] | None = None,
    unknown_from: str | None = None,
):
    """Crop all arrays around a random unknown pixel, then resize (DIM ``CropAroundUnknown`` + ``Resize``).

    A square crop side is chosen uniformly from ``crop_sizes``. If the image is smaller than
    the crop, every array is first upscaled by ``max(crop / h, crop / w)`` (the reference
    rescales rather than pads, so no artificial border enters the data). The crop window is
    centred on a uniformly chosen unknown pixel (see ``_choose_top_left``) and the crops are
    resized to ``out_size``.

    Unknown pixels are ``0 < trimap < 255``: 128 for a trimap; for an alpha matte passed
    in its place, the soft pixels -- DIM's ``unknown_source='alpha'``, used before the
    trimap is generated. ``trimap`` is upscaled with nearest neighbour when the image must
    grow. With ``unknown_from`` the unknown pixels are instead read from that array of
    ``arrays`` after its own upscaling (the reference's rule: an alpha upscaled bilinearly
    or bicubically gains soft pixels), and ``trimap`` may be None.

    Args:
        arrays: dict name -> array, or a list of arrays, each HxW or HxWxC with the
            trimap's H and W; returned in the same container type.
        trimap: ``uint8`` HxW trimap (or alpha matte), only read; None with ``unknown_from``.
        crop_sizes: Candidate square crop sides, px (an int for a single one).
        out_size: Output side (int) or ``(h, w)``; None keeps the crop (DIM flips before it resizes).
        rng: Random generator.
        interpolations: dict name -> ``"nearest" | "bilinear" | "bicubic" | "area"`` for
            the resizes, default ``"bilinear"`` (``"nearest"`` for a key named ``trimap``).
            Keys refer to ``arrays`` names, or to list indices as strings.
        unknown_from: name (or list index as a string) of the ``uint8`` array whose soft
            pixels are the unknown ones.

    Returns:
        The cropped and resized arrays, same container type and keys as ``arrays``.
    """
    check_rng(rng)
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
    elif isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes)):
        items = [(str(i), a) for i, a in enumerate(arrays)]
    else:
        raise ValueError(f"arrays must be a dict or a list of arrays, got {type(arrays).__name__}")
    if not items:
        raise ValueError("arrays must not be empty")
    if unknown_from is not None:
        names = [n for n, _ in items]
        if unknown_from not in names:
            raise ValueError(f"unknown_from {unknown_from!r} is not one of the arrays {names}")
        trimap = _alpha_u8(dict(items)[unknown_from], f"arrays[{unknown_from!r}]")
    elif trimap is None:
        raise ValueError("give a trimap or unknown_from")
    trimap = _alpha_u8(trimap, "trimap")
    h, w = trimap.shape
    for name, a in items:
        a = _image(a, f"arrays[{name!r}]", "uif")
        if a.dtype not in _RESIZABLE:
            raise ValueError(f"arrays[{name!r}] dtype {a.dtype} cannot be resized; "
                             "use uint8/uint16/int16/float32/float64")
        if a.shape[:2] != (h, w):
            raise ValueError(f"arrays[{name!r}] shape {a.shape} does not match trimap shape {(h, w)}")
    sizes = [crop_sizes] if is_int(crop_sizes) else crop_sizes
    if not isinstance(sizes, Sequence) or len(sizes) == 0 or not all(is_int(s) and s > 0 for s in sizes):
        raise ValueError(f"crop_sizes must be positive ints, got {crop_sizes!r}")
    out_hw = (out_size, out_size) if is_int(out_size) else out_size
    if out_hw is not None:
        if not isinstance(out_hw, Sequence) or len(out_hw) != 2 or not all(is_int(s) and s > 0 for s in out_hw):
            raise ValueError(f"out_size must be a positive int, (h, w) or None, got {out_size!r}")
        out_hw = (int(out_hw[0]), int(out_hw[1]))
    interp = {"trimap": "nearest", **dict(interpolations or {})}
    bad = {k: v for k, v in interp.items() if v not in _INTERPOLATIONS}
    if bad:
        raise ValueError(f"unknown interpolation(s) {bad}; known: {', '.join(_INTERPOLATIONS)}")

    def flag(name: str) -> int:
        return _INTERPOLATIONS[interp.get(name, "bilinear")]

    crop = int(sizes[int(rng.integers(len(sizes)))])
    ratio = max(crop / h, crop / w)
    if ratio > 1:
        h, w = max(int(h * ratio), crop), max(int(w * ratio), crop)
        items = [(name, _resize(a, (h, w), flag(name))) for name, a in items]
        if unknown_from is not None:
            trimap = dict(items)[unknown_from].reshape(h, w)
        else:
            trimap = _resize(trimap, (h, w), cv2.INTER_NEAREST)
    top, left = _choose_top_left((trimap > 0) & (trimap < 255), crop, crop, rng)
    out = [(name, a[top:top + crop, left:left + crop]) for name, a in items]
    if out_hw is not None:
        out = [(name, _resize(a, out_hw, flag(name))) for name, a in out]
    else:
        out = [(name, np.ascontiguousarray(a)) for name, a in out]
    if isinstance(arrays, Mapping):
        return dict(out)
    return [a for _, a in out]


def _named_arrays(arrays, what: str) -> list[tuple[str, np.ndarray]]:
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
    else:
        raise ValueError(f"{what} must be a dict of name -> array, got {type(arrays).__name__}")
    if not items:
        raise ValueError(f"{what} must not be empty")
    hw = None
    for name, a in items:
        a = _image(a, f"{what}[{name!r}]", "uif")
        if a.dtype not in _RESIZABLE:
            raise ValueError(f"{what}[{name!r}] dtype {a.dtype} cannot be resized; use uint8/uint16/int16/float32/float64")
        if hw is None:
            hw = a.shape[:2]
        elif a.shape[:2] != hw:
            raise ValueError(f"{what}[{name!r}] shape {a.shape} does not match {what}[{items[0][0]!r}] shape {hw}")
    return items


def _hw(hw, name: str = "hw") -> tuple[int, int]:
    if not (isinstance(hw, Sequence) and len(hw) == 2 and all(is_int(v) and v > 0 for v in hw)):
        raise ValueError(f"{name} must be (height, width) of positive ints, got {hw!r}")
    return int(hw[0]), int(hw[1])


# ----------------------------------------------------------------------------- backgrounds
def fit_background_crop(bg: np.ndarray, hw) -> np.ndarray:
    """Comp-1k's background rule (DIM; MMEditing's ``preprocess_comp1k_dataset.py``).

    A background smaller than ``hw`` in either side is upscaled, keeping its aspect, by
    ``max(w / bw, h / bh)`` to ``ceil``-ed sides with PIL's bicubic filter; then the
    top-left ``h x w`` is kept. Larger backgrounds are only cropped.

    Args:
        bg: ``uint8`` HxWx3 background.
        hw: target ``(height, width)`` (the foreground's).

    Returns:
        ``uint8`` ``h x w x 3``.
    """
    bg = _image(bg, "bg", "u")
    if bg.dtype != np.uint8 or bg.ndim != 3 or bg.shape[2] != 3:
        raise ValueError(f"bg must be uint8 HxWx3, got {bg.dtype} {bg.shape}")
    h, w = _hw(hw)
    bh, bw = bg.shape[:2]
    ratio = max(float(w) / bw, float(h) / bh)
    if ratio > 1:
        size = (math.ceil(bw * ratio), math.ceil(bh * ratio))
        bg = np.asarray(Image.fromarray(bg).resize(size, Image.BICUBIC))
    return np.ascontiguousarray(bg[:h, :w])


def fit_background_resize(bg: np.ndarray, hw) -> np.ndarray:
    """GCA's background rule (``RandomLoadResizeBg``): bicubic resize to exactly ``hw``, aspect not kept.

    Args:
        bg: ``uint8`` HxWx3 background.
        hw: target ``(height, width)``.
    """
    bg = _image(bg, "bg", "u")
    if bg.ndim != 3 or bg.shape[2] != 3:
        raise ValueError(f"bg must be HxWx3, got shape {bg.shape}")
    h, w = _hw(hw)
    return _resize(bg, (h, w), cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------- GCA crop
def crop_around_center(
    arrays,
    crop_size=512,
    *,
    rng: np.random.Generator,
    trimap_key: str = "trimap",
    interpolations: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """GCA's ``CropAroundCenter``: a crop whose corner comes from an unknown pixel of the central area.

    Images smaller than the crop are first upscaled by ``max(crop_h / h, crop_w / w)``
    (nearest, except a key named ``bg``: bicubic, as the reference). The trimap is then
    shrunk 4x (nearest) and its unknown (128) pixels inside the margin of half a crop are
    the candidates: with at least 10, one is drawn and its position x4 is the crop's
    top-left corner (the reference's arithmetic, which puts the chosen pixel near the crop
    centre); with fewer, the corner is drawn uniformly over the image.

    Args:
        arrays: dict name -> HxW[xC] array, all one size, including ``trimap_key``.
        crop_size: side (int) or ``(h, w)``.
        rng: Random generator.
        trimap_key: which array is the ``uint8`` trimap.
        interpolations: dict name -> ``"nearest" | "bilinear" | "bicubic" | "area"`` for the
            upscaling of small images.

    Returns:
        dict of ``crop_h x crop_w`` arrays, same keys.
    """
    check_rng(rng)
    items = _named_arrays(arrays, "arrays")
    names = [n for n, _ in items]
    if trimap_key not in names:
        raise ValueError(f"arrays must contain the trimap {trimap_key!r}; got {names}")
    _alpha_u8(dict(items)[trimap_key], trimap_key)
    crop_h, crop_w = (crop_size, crop_size) if is_int(crop_size) else _hw(crop_size, "crop_size")
    if crop_h < 1 or crop_w < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size!r}")
    interp = {"bg": "bicubic", **dict(interpolations or {})}
    bad = {k: v for k, v in interp.items() if v not in _INTERPOLATIONS}
    if bad:
        raise ValueError(f"unknown interpolation(s) {bad}; known: {', '.join(_INTERPOLATIONS)}")
    h, w = items[0][1].shape[:2]
    ratio = max(crop_h / h, crop_w / w)
    if ratio > 1:
        h, w = max(int(h * ratio), crop_h), max(int(w * ratio), crop_w)
        items = [(n, _resize(a, (h, w), _INTERPOLATIONS[interp.get(n, "nearest")])) for n, a in items]
    trimap = dict(items)[trimap_key]
    small = _resize(trimap, (h // 4, w // 4), cv2.INTER_NEAREST)
    mh, mw = crop_h // 2, crop_w // 2
    rows, cols = np.nonzero(small[mh // 4:(h - mh) // 4, mw // 4:(w - mw) // 4] == 128)
    if rows.size < 10:
        top = int(rng.integers(0, h - crop_h + 1))
        left = int(rng.integers(0, w - crop_w + 1))
    else:
        i = int(rng.integers(rows.size))
        top, left = int(rows[i]) * 4, int(cols[i]) * 4
    return {n: np.ascontiguousarray(a[top:top + crop_h, left:left + crop_w]) for n, a in items}


# ----------------------------------------------------------------------------- affine
@dataclass(frozen=True)
class AffineParams:
    """One draw of :func:`sample_affine_params`: degrees, px, per-axis scale, degrees, per-axis
    flip (-1 flips, 1 keeps)."""

    angle: float
    translate: tuple[float, float]
    scale: tuple[float, float]
    shear: float
    flip: tuple[int, int]


def _sym_range(v, name: str) -> tuple[float, float]:
    if isinstance(v, Real) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(f"{name} must be >= 0 when a single number, got {v!r}")
        return (-float(v), float(v))
    if isinstance(v, Sequence) and len(v) == 2 and all(isinstance(x, Real) for x in v) and v[0] <= v[1]:
        return (float(v[0]), float(v[1]))
    raise ValueError(f"{name} must be a number or a (min, max) pair, got {v!r}")


def sample_affine_params(
    hw,
    degrees=30,
    translate=None,
    scale=(0.8, 1.25),
    shear=10,
    flip_ratio=0.5,
    *,
    rng: np.random.Generator,
    min_side_to_rotate: int = 1024,
) -> AffineParams:
    """Draws GCA's ``RandomAffine`` parameters, in the reference's order.

    The angle is uniform in ``degrees`` (a number ``d`` means ``(-d, d)``) -- but 0 when the
    image's longer side is under ``min_side_to_rotate`` (the reference's rule "to reduce the
    dark area a rotation introduces"; a draw is still made); x and y scales are drawn
    independently from ``scale``; the shear is uniform in ``shear``; each axis flips with
    probability ``flip_ratio`` independently. ``translate=(a, b)`` shifts up to ``a * w``
    horizontally and ``b * h`` vertically (the reference scales both by the height; no zoo
    config translates).

    Args:
        hw: image ``(height, width)``.
        rng: Random generator.
    """
    check_rng(rng)
    h, w = _hw(hw)
    deg = _sym_range(degrees, "degrees")
    if max(h, w) < min_side_to_rotate:
        deg = (0.0, 0.0)
    angle = float(rng.uniform(*deg))
    tx = ty = 0.0
    if translate is not None:
        if not (isinstance(translate, Sequence) and len(translate) == 2 and all(0 <= t <= 1 for t in translate)):
            raise ValueError(f"translate must be (a, b) with 0 <= a, b <= 1, got {translate!r}")
        tx = float(np.round(rng.uniform(-translate[0] * w, translate[0] * w)))
        ty = float(np.round(rng.uniform(-translate[1] * h, translate[1] * h)))
    sx = sy = 1.0
    if scale is not None:
        if not (isinstance(scale, Sequence) and len(scale) == 2 and all(isinstance(v, Real) for v in scale)
                and 0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be a (min, max) pair of positive numbers, got {scale!r}")
        sx, sy = float(rng.uniform(*scale)), float(rng.uniform(*scale))
    sh = float(rng.uniform(*_sym_range(shear, "shear"))) if shear is not None else 0.0
    if not (isinstance(flip_ratio, Real) and 0 <= flip_ratio <= 1):
        raise ValueError(f"flip_ratio must be in [0, 1], got {flip_ratio!r}")
    fx, fy = (int(v) for v in (rng.random(2) > flip_ratio).astype(np.int64) * 2 - 1)
    return AffineParams(angle, (tx, ty), (sx, sy), sh, (fx, fy))


def inverse_affine_matrix(center, params: AffineParams) -> np.ndarray:
    """The 2x3 matrix mapping output pixels to input pixels (for ``WARP_INVERSE_MAP``).

    The forward transform is flip -> scale -> rotation -> shear about ``center``, then the
    translation (the reference's order, with separate x and y scales).
    """
    angle, shear = math.radians(params.angle), math.radians(params.shear)
    sx = 1.0 / params.scale[0] * params.flip[0]
    sy = 1.0 / params.scale[1] * params.flip[1]
    d = math.cos(angle + shear) * math.cos(angle) + math.sin(angle + shear) * math.sin(angle)
    m = [math.cos(angle) * sx, math.sin(angle + shear) * sx, 0.0,
         -math.sin(angle) * sy, math.cos(angle + shear) * sy, 0.0]
    m = [v / d for v in m]
    cx, cy = center
    tx, ty = params.translate
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return np.array(m, dtype=np.float64).reshape(2, 3)


def apply_affine(arrays, params: AffineParams) -> dict[str, np.ndarray]:
    """Warps every array with ``params`` about the image centre (nearest neighbour, zero border).

    Args:
        arrays: dict name -> HxW[xC] array, all one size.
        params: from :func:`sample_affine_params`.
    """
    items = _named_arrays(arrays, "arrays")
    h, w = items[0][1].shape[:2]
    m = inverse_affine_matrix((w * 0.5 - 0.5, h * 0.5 - 0.5), params)
    return {n: _resize_back(cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP), a)
            for n, a in items}


def _resize_back(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return out.reshape(like.shape)  # cv2 drops a trailing singleton channel


def random_affine(arrays, degrees=30, translate=None, scale=(0.8, 1.25), shear=10, flip_ratio=0.5, *,
                  rng: np.random.Generator, min_side_to_rotate: int = 1024) -> dict[str, np.ndarray]:
    """GCA's ``RandomAffine``: :func:`sample_affine_params` then :func:`apply_affine` (alpha and fg).

    Returns:
        dict of warped arrays, same keys and shapes.
    """
    items = _named_arrays(arrays, "arrays")
    params = sample_affine_params(items[0][1].shape[:2], degrees, translate, scale, shear, flip_ratio,
                                  rng=rng, min_side_to_rotate=min_side_to_rotate)
    return apply_affine(dict(items), params)


# ----------------------------------------------------------------------------- colour jitter
def random_jitter(fg: np.ndarray, alpha: np.ndarray, hue_range=40, *, rng: np.random.Generator) -> np.ndarray:
    """GCA's ``RandomJitter``: hue shift, and saturation/value shifts adapted to the foreground.

    In HSV (hue in degrees, S and V in [0, 1], float32): hue += an integer drawn from
    ``hue_range`` (half-open, ``40`` means -40..39), modulo 360; saturation and value each
    += ``(1.1 - mean) * U(-0.1, 0.1)``, the mean taken where ``alpha > 0``, and reflected
    back into [0, 1] (``|x|``, then ``2 - x`` above 1). Where alpha has no positive pixel
    the mean is over the whole image (the reference would produce NaN there).

    Args:
        fg: HxWx3 RGB foreground, ``uint8`` or float on the 0-255 scale.
        alpha: HxW (or HxWx1) alpha, any dtype; only ``> 0`` is read.
        hue_range: number ``d`` for ``(-d, d)``, or an int ``(min, max)``.
        rng: Random generator.

    Returns:
        float32 HxWx3 RGB on the 0-255 scale.
    """
    check_rng(rng)
    fg = _image(fg, "fg", "uf")
    if fg.ndim != 3 or fg.shape[2] != 3:
        raise ValueError(f"fg must be HxWx3 RGB, got shape {fg.shape}")
    alpha = _image(alpha, "alpha", "uif")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.shape != fg.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match fg shape {fg.shape[:2]}")
    lo, hi = _sym_range(hue_range, "hue_range")
    if lo != int(lo) or hi != int(hi) or lo >= hi or lo <= -360 or hi > 360:
        raise ValueError(f"hue_range must have integer bounds with -360 < min < max <= 360, got {hue_range!r}")
    x = fg.astype(np.float32)
    x /= 255.0
    # Planes, in-place float32 arithmetic: the reference's values, a third of its time.
    h, sat, val = cv2.split(cv2.cvtColor(x, cv2.COLOR_RGB2HSV))
    h += np.float32(int(rng.integers(int(lo), int(hi))))
    # np.remainder(h, 360) for h in (-360, 720), bit for bit (fmod is exact there), 30x faster.
    np.subtract(h, 360, out=h, where=h >= 360)
    np.add(h, 360, out=h, where=h < 0)
    mask = alpha > 0
    for ch in (sat, val):
        mean = ch[mask].mean() if mask.any() else ch.mean()
        ch += np.float32((1.1 - mean) * (rng.random() * 0.2 - 0.1))
        np.abs(ch, out=ch)
        np.subtract(2, ch, out=ch, where=ch > 1)
    out = cv2.cvtColor(cv2.merge((h, sat, val)), cv2.COLOR_HSV2RGB)
    out *= 255.0
    return out

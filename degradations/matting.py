"""Matting data synthesis: trimaps from alpha, compositing, unknown-centred crops.

Alpha mattes are ``uint8`` ``HxW`` (0-255) where trimaps are made from them, as in the
reference pipelines (DIM / GCA / IndexNet in MMEditing 0.x); images elsewhere are float
in [0, 1]. Trimaps are ``uint8`` ``HxW`` with 0 = background, 128 = unknown,
255 = foreground. Integer ranges are half-open ``[low, high)`` like the reference's
``randint``: ``kernel_size_range=(1, 30)`` draws sizes 1-29.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from degradations.checks import check_rng, int_range, is_int

__all__ = [
    "generate_trimap",
    "generate_trimap_distance",
    "composite",
    "merge_uint8",
    "composite_two_foregrounds",
    "crop_around_unknown",
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
    a = a.astype(np.float64) / 255.0
    if fg.ndim == 3:
        a = a[:, :, None]
    return (fg * a + bg * (1.0 - a)).astype(np.uint8)


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
):
    """Crop all arrays around a random unknown pixel, then resize (DIM ``CropAroundUnknown`` + ``Resize``).

    A square crop side is chosen uniformly from ``crop_sizes``. If the image is smaller than
    the crop, every array is first upscaled by ``max(crop / h, crop / w)`` (the reference
    rescales rather than pads, so no artificial border enters the data). The crop window is
    centred on a uniformly chosen unknown pixel (see ``_choose_top_left``) and the crops are
    resized to ``out_size``.

    Unknown pixels are ``0 < trimap < 255``: 128 for a trimap; for an alpha matte passed
    in its place, the soft pixels -- DIM's ``unknown_source='alpha'``, used before the
    trimap is generated.

    Args:
        arrays: dict name -> array, or a list of arrays, each HxW or HxWxC with the
            trimap's H and W; returned in the same container type.
        trimap: ``uint8`` HxW trimap (or alpha matte), only read.
        crop_sizes: Candidate square crop sides, px (an int for a single one).
        out_size: Output side (int) or ``(h, w)``.
        rng: Random generator.
        interpolations: dict name -> ``"nearest" | "bilinear" | "bicubic" | "area"`` for
            the resizes, default ``"bilinear"`` (``"nearest"`` for a key named ``trimap``).
            Keys refer to ``arrays`` names, or to list indices as strings.

    Returns:
        The cropped and resized arrays, same container type and keys as ``arrays``.
    """
    check_rng(rng)
    trimap = _alpha_u8(trimap, "trimap")
    h, w = trimap.shape
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
    elif isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes)):
        items = [(str(i), a) for i, a in enumerate(arrays)]
    else:
        raise ValueError(f"arrays must be a dict or a list of arrays, got {type(arrays).__name__}")
    if not items:
        raise ValueError("arrays must not be empty")
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
    if not isinstance(out_hw, Sequence) or len(out_hw) != 2 or not all(is_int(s) and s > 0 for s in out_hw):
        raise ValueError(f"out_size must be a positive int or (h, w), got {out_size!r}")
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
        trimap = _resize(trimap, (h, w), cv2.INTER_NEAREST)
        items = [(name, _resize(a, (h, w), flag(name))) for name, a in items]
    top, left = _choose_top_left((trimap > 0) & (trimap < 255), crop, crop, rng)
    out = [(name, _resize(a[top:top + crop, left:left + crop], out_hw, flag(name))) for name, a in items]
    if isinstance(arrays, Mapping):
        return dict(out)
    return [a for _, a in out]

"""torchvision's ``ColorJitter`` on PIL images, as mmedit 0.16.1's ``ColorJitter`` pipeline runs it,
in numpy (no torchvision, no PIL at training time).

mmedit's pipeline (``datasets/pipelines/augmentation.py``) draws one seed per sample, and for
every frame of every key it calls ``torch.manual_seed(seed)`` and then
``torchvision.transforms.ColorJitter`` on ``Image.fromarray(frame)``, so all frames get the same
factors and the same order. torchvision's ``get_params`` draws, from torch's generator:
``randperm(4)`` (the order of brightness, contrast, saturation, hue), then a uniform factor for
each enabled adjustment, in that fixed order: brightness and contrast and saturation from
``[max(0, 1 - x), 1 + x]``, hue from ``[-x, x]`` (an adjustment whose range is the identity is
off and draws nothing). :func:`jitter_params` reproduces those draws from the seed with a
``torch.Generator`` (so a seed gives mmedit's factors exactly); :func:`apply_jitter` applies
them with the integer / float32 arithmetic of Pillow's C code, which is what the zoo trained on:

* brightness: ``Image.blend(black, img, f)``;
* contrast: blend with a flat grey at ``int(mean(L) + 0.5)`` (``ImageStat`` over the image's
  ``L`` conversion);
* saturation: blend with the image's ``L`` conversion;
* hue: RGB -> Pillow's 8-bit HSV, ``H += uint8(int32(f * 255))`` with wrap-around, HSV -> RGB;
* ``L`` is ``(19595 R + 38470 G + 7471 B + 32768) >> 16``; ``blend`` computes
  ``a + f * (b - a)`` in float32 and truncates (clipping to 0..255 when extrapolating).

``tests/trainers/test_vfi_sampler.py`` checks each step against Pillow itself and the whole
transform against goldens made by mmedit's pipeline (``tests/golden/make_vfi_goldens.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


@dataclass(frozen=True)
class JitterParams:
    """One draw of torchvision's ``ColorJitter.get_params``: the order (a permutation of 0..3)
    and the factors (None: that adjustment is off)."""

    order: tuple[int, ...]
    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue: float | None


def _range(value: float, centre: float, lower: float | None) -> tuple[float, float] | None:
    """torchvision's ``_check_input`` for a scalar: ``[centre - v, centre + v]`` (clamped at
    ``lower``); None when that is the identity."""
    if value < 0:
        raise ValueError(f"colour jitter amounts must be >= 0, got {value}")
    lo = centre - value if lower is None else max(lower, centre - value)
    hi = centre + value
    return None if lo == hi == centre else (lo, hi)


def jitter_params(seed: int, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                  hue: float = 0.0) -> JitterParams:
    """The factors torchvision draws after ``torch.manual_seed(seed)`` (see the module docstring)."""
    import torch

    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue jitter must be in [0, 0.5], got {hue}")
    ranges = [_range(brightness, 1.0, 0.0), _range(contrast, 1.0, 0.0), _range(saturation, 1.0, 0.0),
              _range(hue, 0.0, None)]
    g = torch.Generator().manual_seed(int(seed))
    order = tuple(int(i) for i in torch.randperm(4, generator=g))
    factors = [None if r is None else float(torch.empty(1).uniform_(r[0], r[1], generator=g)) for r in ranges]
    return JitterParams(order, *factors)


def luma(img: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> ``L``: ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16`` (uint8 HxW)."""
    x = img.astype(np.int32)
    return ((x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def blend(a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    """Pillow's ``Image.blend(a, b, factor)`` on uint8: ``a + factor * (b - a)`` in float32, truncated."""
    f = np.float32(factor)
    if f == 0:
        return a.copy()
    if f == 1:
        return b.copy()
    out = a.astype(np.float32) + f * (b.astype(np.int32) - a.astype(np.int32)).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    return blend(np.zeros_like(img), img, factor)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    gray = luma(img)
    mean = int(int(gray.sum(dtype=np.int64)) / gray.size + 0.5)
    return blend(np.full_like(img, mean), img, factor)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    return blend(np.repeat(luma(img)[..., None], 3, axis=-1), img, factor)


def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("HSV")``: 8-bit H, S, V with its float32 / double arithmetic."""
    rgb = img.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc, minc = rgb.max(-1), rgb.min(-1)
    grey = maxc == minc
    cr = np.where(grey, 1, maxc - minc).astype(np.float32)
    s = cr / np.where(maxc == 0, 1, maxc).astype(np.float32)
    rc, gc, bc = ((maxc - c).astype(np.float32) / cr for c in (r, g, b))
    h = np.where(r == maxc, (bc - gc).astype(np.float64),
                 np.where(g == maxc, (2.0 + rc.astype(np.float64) - bc), (4.0 + gc.astype(np.float64) - rc)))
    h = h.astype(np.float32).astype(np.float64)  # stored in a C float
    h = np.fmod(h / 6.0 + 1.0, 1.0).astype(np.float32).astype(np.float64)
    uh = np.clip((h * 255.0).astype(np.int64), 0, 255)
    us = np.clip((s.astype(np.float64) * 255.0).astype(np.int64), 0, 255)
    return np.stack([np.where(grey, 0, uh), np.where(grey, 0, us), maxc], -1).astype(np.uint8)


def _c_round(x: np.ndarray) -> np.ndarray:
    """C's ``round`` for x >= 0 (halves away from zero, not numpy's to-even)."""
    fl = np.floor(x)
    return np.where(x - fl >= 0.5, fl + 1, fl).astype(np.int64)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Pillow's HSV -> RGB conversion (8-bit in and out)."""
    h, s, v = (hsv[..., i].astype(np.float64) for i in range(3))
    i = np.floor(h * 6.0 / 255.0).astype(np.int64)
    f = (h * 6.0 / 255.0 - i).astype(np.float32)
    fs = (s / 255.0).astype(np.float32)
    p = np.clip(_c_round(v * (1.0 - fs.astype(np.float64))), 0, 255)
    q = np.clip(_c_round(v * (1.0 - (fs * f).astype(np.float64))), 0, 255)
    t = np.clip(_c_round(v * (1.0 - fs.astype(np.float64) * (1.0 - f.astype(np.float64)))), 0, 255)
    vv = hsv[..., 2].astype(np.int64)
    sector = i % 6
    choices = [np.stack(c, -1) for c in ((vv, t, p), (q, vv, p), (p, vv, t), (p, q, vv), (t, p, vv), (vv, p, q))]
    out = np.select([(sector == k)[..., None] for k in range(6)], choices)
    grey = (hsv[..., 1] == 0)[..., None]
    return np.where(grey, vv[..., None], out).astype(np.uint8)


def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    hsv = rgb_to_hsv(img)
    hsv[..., 0] = hsv[..., 0] + np.int32(factor * 255).astype(np.uint8)  # wraps around, as torchvision's
    return hsv_to_rgb(hsv)


_OPS = {BRIGHTNESS: ("brightness", adjust_brightness), CONTRAST: ("contrast", adjust_contrast),
        SATURATION: ("saturation", adjust_saturation), HUE: ("hue", adjust_hue)}


def apply_jitter(img: np.ndarray, params: JitterParams) -> np.ndarray:
    """One HxWx3 uint8 RGB image jittered with ``params`` (torchvision's order of operations)."""
    for op in params.order:
        name, fn = _OPS[op]
        factor = getattr(params, name)
        if factor is not None:
            img = fn(img, factor)
    return img

"""Degradation presets: GT image -> LQ image, one pure function each.

Every preset has the signature ``(gt, *, scale, rng) -> lq | {"lq": lq, "gt": target}``
where ``gt`` is a float32 ``HxWx3`` RGB image in [0, 1], ``lq`` is float32
``(H/scale)x(W/scale)x3`` in [0, 1] and ``rng`` is the sample's ``numpy.random.Generator``.
A preset whose training target is not the input GT (Real-ESRGAN trains on the
unsharp-masked GT) returns a dict with the replacement target under ``"gt"``; the others
return the LQ array alone. ``degrade`` gives the LQ of either form, ``degrade_pair`` the
(LQ, target) pair. The classic BI and BD presets are deterministic and ignore ``rng``;
they keep it so that stochastic presets (Real-ESRGAN, RealBasicVSR) are interchangeable
with them. ``PRESETS`` is the only registry.

Clip presets (``CLIP_PRESETS``: ``realbasicvsr``) have the same signature with a clip for
``gt``: ``T`` frames as a ``[T, H, W, 3]`` array (or a list of ``HxWx3`` frames); they return
``{"lq": [T', H/scale, W/scale, 3], "gt": [T', H, W, 3]}`` (RealBasicVSR mirrors the clip,
``T' = 2T``, and sharpens the GT). ``degrade`` / ``degrade_pair`` accept both kinds and say
so clearly when an image meets a clip preset or the other way round.
"""

from __future__ import annotations

from typing import Callable, Union

import cv2
import numpy as np

from degradations.blur import filter2d, gaussian_kernel2d
from degradations.checks import check_gt
from degradations.glean import glean
from degradations.matlab_resize import imresize
from degradations.realbasicvsr import realbasicvsr_clip
from degradations.realesrgan import realesrgan

__all__ = ["CLIP_PRESETS", "IMAGE_PRESETS", "PRESETS", "Preset", "bicubic", "bd", "degrade", "degrade_pair"]

Preset = Callable[..., Union[np.ndarray, dict]]

_BD_SIGMA = 1.6
_BD_KERNEL_SIZE = 12
_BD_ANCHOR = (5, 5)


def bicubic(gt: np.ndarray, *, scale: int, rng: np.random.Generator) -> np.ndarray:
    """BI: MATLAB bicubic downscale by ``1/scale``, quantised to 8-bit levels.

    Matches the zoo's LR PNGs (DIV2K LR, Set5/14 LRbicx*, Vimeo-90K BIx4):
    ``round(clip(imresize(gt, 1/scale), 0, 1) * 255) / 255``.

    Args:
        gt: float32 ``HxWx3`` RGB in [0, 1], H and W multiples of ``scale``.
        scale: Integer downscale factor.
        rng: Unused (deterministic preset).

    Returns:
        float32 ``(H/scale)x(W/scale)x3`` in [0, 1].
    """
    check_gt(gt, scale)
    h, w = gt.shape[:2]
    lq = imresize(gt.astype(np.float64), scale=1.0 / scale)
    assert lq.shape[:2] == (h // scale, w // scale), lq.shape
    return (np.round(np.clip(lq, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def bd(gt: np.ndarray, *, scale: int, rng: np.random.Generator) -> np.ndarray:
    """BD: Gaussian blur (sigma 1.6, 12x12) then keep every 4th pixel, x4 only.

    As in the zoo's Vimeo-90K/Vid4/UDM10 BDx4 data: a normalised 12x12 Gaussian, applied
    with ``cv2.filter2D`` at anchor (5, 5) (the kernel centre is half a pixel below-right
    of the output pixel, like MATLAB ``imfilter`` with an even kernel) and replicated
    borders; rows and columns ``1, 5, 9, ...`` kept (``[1:-1:4]``); quantised with
    ``floor(x * 255 + 0.5) / 255``.

    Args:
        gt: float32 ``HxWx3`` RGB in [0, 1], H and W multiples of 4.
        scale: Must be 4; the reference data exists only for x4.
        rng: Unused (deterministic preset).

    Returns:
        float32 ``(H/4)x(W/4)x3`` in [0, 1].
    """
    if scale != 4:
        raise ValueError(f"bd preset is defined for scale 4 only, got scale {scale!r}")
    check_gt(gt, scale)
    kernel = gaussian_kernel2d(_BD_KERNEL_SIZE, _BD_SIGMA)
    blurred = filter2d(gt.astype(np.float64), kernel, anchor=_BD_ANCHOR, border=cv2.BORDER_REPLICATE)
    lq = blurred[1:-1:scale, 1:-1:scale]
    return (np.floor(np.clip(lq, 0.0, 1.0) * 255.0 + 0.5) / 255.0).astype(np.float32)


PRESETS: dict[str, Preset] = {
    "bicubic": bicubic,
    "bd": bd,
    "realesrgan": realesrgan,
    "realbasicvsr": realbasicvsr_clip,
    "glean": glean,
}

#: Presets that degrade a clip ``[T, H, W, 3]`` instead of one image.
CLIP_PRESETS = frozenset({"realbasicvsr"})
#: Presets that degrade one ``HxWx3`` image.
IMAGE_PRESETS = frozenset(PRESETS) - CLIP_PRESETS


def _run(name: str, gt: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray | dict:
    try:
        preset = PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown degradation preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
    ndim = getattr(gt, "ndim", None)
    if name in CLIP_PRESETS and ndim is not None and ndim != 4:
        raise ValueError(f"preset {name!r} degrades clips: gt must be [T, H, W, 3], got shape {gt.shape}")
    if name not in CLIP_PRESETS and ndim == 4:
        raise ValueError(f"preset {name!r} degrades single images: gt must be HxWx3, got a clip {gt.shape}")
    return preset(gt, scale=scale, rng=rng)


def degrade(name: str, gt: np.ndarray, *, scale: int, rng: np.random.Generator) -> np.ndarray:
    """Apply the preset ``name`` to ``gt`` and return the LQ image.

    A replacement training target the preset may also return (``{"lq", "gt"}`` form) is
    dropped; use ``degrade_pair`` to get it.

    Raises:
        ValueError: for an unknown preset name (the message lists the known ones) or an
            invalid ``gt`` / ``scale``.
    """
    out = _run(name, gt, scale, rng)
    return out["lq"] if isinstance(out, dict) else out


def degrade_pair(
    name: str, gt: np.ndarray, *, scale: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the preset ``name`` and return ``(lq, target)``.

    ``target`` is the preset's replacement GT (e.g. Real-ESRGAN's unsharp-masked GT) when
    it returns one, else ``gt`` itself.

    Raises:
        ValueError: as ``degrade``.
    """
    out = _run(name, gt, scale, rng)
    if isinstance(out, dict):
        return out["lq"], out.get("gt", gt)
    return out, gt

"""Inpainting metrics L1, PSNR and SSIM as MMEditing 0.16.1's inpaintors compute them at test time.

spec/model_zoo.md ("Metrics", inpainting line); the reference is ``forward_test`` of
``OneStageInpaintor`` (Global&Local's ``GLInpaintor`` inherits it), ``TwoStageInpaintor``
(DeepFillv2, and DeepFillv1's subclass), ``PConvInpaintor`` and ``AOTInpaintor``
(``mmedit/models/inpaintors/``); all four compute the same three figures, AOT-GAN's L1 aside.
Every zoo config lists ``metrics=['l1', 'psnr', 'ssim']`` except PConv stage 1 (CelebA, Places)
and Global&Local Places (``['l1']`` only). Test batches hold one image; a dataset figure is the
mean of per-image scores.

Input convention of :func:`inpainting_scores` (one sample, what the task has at test time):

* ``pred``: the generator's raw output (stage 2 for two-stage nets), **not** clamped and **not**
  composited: a float32 ``torch.Tensor`` ``[3, H, W]`` or ``[1, 3, H, W]``, RGB, on the network's
  ``[-1, 1]`` scale. Values outside ``[-1, 1]`` are allowed (L1 sees them; PSNR/SSIM clamp them).
* ``gt``: the ground truth the generator was given, same shape, RGB, ``[-1, 1]``. Bit-exact parity
  with the reference needs mmcv's normalisation of the 8-bit image, ``float32((k - 127.5) / 127.5)``
  (:func:`gt_to_model_range` builds it from a ``[0, 1]`` batch image);
  ``2 * x - 1`` differs in the last float32 bit for some levels, which moves L1 by ~1e-8.
* ``mask``: ``[1, H, W]``, ``[H, W]`` or ``[1, 1, H, W]``, values exactly 0 or 1, **1 = hole**
  (the pixels the network fills), any float/bool/int dtype.

Processing order (the reference's, step for step; tensors are first flipped to BGR, the order
the reference's tensors are in, so that float32 sums add in the same order):

1. composite ``fake = pred * mask + gt * (1 - mask)`` in float32 (the reference composites with
   ``masked_img = gt * (1 - mask)``; for a 0/1 mask that is ``gt`` outside the hole, bit for bit,
   and AOT-GAN's ``masked_img + mask`` changes only the hole, which the composite discards);
2. PSNR and SSIM on 8-bit images (``tensor2img(x, min_max=(-1, 1))``): clamp to ``[-1, 1]``,
   ``(x + 1) / 2``, ``* 255``, round half to even, uint8; of ``fake`` and of ``gt``; whole image,
   no border crop, all three channels (channel order does not change either figure).
   PSNR: MSE as a **float32** ``np.mean`` over ``HxWx3`` (the reference casts to float32; this
   is not :func:`trainers.metrics.psnr`, which sums in float64 and differs in the ~7th digit),
   then ``20 log10(255 / sqrt(MSE))`` with the square root in float32 (numpy 1.x scalar rules);
   ``inf`` when the images are equal. SSIM: :func:`trainers.metrics.ssim` (float64, 11x11
   Gaussian, valid region, mean over the channels in ``tensor2img``'s output order R, G, B);
3. L1 (``L1Evaluation``, ``l1_loss(pred, gt, weight=mask, reduction='mean')``), on the
   ``[-1, 1]`` scale, unclamped, in float32 torch: ``sum(|pred - gt| * mask) / (sum(mask) * 3 +
   1e-12)``, the raw output ``pred`` (not the composite; the same inside the hole). This is the
   number MMEditing 0.16.1's code logs (about 0.1 for a decent model). The zoo tables' "l1 error"
   column (6.677, 11.019, ...) is on another scale: the spec's ``sum|d| mask / (sum mask * C) *
   100`` on ``[0, 1]`` equals ``50 *`` this value (half the value range, times 100); multiply
   when comparing with a table. AOT-GAN passes the composite and no mask, so its L1 is the mean of
   ``|fake - gt|`` over every pixel and channel (``l1_region="image"``).

An empty mask is rejected here. The reference does not fail on one: L1 is ``0 / 1e-12 = 0``,
the composite equals ``gt``, PSNR ``inf`` and SSIM ``1`` — a sample that would silently pull a
dataset mean up, so it is an input error for restoray.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from trainers.metrics import ssim

__all__ = ["AREA_BUCKETS", "gt_to_model_range", "inpainting_scores", "mask_area_bucket", "to_uint8_image"]

L1Region = Literal["hole", "image"]

_EPS = 1e-12  # mmedit mask_reduce_loss
_BGR = [2, 1, 0]

#: AOT-GAN's hole-area buckets (the PConv test-mask set): ``(lo, hi]`` hole-to-image ratios.
AREA_BUCKETS = tuple(f"{10 * k}-{10 * k + 10}%" for k in range(10))


def _as_image(name: str, t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"{name} must be [3, H, W] or [1, 3, H, W] RGB, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a float tensor on the [-1, 1] scale, got {t.dtype}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or inf")
    return t.detach().to("cpu", torch.float32)


def _as_mask(mask, shape: tuple[int, int]) -> torch.Tensor:
    """``[1, H, W]`` float32 0/1 mask (1 = hole); raises on anything else."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    m = mask.detach().to("cpu")
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] != 1 or tuple(m.shape[1:]) != shape:
        raise ValueError(f"mask must be [H, W], [1, H, W] or [1, 1, H, W] with H, W = {shape}, got {tuple(mask.shape)}")
    m = m.to(torch.float32)
    if not ((m == 0) | (m == 1)).all():
        raise ValueError("mask must be binary (0 = valid, 1 = hole); found other values")
    if not m.any():
        raise ValueError("mask has no hole pixel (the reference would report L1 0, PSNR inf, SSIM 1)")
    return m


def gt_to_model_range(img01: torch.Tensor) -> torch.Tensor:
    """A ``[0, 1]`` batch image of 8-bit levels -> ``[-1, 1]`` exactly as mmcv normalises it.

    ``k = round(x * 255)``, then ``(k - 127.5) * (1 / 127.5)`` in float64, stored as float32
    (``mmcv.imnormalize`` with mean = std = 127.5: ``cv2.subtract`` then ``cv2.multiply`` by the
    float64 reciprocal into the float32 image). Shape and channel order are kept.
    """
    if not isinstance(img01, torch.Tensor) or not img01.is_floating_point():
        raise ValueError("gt_to_model_range expects a float tensor on [0, 1]")
    k = torch.round(img01.detach().to(torch.float64) * 255)
    if (k < 0).any() or (k > 255).any():
        raise ValueError("gt_to_model_range expects values in [0, 1]")
    return ((k - 127.5) * (1 / 127.5)).to(torch.float32)


def to_uint8_image(t_bgr: torch.Tensor) -> np.ndarray:
    """MMEditing 0.16.1 ``tensor2img(t, min_max=(-1, 1))`` of a ``[3, H, W]`` BGR tensor.

    Returns the ``HxWx3`` uint8 image in RGB order, with the reference's memory layout (a
    transposed view of a CHW copy), so numpy reductions over it add in the reference's order.
    """
    x = t_bgr.float().clamp(-1, 1)
    x = (x - -1) / (1 - -1)
    img = np.transpose(x.numpy()[_BGR, :, :], (1, 2, 0))
    return (img * 255.0).round().astype(np.uint8)


def _psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """mmedit 0.16.1 ``psnr`` (crop 0, no colour conversion) under numpy 1.x scalar rules."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    mse = np.mean((a - b) ** 2)  # float32 accumulation, as the reference
    if mse == 0:
        return float("inf")
    root = np.sqrt(np.float32(mse), dtype=np.float32)
    return float(20.0 * np.log10(np.float64(255.0) / np.float64(root)))


def _l1(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None) -> float:
    """mmedit ``l1_loss(pred, gt, weight, reduction='mean')`` on ``[1, C, H, W]`` tensors."""
    loss = (pred - gt).abs()
    if weight is None:
        return float(loss.mean())
    loss = loss * weight
    return float(loss.sum() / (weight.expand_as(loss).sum() + _EPS))


def inpainting_scores(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    l1_region: L1Region = "hole",
) -> dict[str, float]:
    """``{"l1", "psnr", "ssim"}`` of one sample, as MMEditing 0.16.1's inpaintors compute them.

    Args:
        pred: raw generator output, ``[3, H, W]`` or ``[1, 3, H, W]`` RGB float on ``[-1, 1]``
            (unclamped, not composited). See the module docstring for the exact convention.
        gt: ground truth, same shape and scale.
        mask: ``[H, W]``, ``[1, H, W]`` or ``[1, 1, H, W]``, exactly 0/1, 1 = hole.
        l1_region: ``"hole"`` (every zoo inpaintor but AOT-GAN: mean ``|pred - gt|`` over the
            hole's pixels and channels) or ``"image"`` (AOT-GAN: mean ``|composite - gt|`` over
            the whole image).

    Returns:
        Python floats; ``l1`` on the ``[-1, 1]`` scale (the reference's logged value, 1/50 of the
        spec's percentage on ``[0, 1]``), ``psnr`` in dB (``inf`` for a perfect composite),
        ``ssim`` in ``[-1, 1]``.

    Raises:
        ValueError: shapes that disagree or are not one RGB image of at least 11x11 pixels
            (the reference's SSIM would average an empty map to NaN), non-float or non-finite
            images, a mask that is not 0/1 or has no hole, an unknown ``l1_region``.
    """
    if l1_region not in ("hole", "image"):
        raise ValueError(f"l1_region must be 'hole' or 'image', got {l1_region!r}")
    pred, gt = _as_image("pred", pred), _as_image("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    if min(gt.shape[1:]) < 11:
        raise ValueError(f"images must be at least 11x11 (SSIM's window), got {tuple(gt.shape[1:])}")
    m = _as_mask(mask, tuple(gt.shape[1:]))
    # The reference's tensors are BGR ([1, 3, H, W]); flip so float sums run in its order.
    pred, gt, m = pred[_BGR][None], gt[_BGR][None], m[None]
    masked = gt * (1.0 - m)
    fake = pred * m + masked * (1.0 - m)
    fake_u8, gt_u8 = to_uint8_image(fake[0]), to_uint8_image(gt[0])
    l1 = _l1(pred, gt, m) if l1_region == "hole" else _l1(fake, gt, None)
    return {"l1": l1, "psnr": _psnr_u8(fake_u8, gt_u8), "ssim": ssim(fake_u8, gt_u8)}


def mask_area_bucket(mask) -> str:
    """AOT-GAN's hole-area bucket of a mask: ``"0-10%"`` ... ``"90-100%"``.

    The hole ratio ``r = #hole / #pixels`` falls in ``(lo, hi]`` (the PConv paper's irregular
    test-mask categories ``(0.01, 0.1], (0.1, 0.2], ..., (0.5, 0.6]``, of which AOT-GAN's table
    reports ``(0.5, 0.6]`` as "50-60%"): exactly 50 % is "40-50%", a hair above is "50-60%".
    Ratios up to 10 % (the PConv set starts at 1 %) are "0-10%". Computed in integers, so the
    boundaries are exact.

    Args:
        mask: array or tensor, any shape with at least one pixel (a channel axis of size 1 counts
            once per pixel, as every element is a pixel), values exactly 0/1, 1 = hole.

    Raises:
        ValueError: a non-binary or empty-hole mask.
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.size == 0:
        raise ValueError("mask has no pixels")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("mask must be binary (0 = valid, 1 = hole); found other values")
    hole, total = int(np.count_nonzero(m)), int(m.size)
    if hole == 0:
        raise ValueError("mask has no hole pixel")
    k = -(-10 * hole // total) - 1  # ceil(10 r) - 1: (lo, hi] buckets
    return AREA_BUCKETS[k]


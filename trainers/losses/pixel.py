"""Pixel losses (L1, MSE, Charbonnier) with MMEditing 0.16's weighting and reduction.

Every zoo model's pixel term is one of these three. mmedit lets a loss take an
element-wise ``weight`` (an inpainting hole/valid mask, a matting unknown-region
mask) and then reduces the weighted loss by what the mask covers rather than by
the element count. That reduction (:func:`mask_reduce`) is kept exactly,
including its less obvious corners:

* ``reduction='mean'`` with a weight divides by ``weight.sum() + 1e-12``, where a
  ``[N,1,H,W]`` weight is first expanded to the loss's channels; so a one-channel
  mask counts each pixel once per channel.
* ``sample_wise=True`` (only with a weight and ``'mean'``) divides each sample by its
  own mask area and then averages over samples: small masks weigh as much as big ones.
* ``reduction='none'`` with a weight returns ``loss * weight`` unreduced;
  ``'sum'`` sums it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")
_MASK_EPS = 1e-12  # mmedit's guard against an all-zero mask


def mask_reduce(loss: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                sample_wise: bool = False) -> Tensor:
    """Applies an element-wise weight and reduces, as mmedit's ``mask_reduce_loss``.

    Args:
        loss: Element-wise loss, ``[N,C,H,W]``.
        weight: Optional element-wise weight, ``[N,1,H,W]`` or ``[N,C,H,W]``.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        sample_wise: With a weight and ``'mean'``: average per sample over its mask first.

    Returns:
        The reduced loss (a scalar unless ``reduction='none'``).

    Raises:
        ValueError: For an unknown reduction or a weight whose shape does not fit.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
    if weight is None:
        return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()
    if weight.dim() != loss.dim() or weight.size(1) not in (1, loss.size(1)):
        raise ValueError(f"weight of shape {list(weight.shape)} does not fit a loss of shape {list(loss.shape)}")
    loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    weight = weight.expand_as(loss)
    if sample_wise:
        area = weight.sum(dim=[1, 2, 3], keepdim=True)
        return (loss / (area + _MASK_EPS)).sum() / area.size(0)
    return loss.sum() / (weight.sum() + _MASK_EPS)


def l1_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
            sample_wise: bool = False) -> Tensor:
    """Mean absolute error; see :func:`mask_reduce` for ``weight``, ``reduction`` and ``sample_wise``."""
    return mask_reduce(F.l1_loss(pred, target, reduction="none"), weight, reduction, sample_wise)


def mse_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
             sample_wise: bool = False) -> Tensor:
    """Mean squared error; see :func:`mask_reduce` for ``weight``, ``reduction`` and ``sample_wise``."""
    return mask_reduce(F.mse_loss(pred, target, reduction="none"), weight, reduction, sample_wise)


def charbonnier_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                     sample_wise: bool = False, eps: float = 1e-12) -> Tensor:
    """``sqrt((pred - target)**2 + eps)``, a differentiable L1 (LapSRN; DIM's alpha loss).

    ``eps`` is mmedit's 1e-12 by default: so small that near zero the gradient is as
    sharp as L1's, which is what the zoo models were trained with.
    """
    return mask_reduce(torch.sqrt((pred - target) ** 2 + eps), weight, reduction, sample_wise)


PIXEL_LOSSES: dict[str, Callable[..., Tensor]] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "charbonnier": charbonnier_loss,
}


def pixel_loss(name: str, pred: Tensor, target: Tensor, weight: Tensor | None = None, *,
               loss_weight: float = 1.0, reduction: str = "mean", sample_wise: bool = False) -> Tensor:
    """The pixel loss called ``name``, times ``loss_weight`` (mmedit's ``L1Loss``/``MSELoss``/``CharbonnierLoss``).

    Args:
        name: ``'l1'``, ``'mse'`` or ``'charbonnier'``.
        pred: Network output, ``[N,C,H,W]``.
        target: Ground truth of the same shape.
        weight: Optional element-wise weight (mask), ``[N,1,H,W]`` or ``[N,C,H,W]``.
        loss_weight: Factor on the reduced loss (the config's ``weight``).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        sample_wise: See :func:`mask_reduce`.

    Raises:
        ValueError: For an unknown loss name or reduction.
    """
    if name not in PIXEL_LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(PIXEL_LOSSES))}")
    return loss_weight * PIXEL_LOSSES[name](pred, target, weight, reduction, sample_wise)

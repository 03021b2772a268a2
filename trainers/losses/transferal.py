"""TTSR's transferal perceptual loss (mmedit 0.16's ``TransferalPerceptualLoss``).

The LTE features of the SR output, level by level, against the textures the search transferred
from the reference: ``weight * sum_level criterion(map * soft, texture * soft)``. With
``use_attention`` the coarsest level is weighted by ``sigmoid(soft_attention)`` and the finer ones
by the soft attention bicubically upsampled *without* the sigmoid -- the reference's quirk, kept.
The zoo's TTSR-GAN sets ``use_attention=False`` (all weights 1) and ``criterion='mse'``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torch.nn import functional as F


def transferal_perceptual_loss(maps: list[Tensor], soft_attention: Tensor, textures: list[Tensor],
                               weight: float = 1.0, use_attention: bool = True,
                               criterion: Literal["l1", "mse"] = "mse") -> Tensor:
    """Args: ``maps`` and ``textures`` coarsest first (same shapes per level); ``soft_attention``
    ``[N,1,h,w]`` at the coarsest level's size."""
    if criterion not in ("l1", "mse"):
        raise ValueError(f"criterion: 'l1' or 'mse', got {criterion!r}")
    loss_fn = F.l1_loss if criterion == "l1" else F.mse_loss
    h, w = soft_attention.shape[-2:]
    total = 0
    for i, (m, t) in enumerate(zip(maps, textures)):
        if not use_attention:
            soft = 1.0
        elif i == 0:
            soft = soft_attention.sigmoid()
        else:
            soft = F.interpolate(soft_attention, size=(h * 2 ** i, w * 2 ** i), mode="bicubic", align_corners=False)
        total = total + loss_fn(m * soft, t * soft)
    return total * weight

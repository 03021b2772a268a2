"""Pixel losses of the PSNR-oriented zoo models (mean reduction, as mmedit's defaults)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps).mean()


LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss, "charbonnier": charbonnier}


def pixel_loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name](pred, target)

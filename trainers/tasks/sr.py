"""The PSNR-oriented image super-resolution family (SRCNN, EDSR, RDN, MSRResNet, ESRGAN-PSNR).

Training: one pixel loss between the network output and GT. Evaluation follows
mmedit's conventions (spec/model_zoo.md "Metrics"): per-sample PSNR/SSIM on RGB
or Y with ``crop_border``, on de-normalised outputs clamped to [0, 255],
averaged over samples by the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from trainers.losses import pixel_loss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.tiling import tiled_forward


class SRTask:
    def __init__(self, cfg: dict[str, Any]):
        self.loss_name = cfg["loss"]["name"]
        self.loss_weight = cfg["loss"]["weight"]
        self.scale = cfg["data"]["scale"]
        self.eval_cfg = cfg["eval"]

    def train_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Forward + loss; the caller owns backward, clipping and the optimizer."""
        pred = model(batch["lq"])
        loss = self.loss_weight * pixel_loss(self.loss_name, pred.float(), batch["gt"])
        return loss, {f"loss/{self.loss_name}": loss.detach()}

    @torch.no_grad()
    def predict(self, model: nn.Module, lq: torch.Tensor) -> torch.Tensor:
        return tiled_forward(
            model, lq, self.scale, self.eval_cfg["tile"], self.eval_cfg["tile_overlap"]
        )

    def score(self, pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM of one ``[C,H,W]`` prediction against its GT, mmedit-style."""
        rnd = self.eval_cfg["round"]
        p, g = tensor_to_image(pred, round=rnd), tensor_to_image(gt, round=rnd)
        kw = dict(crop_border=self.eval_cfg["crop_border"], convert_to=self.eval_cfg["convert_to"])
        return {"psnr": psnr(p, g, **kw), "ssim": ssim(p, g, **kw)}


def image_grid(lq: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """LQ (nearest-upsampled to GT size) | output | GT, as one HxWx3 uint8 image."""
    scale_h = gt.shape[-2] // lq.shape[-2]
    lq_up = lq.repeat_interleave(scale_h, dim=-2).repeat_interleave(scale_h, dim=-1)
    lq_up = lq_up[..., : gt.shape[-2], : gt.shape[-1]]
    row = torch.cat([lq_up, pred.clamp(0, 1), gt], dim=-1)
    return (row.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)

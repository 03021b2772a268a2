"""The PSNR-oriented image super-resolution family (SRCNN, EDSR, RDN, MSRResNet, ESRGAN-PSNR,
Real-ESRNet).

Training: one pixel loss between the generator's output and GT (the unsharp-masked GT where
``sharpened_gt_in`` says so, as Real-ESRNet). Evaluation follows mmedit's conventions
(spec/model_zoo.md "Metrics"): per-sample PSNR/SSIM on RGB or Y with ``crop_border``, on
outputs clamped to [0, 1] (rounded to uint8 with ``round``, the 0.x convention), averaged over
samples by the loop.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from degradations.matlab_resize import imresize
from trainers.device_degradation import DeviceDegradation
from trainers.losses import pixel_loss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.samplers.sr import USM_PRESETS, SRDataConfig, SRSampler
from trainers.strict import Strict
from trainers.tasks.common import image_batch, optimizer_step, to_batch, to_uint8_image
from trainers.tiling import tiled_forward


class PixelLossConfig(Strict):
    name: Literal["l1", "mse", "charbonnier"] = "l1"
    weight: float = Field(1.0, ge=0)


class SREvalConfig(Strict):
    crop_border: int = Field(0, ge=0)
    convert_to: Literal["rgb", "y"] = "rgb"
    round: bool = False  # 0.x convention (round to uint8) vs 1.x (float)
    ssim_channels: Literal["mean", "blue"] = Field(
        "mean",
        description="mean: SSIM averaged over R, G, B (correct). blue: the blue channel only, which is what "
        "mmedit 0.x's ssim computes for RGB with crop_border > 0 (its img[c:-c, c:-c, None] crop on a BGR "
        "array leaves one channel); the zoo tables' RGB SSIM of the cropped SR benchmarks are that figure",
    )
    tile: int | None = Field(None, ge=16, description="tile LQ inputs larger than this")
    tile_overlap: int = Field(16, ge=0)


class SRConfig(Strict):
    """``task:`` of the PSNR image SR family."""

    name: Literal["sr"] = "sr"
    data: SRDataConfig = SRDataConfig()
    pixel: PixelLossConfig = PixelLossConfig()
    sharpened_gt_in: list[Literal["pixel"]] = Field(
        default_factory=list, description="losses that train against the unsharp-masked GT (Real-ESRNet: [pixel])"
    )
    eval: SREvalConfig = SREvalConfig()

    _sharpened = field_validator("sharpened_gt_in")(classmethod(lambda cls, v, info: check_sharpened(v, info)))


def check_sharpened(losses: list[str], info: ValidationInfo) -> list[str]:
    """``sharpened_gt_in`` needs a preset that makes ``gt_usm`` (declare it after ``data``)."""
    data = info.data.get("data")
    if losses and data is not None and data.degradation.preset not in USM_PRESETS:
        raise ValueError(
            f"needs a preset that makes the unsharp-masked GT ({', '.join(USM_PRESETS)}), "
            f"got {data.degradation.preset!r}"
        )
    return losses


def check_scale(data: SRDataConfig, nets: dict[str, dict[str, Any]]) -> None:
    """The generator must upscale by ``task.data.scale``."""
    factor = nets.get("generator", {}).get("upscale_factor")
    if factor is not None and factor != data.scale:
        raise ValueError(f"nets.generator.upscale_factor: is {factor} but task.data.scale is {data.scale}")


def image_grid(lq: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """LQ (nearest-upsampled to GT size) | output | GT, as one HxWx3 uint8 image."""
    scale_h = max(gt.shape[-2] // lq.shape[-2], 1)
    lq_up = lq.repeat_interleave(scale_h, dim=-2).repeat_interleave(scale_h, dim=-1)
    lq_up = lq_up[..., : gt.shape[-2], : gt.shape[-1]]
    return to_uint8_image(torch.cat([lq_up, pred.clamp(0, 1), gt], dim=-1))


class SRScores:
    """PSNR and SSIM of an image SR output, mmedit-style, for any family whose ``self.eval_cfg``
    has ``round``, ``crop_border``, ``convert_to`` and ``ssim_channels`` (SREvalConfig's fields)."""

    eval_cfg: Any

    def _images(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        r = self.eval_cfg.round
        return tensor_to_image(pred[0], round=r), tensor_to_image(batch["gt"][0], round=r)

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR and SSIM of the first ``[C,H,W]`` prediction against its GT, mmedit-style."""
        e = self.eval_cfg
        p, g = self._images(pred, batch)
        kw = dict(crop_border=e.crop_border, convert_to=e.convert_to)
        channels = e.ssim_channels if e.convert_to == "rgb" else "mean"
        return {"psnr": psnr(p, g, **kw), "ssim": ssim(p, g, **kw, channels=channels)}

    def score_conventions(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Both RGB SSIM conventions side by side (``restoray eval`` prints them): ``ssim_mean``
        (correct) and ``ssim_blue`` (mmedit 0.x's figure when ``crop_border > 0``)."""
        e = self.eval_cfg
        if e.convert_to != "rgb":
            return {}
        p, g = self._images(pred, batch)
        return {f"ssim_{c}": ssim(p, g, crop_border=e.crop_border, channels=c) for c in ("mean", "blue")}


class SREval(SRScores):
    """Sampling, prediction, scoring and preview shared by the image SR families."""

    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}

    def __init__(self, data: SRDataConfig, eval_cfg: SREvalConfig):
        self.data, self.eval_cfg = data, eval_cfg
        self.degrade_on_device = (
            DeviceDegradation(data.scale, data.out_size) if data.degradation.device == "gpu" else None
        )

    @staticmethod
    def sampler(cfg: Any) -> SRSampler:
        """Any SR family's ``task:`` section has the sampler's ``data``."""
        return SRSampler(cfg.data)

    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.degrade_on_device(raw) if self.degrade_on_device is not None else to_batch(raw)

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        e = self.eval_cfg
        return tiled_forward(nets["generator"], batch["lq"], self.data.scale, e.tile, e.tile_overlap)

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return image_grid(batch["lq"][0], pred[0], batch["gt"][0])

    infer_inputs: ClassVar[tuple[str, ...]] = ("image",)
    infer_batchable: ClassVar[bool] = True  # predict (tiled or not) takes B same-size images

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return image_batch(inputs["image"], "lq")

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return to_uint8_image(pred[0])

    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """MATLAB-bicubic upscaling of the LQ input, what every SR table compares against."""
        lq = batch["lq"][0].permute(1, 2, 0).cpu().numpy()
        up = np.clip(imresize(lq, scale=self.data.scale), 0, 1)
        gt_h, gt_w = batch["gt"].shape[-2:]
        return "bicubic", torch.from_numpy(up[:gt_h, :gt_w]).permute(2, 0, 1)[None].float()


class SRTask(SREval):
    """One generator, one pixel loss."""

    Config = SRConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the SR network"}

    def __init__(self, cfg: SRConfig):
        super().__init__(cfg.data, cfg.eval)
        self.cfg = cfg
        self.target = "gt_usm" if "pixel" in cfg.sharpened_gt_in else "gt"

    @staticmethod
    def check_nets(cfg: SRConfig, nets: dict[str, dict[str, Any]]) -> None:
        check_scale(cfg.data, nets)

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        pred = nets["generator"](batch["lq"])
        p = self.cfg.pixel
        loss = p.weight * pixel_loss(p.name, pred.float(), batch[self.target])
        optimizer_step(optimizers["generator"], loss)
        return {f"loss/{p.name}": loss.detach()}

"""LIIF: arbitrary-scale super-resolution with a local implicit image function.

Training (mmedit 0.16.1's ``LIIF`` restorer): the LQ patch and the sampled GT pixel values are
normalised with the config's ``rgb_mean``/``rgb_std`` (EDSR: DIV2K mean, std 1; RDN: 0.5/0.5),
the generator decodes the sampled queries (``coord``, ``cell``), and the pixel loss compares in
that normalised space (so the RDN run's L1 is twice the [0, 1] one, as in the reference).

Evaluation: one validation image is scored at every scale of ``eval.scales`` (the zoo's
2, 3, 4, 6, 18, 30): its PIL-bicubic LQ at that scale (the sampler), the whole target grid
decoded in chunks of the generator's ``eval_bsize`` queries (bounded memory), denormalised and
clamped, PSNR/SSIM with ``crop_border = scale`` on uint8-rounded RGB (0.x). Metrics are named per
scale (``psnr_x4``, ``ssim_x30``), so MLflow plots each. The prediction of a validation batch
packs the scales into one tensor, ``[B, S, 3, H, W]`` (scale ``i`` in the top-left
``round(h_lr * s) x round(w_lr * s)`` corner, zeros elsewhere).

Inference (``restoray infer --scale 3.5`` or ``--size WxH``): ``task.infer`` says the output size;
any real scale >= 1 works, since the decoder is queried on the target grid.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from trainers.losses import pixel_loss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.samplers.liif import LIIFDataConfig, LIIFSampler, make_coord, scale_key
from trainers.strict import Strict
from trainers.tasks.common import image_batch, optimizer_step, to_batch, to_uint8_image
from trainers.tasks.sr import PixelLossConfig

ZOO_SCALES = (2, 3, 4, 6, 18, 30)  # the zoo's evaluation scales; x4 first among the metrics (the reported one)
ARCHS = ("liif_edsr", "liif_rdn")


class LIIFNormConfig(Strict):
    """The LIIF restorer's ``rgb_mean``/``rgb_std`` (EDSR config: DIV2K mean, std 1; RDN: 0.5, 0.5)."""

    rgb_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rgb_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @field_validator("rgb_std")
    @classmethod
    def _positive(cls, v):
        if min(v) <= 0:
            raise ValueError(f"every std must be positive, got {list(v)}")
        return v


class LIIFEvalConfig(Strict):
    scales: list[int] = Field(default_factory=lambda: list(ZOO_SCALES),
                              description=f"scales every validation image is scored at (a subset of {ZOO_SCALES}); "
                              "crop_border is the scale")
    round: bool = True  # 0.x convention (round to uint8)
    ssim_channels: Literal["mean", "blue"] = Field(
        "mean", description="mean: SSIM over R, G, B; blue: mmedit 0.x's cropped-RGB figure (see task sr)")

    @field_validator("scales")
    @classmethod
    def _zoo_scales(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or not set(v) <= set(ZOO_SCALES):
            raise ValueError(f"must be distinct scales out of {list(ZOO_SCALES)}, got {v}")
        return v


class LIIFInferConfig(Strict):
    """Output size of ``restoray infer``: ``size`` (W, H) when given, else ``scale`` times the input."""

    scale: float = Field(4.0, ge=1.0, description="any real upscaling factor >= 1")
    size: tuple[int, int] | None = Field(None, description="output width, height (each >= the input's)")

    @field_validator("size")
    @classmethod
    def _positive(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError(f"width and height must be positive, got {list(v)}")
        return v


class LIIFConfig(Strict):
    """``task:`` of LIIF."""

    name: Literal["liif"] = "liif"
    data: LIIFDataConfig = LIIFDataConfig()
    pixel: PixelLossConfig = PixelLossConfig()
    norm: LIIFNormConfig = LIIFNormConfig()
    eval: LIIFEvalConfig = LIIFEvalConfig()
    infer: LIIFInferConfig = LIIFInferConfig()


def target_size(lq_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """The output grid of an ``lq_hw`` input at ``scale`` (mmedit: ``round(h * s)``)."""
    return round(lq_hw[0] * scale), round(lq_hw[1] * scale)


class LIIFTask:
    """One implicit generator (``liif_edsr``/``liif_rdn``), one pixel loss, per-scale evaluation."""

    Config = LIIFConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the LIIF network (liif_edsr or liif_rdn)"}
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {
        f"{m}_x{s}": "max" for m in ("psnr", "ssim") for s in sorted(ZOO_SCALES, key=lambda s: (s != 4, s))}
    infer_inputs: ClassVar[tuple[str, ...]] = ("image",)
    infer_batchable: ClassVar[bool] = True  # same-size inputs give same-size outputs

    def __init__(self, cfg: LIIFConfig):
        self.cfg = cfg
        self.mean = torch.tensor(cfg.norm.rgb_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.norm.rgb_std).view(1, 3, 1, 1)

    @staticmethod
    def sampler(cfg: LIIFConfig) -> LIIFSampler:
        return LIIFSampler(cfg.data, cfg.eval.scales)

    @staticmethod
    def check_nets(cfg: LIIFConfig, nets: dict[str, dict[str, Any]]) -> None:
        name = nets.get("generator", {}).get("name")
        if name not in ARCHS:
            raise ValueError(f"nets.generator.name: task liif needs one of {', '.join(ARCHS)}, got {name!r}")

    # ------------------------------------------------------------------ normalisation

    def _norm_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def _norm_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Q, 3]`` pixel values."""
        return (x - self.mean.view(1, 1, 3).to(x)) / self.std.view(1, 1, 3).to(x)

    def _denorm_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.view(1, 1, 3).to(x) + self.mean.view(1, 1, 3).to(x)

    # ------------------------------------------------------------------ training

    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The stream batch: ``lq`` images become float ``[B,3,h,w]``; the sampled ``gt`` pixels
        (uint8 ``[B, Q, 3]``) become float in [0, 1]."""
        batch = to_batch(raw)
        if batch["gt"].dtype == torch.uint8:
            batch["gt"] = batch["gt"].float().div_(255.0)
        return batch

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        pred = nets["generator"](self._norm_image(batch["lq"]), batch["coord"], batch["cell"])
        p = self.cfg.pixel
        loss = p.weight * pixel_loss(p.name, pred.float(), self._norm_rgb(batch["gt"]))
        optimizer_step(optimizers["generator"], loss)
        return {f"loss/{p.name}": loss.detach()}

    # ------------------------------------------------------------------ prediction

    def decode(self, generator: nn.Module, lq: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``lq`` ``[B,3,h,w]`` in [0, 1] -> ``[B,3,H,W]`` in [0, 1] on the ``size`` grid.

        The generator's test mode, with bounded memory: the features are computed once, then
        ``eval_bsize`` queries at a time (all at once for None) get their coordinates and cells
        made for that chunk only (the same values as ``make_coord`` of the whole grid, which is
        never held), are decoded, and written into the output.
        """
        b, (h, w) = lq.shape[0], size
        rows, cols = (torch.from_numpy(make_coord((n, 1))[:, 0]).to(lq.device) for n in (h, w))
        cell = torch.tensor([2 / h, 2 / w], device=lq.device)
        chunk = getattr(generator, "eval_bsize", None) or h * w
        feature = generator.gen_feature(self._norm_image(lq))
        out = torch.empty(b, h * w, 3, device=lq.device)
        for start in range(0, h * w, chunk):
            idx = torch.arange(start, min(start + chunk, h * w), device=lq.device)
            coord = torch.stack([rows[idx // w], cols[idx % w]], dim=-1)[None].expand(b, -1, -1)
            pred = generator.query_rgb(feature, coord, cell.expand_as(coord))
            out[:, start:start + len(idx)] = self._denorm_rgb(pred.float()).clamp_(0, 1)
        return out.view(b, h, w, 3).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inference (``out_size`` in the batch): ``[B,3,H,W]``. Validation: every scale, packed
        ``[B, S, 3, H, W]`` (see the module docstring)."""
        g = nets["generator"]
        if "out_size" in batch:
            h, w = (int(v) for v in batch["out_size"][0])
            return self.decode(g, batch["lq"], (h, w))
        return self._packed(batch, lambda lq, size: self.decode(g, lq, size))

    def _packed(self, batch, upscale) -> torch.Tensor:
        gt = batch["gt"]
        out = gt.new_zeros(gt.shape[0], len(self.cfg.eval.scales), *gt.shape[1:])
        for i, s in enumerate(self.cfg.eval.scales):
            lq = batch[scale_key(s)]
            h, w = target_size(lq.shape[-2:], s)
            out[:, i, :, :h, :w] = upscale(lq, (h, w))
        return out

    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """Bicubic upscaling (torch, ``align_corners=False``) of each scale's LQ, packed like ``predict``."""
        def bicubic(lq, size):
            return F.interpolate(lq, size=size, mode="bicubic", align_corners=False).clamp(0, 1)

        return "bicubic", self._packed(batch, bicubic)

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR/SSIM of the first sample at every evaluation scale, ``crop_border = scale``."""
        e, out = self.cfg.eval, {}
        for i, s in enumerate(e.scales):
            h, w = target_size(batch[scale_key(s)].shape[-2:], s)
            p = tensor_to_image(pred[0, i, :, :h, :w], round=e.round)
            g = tensor_to_image(batch["gt"][0, :, :h, :w], round=e.round)
            out[f"psnr_x{s}"] = psnr(p, g, crop_border=s)
            out[f"ssim_x{s}"] = ssim(p, g, crop_border=s, channels=e.ssim_channels)
        return out

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """One input at every evaluation scale side by side (each panel the model's output from
        that scale's LQ, at GT size), then the GT."""
        panels = [pred[0, i].clamp(0, 1) for i in range(pred.shape[1])] + [batch["gt"][0]]
        return to_uint8_image(torch.cat(panels, dim=-1))

    # ------------------------------------------------------------------ inference I/O

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        batch = image_batch(inputs["image"], "lq")
        h, w = inputs["image"].shape[:2]
        inf = self.cfg.infer
        if inf.size is not None:
            out_w, out_h = inf.size
            if out_w < w or out_h < h:
                raise ValueError(f"--size {out_w}x{out_h} is smaller than the {w}x{h} input (LIIF upscales only)")
            size = (out_h, out_w)
        else:
            size = target_size((h, w), inf.scale)
        batch["out_size"] = torch.tensor([size], dtype=torch.int64)
        return batch

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return to_uint8_image(pred[0])

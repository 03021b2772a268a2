"""The recurrent video super-resolution families: BasicVSR, IconVSR, BasicVSR++ (``vsr``) and
RealBasicVSR (``vsr`` for its no-GAN stage, ``vsr_gan`` for the GAN stage).

Batches are clips, ``lq`` ``[B,T,3,h,w]`` and ``gt`` ``[B,T,3,H,W]`` (and ``gt_usm``, the
unsharp-masked GT, with the ``realbasicvsr`` preset). Training is mmedit 0.16's ``BasicVSR``
restorer (one Charbonnier pixel loss over every output frame; SPyNet/EDVR frozen for the first
``fix_iter`` steps and trained at an lr multiplier, which configs say with ``optim.*.lr_mult``
and ``frozen_until_step``) and its ``RealBasicVSR`` restorer (pixel + cleaning loss against the
area-downsampled GT, then perceptual + GAN on every frame, the discriminator seeing frames as
images).

Evaluation follows mmedit's ``BasicVSR.evaluate``: a clip's score is the mean of its per-frame
PSNR/SSIM on ``tensor2img``-rounded frames, the dataset's the mean over clips (REDS4 = all 100
frames of each clip; Vid4/UDM10 on Y). ``eval.frames: centre_mirror`` is the Vimeo-90K-T
convention for recurrent models: the 7 LQ frames are mirrored to 14 and the output
``0.5 * (out[3] + out[10])`` is scored against the centre GT frame (im4); ``centre`` scores
``out[T // 2]`` alone, as mmedit does for an input that is not mirror-extended.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from degradations.matlab_resize import imresize
from trainers.losses import GANLoss, pixel_loss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.niqe import niqe
from trainers.samplers.vsr import VSRDataConfig, VSRSampler
from trainers.strict import Strict
from trainers.tasks.common import frozen, optimizer_step, to_batch, to_uint8_image, unwrap
from trainers.tasks.sr import PixelLossConfig
from trainers.tasks.sr_gan import GANConfig, PerceptualConfig, SRGANTask, build_perceptual

#: Architectures whose output is 4x their input (their constructors take no scale argument).
X4_ARCHS = frozenset({"basicvsr", "iconvsr", "basicvsr_pp", "realbasicvsr"})


class VSREvalConfig(Strict):
    crop_border: int = Field(0, ge=0)
    convert_to: Literal["rgb", "y"] = "rgb"
    round: bool = Field(True, description="score uint8-rounded frames (mmedit 0.x's tensor2img)")
    ssim_channels: Literal["mean", "blue"] = Field(
        "mean", description="as the image SR family: blue reproduces mmedit 0.x's RGB SSIM with crop_border > 0")
    frames: Literal["all", "centre", "centre_mirror"] = Field(
        "all",
        description="all: every output frame against its GT (REDS4, Vid4, UDM10); centre: out[T//2] against "
        "the centre GT; centre_mirror: Vimeo-90K-T with recurrent models, LQ mirrored to 2T and "
        "0.5*(out[T/2] + out[2T-1-T/2]) against the centre GT",
    )
    max_seq_len: int | None = Field(
        None, ge=2, description="predict long clips in chunks of this many frames (memory; changes results)")


class CleaningLossConfig(Strict):
    """RealBasicVSR's cleaning loss: L1 between the cleaned LQ frames and the GT area-downsampled
    to LQ size."""

    name: Literal["l1", "mse", "charbonnier"] = "l1"
    weight: float = Field(1.0, ge=0)


class VSRConfig(Strict):
    """``task:`` of the recurrent VSR family."""

    name: Literal["vsr"] = "vsr"
    data: VSRDataConfig = VSRDataConfig()
    pixel: PixelLossConfig = PixelLossConfig(name="charbonnier")
    cleaning: CleaningLossConfig | None = None
    sharpened_gt_in: list[Literal["pixel"]] = Field(
        default_factory=list, description="losses against the unsharp-masked GT (RealBasicVSR: pixel)")
    eval: VSREvalConfig = VSREvalConfig()

    @model_validator(mode="after")
    def _usm_needs_preset(self) -> "VSRConfig":
        check_usm(self.sharpened_gt_in, self.data)
        return self


class VSRGANConfig(Strict):
    """``task:`` of RealBasicVSR's GAN stage."""

    name: Literal["vsr_gan"] = "vsr_gan"
    data: VSRDataConfig = VSRDataConfig()
    pixel: PixelLossConfig | None = PixelLossConfig()
    cleaning: CleaningLossConfig | None = CleaningLossConfig()
    perceptual: PerceptualConfig | None = None
    gan: GANConfig
    disc_steps: int = Field(1, ge=1)
    disc_init_steps: int = Field(0, ge=0)
    sharpened_gt_in: list[Literal["pixel", "perceptual", "gan"]] = Field(default_factory=list)
    eval: VSREvalConfig = VSREvalConfig()

    @model_validator(mode="after")
    def _usm_needs_preset(self) -> "VSRGANConfig":
        check_usm(self.sharpened_gt_in, self.data)
        if self.gan.relativistic:
            raise ValueError("gan.relativistic: RealBasicVSR's discriminator is not relativistic")
        return self


def check_usm(losses: list[str], data: VSRDataConfig) -> None:
    if losses and data.degradation.preset != "realbasicvsr":
        raise ValueError(f"sharpened_gt_in: needs the realbasicvsr preset (it makes gt_usm), "
                         f"got {data.degradation.preset!r}")


def frames_of(x: torch.Tensor) -> torch.Tensor:
    """``[B,T,C,H,W]`` -> ``[B*T,C,H,W]``: per-frame losses and the discriminator see images."""
    return x.reshape(-1, *x.shape[-3:])


def forward_clip(net: nn.Module, lq: torch.Tensor, max_seq_len: int | None = None) -> torch.Tensor:
    """The net's output for a clip, in chunks of ``max_seq_len`` frames when given (each chunk
    propagates on its own, so memory stays that of one chunk). A net that returns
    ``(output, cleaned_lq)`` (RealBasicVSR) gives its output."""
    if max_seq_len is None or lq.shape[1] <= max_seq_len:
        out = net(lq)
        return out[0] if isinstance(out, tuple) else out
    return torch.cat([forward_clip(net, lq[:, i:i + max_seq_len]) for i in range(0, lq.shape[1], max_seq_len)], 1)


def mirrored(lq: torch.Tensor) -> torch.Tensor:
    """mmedit's MirrorSequence: ``[x0..x(T-1)]`` -> ``[x0..x(T-1), x(T-1)..x0]``."""
    return torch.cat([lq, lq.flip(1)], dim=1)


def strip(lq: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor, rows: int = 3) -> np.ndarray:
    """A clip as a picture: up to ``rows`` frames (first, middle, last), each ``LQ (nearest
    upsampled) | output | GT``, stacked vertically. Clips ``[T,C,H,W]``."""
    t = pred.shape[0]
    picks = sorted({0, t // 2, t - 1})[:rows] if t > 1 else [0]
    scale = max(gt.shape[-2] // lq.shape[-2], 1)
    lines = []
    for i in picks:
        up = lq[min(i, lq.shape[0] - 1)].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        up = up[..., : gt.shape[-2], : gt.shape[-1]]
        lines.append(torch.cat([up, pred[i].clamp(0, 1), gt[min(i, gt.shape[0] - 1)]], dim=-1))
    return to_uint8_image(torch.cat(lines, dim=-2))


class VSREval:
    """Sampling, prediction, scoring, preview and inference I/O shared by ``vsr`` and ``vsr_gan``."""

    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}
    report_per_sample: ClassVar[bool] = True  # restoray eval prints a row per clip (the zoo reports per clip)

    def __init__(self, data: VSRDataConfig, eval_cfg: VSREvalConfig):
        self.data, self.eval_cfg = data, eval_cfg

    @staticmethod
    def sampler(cfg: Any) -> VSRSampler:
        return VSRSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: Any, nets: dict[str, dict[str, Any]]) -> None:
        name = nets.get("generator", {}).get("name")
        if name in X4_ARCHS and cfg.data.scale != 4 and nets["generator"].get("is_low_res_input", True):
            raise ValueError(f"task.data.scale: {name} upscales x4, the data is x{cfg.data.scale}")

    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B,T,3,H,W]`` for ``frames: all``; ``[B,1,3,H,W]`` (the scored frame) otherwise."""
        g, lq, n = nets["generator"], batch["lq"], self.eval_cfg.max_seq_len
        if self.eval_cfg.frames == "centre_mirror":
            out = forward_clip(g, mirrored(lq), n)
            t = out.shape[1]
            return (0.5 * (out[:, t // 4] + out[:, -1 - t // 4]))[:, None]
        out = forward_clip(g, lq, n)
        return out[:, out.shape[1] // 2][:, None] if self.eval_cfg.frames == "centre" else out

    def _targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        gt = batch["gt"]
        return gt if self.eval_cfg.frames == "all" else gt[:, gt.shape[1] // 2][:, None]

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Mean over the clip's frames of mmedit's per-frame PSNR and SSIM (first clip of the batch)."""
        if "gt" not in batch:
            raise ValueError(f"{batch.get('key', 'a clip')}: LQ-only clip (no GT frames): PSNR/SSIM need a reference; "
                             "score LQ-only sets (VideoLQ) with a vsr_gan model, which reports NIQE")
        e, gt = self.eval_cfg, self._targets(batch)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} does not match the GT {tuple(gt.shape)}")
        channels = e.ssim_channels if e.convert_to == "rgb" else "mean"
        rows = []
        for i in range(pred.shape[1]):
            p, g = tensor_to_image(pred[0, i], round=e.round), tensor_to_image(gt[0, i], round=e.round)
            kw = dict(crop_border=e.crop_border, convert_to=e.convert_to)
            rows.append((psnr(p, g, **kw), ssim(p, g, **kw, channels=channels)))
        return {"psnr": float(np.mean([r[0] for r in rows])), "ssim": float(np.mean([r[1] for r in rows]))}

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        lq = batch["lq"][0]
        if self.eval_cfg.frames != "all":
            lq = lq[lq.shape[0] // 2][None]
        return strip(lq, pred[0], self._targets(batch)[0] if "gt" in batch else pred[0])

    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """MATLAB-bicubic upscaling of every scored LQ frame."""
        lq = batch["lq"][0]
        if self.eval_cfg.frames != "all":
            lq = lq[lq.shape[0] // 2][None]
        gt_h, gt_w = batch["gt"].shape[-2:] if "gt" in batch else (lq.shape[-2] * self.data.scale, lq.shape[-1] * self.data.scale)
        ups = [np.clip(imresize(f.permute(1, 2, 0).cpu().numpy(), scale=self.data.scale), 0, 1)[:gt_h, :gt_w]
               for f in lq]
        return "bicubic", torch.from_numpy(np.stack(ups)).permute(0, 3, 1, 2)[None].float()

    # Inference on videos goes through pipelines/infer_video.py, frame chunks at a time.
    infer_inputs: ClassVar[tuple[str, ...]] = ("video",)

    @torch.no_grad()
    def restore_clip(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every output frame of ``batch["lq"]`` (inference: no centre-frame scoring convention)."""
        return forward_clip(nets["generator"], batch["lq"], self.eval_cfg.max_seq_len)

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """``{"video": [T,H,W,3] uint8}`` -> ``{"lq": [1,T,3,H,W]}``."""
        clip = inputs["video"]
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"a clip must be T x H x W x 3, got shape {clip.shape}")
        return {"lq": torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)[None].float().div(255)}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """``[1,T,3,H,W]`` -> ``[T,H,W,3]`` uint8 frames."""
        return np.stack([to_uint8_image(f) for f in pred[0]])


def cleaning_target(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """mmedit's ``gt_clean``: every GT frame area-downsampled by the scale."""
    b, t, c, h, w = gt.shape
    return F.interpolate(frames_of(gt), scale_factor=1 / scale, mode="area").view(b, t, c, h // scale, w // scale)


class VSRTask(VSREval):
    """One recurrent generator; pixel loss (+ RealBasicVSR's cleaning loss)."""

    Config = VSRConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the recurrent VSR network"}

    def __init__(self, cfg: VSRConfig):
        super().__init__(cfg.data, cfg.eval)
        self.cfg = cfg
        self.target = "gt_usm" if "pixel" in cfg.sharpened_gt_in else "gt"

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        c, p, target = self.cfg.cleaning, self.cfg.pixel, batch[self.target]
        logs = {}
        if c is not None:
            pred, lqs = nets["generator"](batch["lq"], return_lqs=True)
            loss_clean = c.weight * pixel_loss(c.name, lqs.float(), cleaning_target(target, self.data.scale))
            logs["loss/clean"] = loss_clean
        else:
            pred = nets["generator"](batch["lq"])
        logs[f"loss/{p.name}"] = p.weight * pixel_loss(p.name, pred.float(), target)
        optimizer_step(optimizers["generator"], sum(logs.values()))
        return {k: v.detach() for k, v in logs.items()}


class VSRGANTask(VSREval):
    """RealBasicVSR's GAN stage: the image GAN family's generator and discriminator losses,
    applied to the clip's frames as a batch of images, plus the cleaning loss."""

    Config = VSRGANConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the recurrent VSR network", "discriminator": "per-frame critic"}
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max", "niqe": "min"}

    # The image family's loss code, reused as is: it reads self.cfg.pixel/.gan, self.perceptual
    # and self.gan_loss, which this class sets up the same way.
    _generator_losses = SRGANTask._generator_losses
    _discriminator_step = SRGANTask._discriminator_step
    preflight = staticmethod(SRGANTask.preflight)

    def __init__(self, cfg: VSRGANConfig):
        super().__init__(cfg.data, cfg.eval)
        self.cfg = cfg
        self.gan_loss = GANLoss(cfg.gan.type, cfg.gan.real_label_val, cfg.gan.fake_label_val, cfg.gan.weight)
        self.perceptual = build_perceptual(cfg.perceptual)
        self.target = {k: "gt_usm" if k in cfg.sharpened_gt_in else "gt" for k in ("pixel", "perceptual", "gan")}

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR/SSIM as ``vsr``, plus NIQE (Y, rounded) averaged over the frames; NaN for frames
        under one 96 px NIQE block. An LQ-only clip (VideoLQ) gets NIQE alone, the zoo's figure."""
        scores = super().score(pred, batch) if "gt" in batch else {}
        try:
            values = [niqe(tensor_to_image(f, round=True), crop_border=self.eval_cfg.crop_border) for f in pred[0]]
            scores["niqe"] = float(np.mean(values))
        except ValueError:
            scores["niqe"] = float("nan")
        return scores

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        g, d = nets["generator"], nets["discriminator"]
        gt = {k: frames_of(batch[v]) for k, v in self.target.items()}
        logs: dict[str, torch.Tensor] = {}
        if step % self.cfg.disc_steps == 0 and step >= self.cfg.disc_init_steps:
            pred, lqs = g(batch["lq"], return_lqs=True)
            fake = frames_of(pred).float()
            with frozen(d) as critic:
                loss_g, logs = self._generator_losses(fake, gt, critic)
            c = self.cfg.cleaning
            if c is not None:
                clean = c.weight * pixel_loss(c.name, lqs.float(), cleaning_target(batch[self.target["pixel"]],
                                                                                    self.data.scale))
                loss_g, logs["loss/clean"] = loss_g + clean, clean.detach()
            optimizer_step(optimizers["generator"], loss_g)
        else:
            with torch.no_grad():
                fake = frames_of(forward_clip(unwrap(g), batch["lq"])).float()
        return logs | self._discriminator_step(d, optimizers["discriminator"], fake.detach(), gt["gan"])


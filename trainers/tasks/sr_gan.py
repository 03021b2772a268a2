"""The GAN image super-resolution family: SRGAN, ESRGAN, Real-ESRGAN (mmedit 0.16's ``SRGAN``,
``ESRGAN`` and ``RealESRGAN`` restorers, without their class hierarchy).

One iteration (``train_step``), as the reference:

1. the generator upscales the batch;
2. every ``disc_steps``-th step from ``disc_init_steps`` on, the generator is updated on
   ``pixel + perceptual (+ style) + gan`` with the discriminator frozen; the GAN term is
   ``gan_loss(D(fake), real)`` or, with ``gan.relativistic`` (ESRGAN), the relativistic-average
   pair ``(gan(D(fake) - mean D(gt), real) + gan(D(gt) - mean D(fake), fake)) / 2``;
3. the discriminator is updated on its real and fake terms, two backward passes and one step
   (ESRGAN halves both and centres each on the other side's mean prediction).

Real-ESRGAN trains the pixel and perceptual losses against the unsharp-masked GT and the GAN
loss against the plain GT (``sharpened_gt_in: [pixel, perceptual]``). Evaluation is the image
SR family's (PSNR, SSIM on the EMA generator) plus NIQE, which is what the Real-ESRGAN tables
report for real-world inputs.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from trainers.losses import GANLoss, PerceptualLoss, pixel_loss, ragan_generator_loss
from trainers.losses.vgg import TORCHVISION_URLS
from trainers.metrics import tensor_to_image
from trainers.niqe import niqe
from trainers.samplers.sr import SRDataConfig
from trainers.strict import Strict
from trainers.tasks.common import frozen, optimizer_step, unwrap
from trainers.tasks.sr import PixelLossConfig, SREval, SREvalConfig, check_scale, check_sharpened


class PerceptualConfig(Strict):
    """mmedit 0.16's ``PerceptualLoss`` options, plus where the VGG weights come from."""

    layer_weights: dict[str, float] = Field(description="VGG layer index (as in mmedit) -> weight")
    layer_weights_style: dict[str, float] | None = None
    vgg_type: Literal["vgg16", "vgg19"] = "vgg19"
    use_input_norm: bool = True
    norm_img: bool = True  # mmedit's default: map [-1, 1] inputs to [0, 1] first; SR configs set false
    perceptual_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(1.0, ge=0)
    criterion: Literal["l1", "mse"] = "l1"
    vgg_weights: str | None = Field(
        None, description="torchvision's vgg19-dcbb9e9d.pth / vgg16-397923af.pth: a local path, s3:// or https://"
    )
    vgg_sha256: str | None = Field(None, description="expected sha256 (default: the file name's torchvision hash)")
    allow_random_init: bool = Field(False, description="random VGG weights (tests only: the loss means nothing)")

    @model_validator(mode="after")
    def _weights_given(self) -> "PerceptualConfig":
        if self.vgg_weights is None and not self.allow_random_init:
            raise ValueError(
                f"vgg_weights: required (torchvision's {self.vgg_type} file, e.g. "
                f"https://download.pytorch.org/models/{'vgg19-dcbb9e9d' if self.vgg_type == 'vgg19' else 'vgg16-397923af'}"
                ".pth, saved where the workers can read it)"
            )
        return self


def build_perceptual(p: PerceptualConfig | None) -> PerceptualLoss | None:
    """The VGG perceptual/style loss a ``task.perceptual`` section describes (None without one)."""
    return None if p is None else PerceptualLoss(
        p.layer_weights, p.layer_weights_style, p.vgg_type, p.use_input_norm, p.perceptual_weight,
        p.style_weight, p.norm_img, p.criterion, vgg_weights=p.vgg_weights,
        vgg_weights_field="task.perceptual.vgg_weights", vgg_sha256=p.vgg_sha256,
        allow_random_init=p.allow_random_init,
    )


class GANConfig(Strict):
    type: Literal["vanilla", "lsgan", "wgan", "hinge"] = "vanilla"
    relativistic: bool = Field(False, description="ESRGAN's relativistic-average discriminator")
    weight: float = Field(ge=0, description="the generator's GAN loss weight (mmedit's loss_weight)")
    real_label_val: float = 1.0
    fake_label_val: float = 0.0


class SRGANConfig(Strict):
    """``task:`` of the GAN image SR family."""

    name: Literal["sr_gan"] = "sr_gan"
    data: SRDataConfig = SRDataConfig()
    pixel: PixelLossConfig | None = PixelLossConfig()
    perceptual: PerceptualConfig | None = None
    gan: GANConfig
    disc_steps: int = Field(1, ge=1, description="update the generator every disc_steps steps")
    disc_init_steps: int = Field(0, ge=0, description="discriminator-only steps before the generator trains")
    sharpened_gt_in: list[Literal["pixel", "perceptual", "gan"]] = Field(
        default_factory=list, description="losses that train against the unsharp-masked GT (Real-ESRGAN: pixel, perceptual)"
    )
    eval: SREvalConfig = SREvalConfig()

    _sharpened = field_validator("sharpened_gt_in")(classmethod(lambda cls, v, info: check_sharpened(v, info)))


class SRGANTask(SREval):
    """Generator + discriminator; see the module docstring for the step."""

    Config = SRGANConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the SR network", "discriminator": "real/fake critic"}
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max", "niqe": "min"}

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR/SSIM as the SR family, plus NIQE (Y, ``crop_border``, rounded output) -- NaN for an
        output smaller than one 96 px NIQE block, so a tiny validation image cannot stop training."""
        scores = super().score(pred, batch)
        try:
            scores["niqe"] = niqe(tensor_to_image(pred[0], round=True), crop_border=self.eval_cfg.crop_border)
        except ValueError:
            scores["niqe"] = float("nan")
        return scores

    def __init__(self, cfg: SRGANConfig):
        super().__init__(cfg.data, cfg.eval)
        self.cfg = cfg
        self.gan_loss = GANLoss(cfg.gan.type, cfg.gan.real_label_val, cfg.gan.fake_label_val, cfg.gan.weight)
        self.perceptual = build_perceptual(cfg.perceptual)
        self.target = {k: "gt_usm" if k in cfg.sharpened_gt_in else "gt" for k in ("pixel", "perceptual", "gan")}

    @staticmethod
    def check_nets(cfg: SRGANConfig, nets: dict[str, dict[str, Any]]) -> None:
        check_scale(cfg.data, nets)
        if nets["discriminator"]["name"] == "modified_vgg" and (cfg.data.out_size or cfg.data.gt_size) != 128:
            raise ValueError(
                f"task.data.gt_size: modified_vgg judges 128 px patches, the GT patch is "
                f"{cfg.data.out_size or cfg.data.gt_size} px"
            )

    @staticmethod
    def preflight(cfg: SRGANConfig) -> None:
        """On the driver, before Ray Train starts: a missing local VGG file is one line, not a
        traceback from every worker. (Remote URIs are read, and checked, by the workers.)"""
        p = cfg.perceptual
        if p is not None and p.vgg_weights and "://" not in p.vgg_weights and not os.path.isfile(p.vgg_weights):
            raise ValueError(
                f"task.perceptual.vgg_weights: {p.vgg_weights} not found (torchvision's {p.vgg_type} weights: "
                f"{TORCHVISION_URLS[p.vgg_type]})"
            )

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        g, d = nets["generator"], nets["discriminator"]
        gt = {k: batch[v] for k, v in self.target.items()}
        logs: dict[str, torch.Tensor] = {}
        if step % self.cfg.disc_steps == 0 and step >= self.cfg.disc_init_steps:
            fake = g(batch["lq"])
            with frozen(d) as critic:
                loss_g, logs = self._generator_losses(fake.float(), gt, critic)
            optimizer_step(optimizers["generator"], loss_g)
        else:  # the discriminator still needs this step's fakes
            with torch.no_grad():
                fake = unwrap(g)(batch["lq"])
        return logs | self._discriminator_step(d, optimizers["discriminator"], fake.detach().float(), gt["gan"])

    def _generator_losses(self, fake, gt, critic) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = {}
        if self.cfg.pixel is not None:
            losses["loss/g_pix"] = self.cfg.pixel.weight * pixel_loss(self.cfg.pixel.name, fake, gt["pixel"])
        if self.perceptual is not None:
            percep, style = self.perceptual.to(fake.device)(fake, gt["perceptual"])
            if percep is not None:
                losses["loss/g_percep"] = percep
            if style is not None:
                losses["loss/g_style"] = style
        fake_pred = critic(fake)
        if self.cfg.gan.relativistic:
            real_pred = critic(gt["gan"]).detach()
            losses["loss/g_gan"] = ragan_generator_loss(self.gan_loss, real_pred, fake_pred)
        else:
            losses["loss/g_gan"] = self.gan_loss(fake_pred, target_is_real=True, is_disc=False)
        return sum(losses.values()), {k: v.detach() for k, v in losses.items()}

    def _discriminator_step(self, d, optimizer, fake, real) -> dict[str, torch.Tensor]:
        """Real term, backward; fake term, backward; one step (mmedit's order and detaches)."""
        gan, half = self.gan_loss, 0.5 if self.cfg.gan.relativistic else 1.0
        optimizer.zero_grad(set_to_none=True)
        if self.cfg.gan.relativistic:
            with torch.no_grad():
                fake_ref = unwrap(d)(fake)  # mmedit: D(fake).detach(), a forward of its own
            real_pred = d(real)
            loss_real = gan(real_pred - fake_ref.mean(), target_is_real=True, is_disc=True) * half
        else:
            real_pred = d(real)
            loss_real = gan(real_pred, target_is_real=True, is_disc=True)
        loss_real.backward()
        fake_pred = d(fake)
        shifted = fake_pred - real_pred.detach().mean() if self.cfg.gan.relativistic else fake_pred
        loss_fake = gan(shifted, target_is_real=False, is_disc=True) * half
        loss_fake.backward()
        optimizer.step()
        return {"loss/d_real": loss_real.detach(), "loss/d_fake": loss_fake.detach(),
                "disc/real_pred": real_pred.detach().mean(), "disc/fake_pred": fake_pred.detach().mean()}

"""GLEAN (mmedit 0.16's ``GLEAN`` restorer): the GAN image SR step of ``sr_gan`` on images
normalised to [-1, 1], with a frozen StyleGAN2 latent bank loaded from mmgen's published file.

What differs from ``sr_gan`` (all as the reference):

* the zoo's ``Normalize(mean=0.5, std=0.5)`` puts LQ and GT in [-1, 1]: the generator, the pixel
  loss (MSE, so 4x the [0, 1] figure), the perceptual loss (``norm_img`` maps back to [0, 1] in
  the FFHQ/CelebA-HQ x8 config only; the other three feed VGG the [-1, 1] images, a zoo quirk kept)
  and the discriminator all see [-1, 1]. The stream and the batch schema stay in [0, 1]: the task
  normalises on the worker and ``predict`` returns ``(out + 1) / 2``, so scoring (RGB PSNR, no
  crop border: ``test_cfg``), the preview (LQ | output | GT) and ``restoray infer`` are the SR
  family's;
* a new run loads the StyleGAN2 file (``stylegan2_weights``, local, s3:// or https://):
  ``generator_ema.*`` into the generator's bank (``nets.generator``'s ``generator.*``, frozen by
  the arch) and ``discriminator.*`` into a ``stylegan2_disc`` discriminator, as the zoo's
  ``pretrained=dict(ckpt_path=..., prefix=...)``; a zoo GLEAN file under ``init_from.generator``
  already holds the bank and wins. ``allow_random_init`` (tests only) skips the file;
* validation LR is always MATLAB bicubic (the zoo's ``BIx8_down``/``BIx16_down`` folders), also
  for the blind x8 config that trains on the ``glean`` preset (``trainers/samplers/glean.py``);
* the network takes exactly ``gt_size / scale`` px inputs: no tiling; ``restoray infer`` area-resizes
  other inputs to that size first, as the zoo's demo pipeline does.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from trainers.archs.glean import load_stylegan2_bank
from trainers.samplers.glean import GLEANSampler
from trainers.samplers.sr import SRDataConfig
from trainers.strict import Strict
from trainers.tasks.common import image_batch, unwrap
from trainers.tasks.sr import PixelLossConfig, SREval, SREvalConfig
from trainers.tasks.sr_gan import GANConfig, PerceptualConfig, SRGANTask

STYLEGAN2_FIELD = "task.stylegan2_weights"


class GLEANDataConfig(SRDataConfig):
    """The SR data section; GLEAN trains on whole aligned images (``gt_size`` = the image size),
    flipped horizontally only, at x8 or x16."""

    scale: int = Field(8, ge=2, le=16)
    gt_size: int = Field(1024, ge=8)
    use_rot: bool = False


class GLEANConfig(Strict):
    """``task:`` of GLEAN."""

    name: Literal["glean"] = "glean"
    data: GLEANDataConfig = GLEANDataConfig()
    pixel: PixelLossConfig | None = PixelLossConfig(name="mse")
    perceptual: PerceptualConfig | None = None
    gan: GANConfig
    disc_steps: int = Field(1, ge=1)
    disc_init_steps: int = Field(0, ge=0)
    stylegan2_weights: str | None = Field(
        None, description="mmgen's StyleGAN2 file (stylegan2-ffhq-config-f-official_20210327_171224-bce9310c.pth, "
        "stylegan2-cat-config-f-official_20210327_172444-15bc485b.pth): a local path, s3:// or https://")
    bank_prefix: str = Field("generator_ema", description="the file's part that fills the bank (the zoo: generator_ema)")
    allow_random_init: bool = Field(False, description="random StyleGAN2 bank and critic (tests only)")
    eval: SREvalConfig = SREvalConfig()

    @model_validator(mode="after")
    def _weights_given(self) -> "GLEANConfig":
        if self.stylegan2_weights is None and not self.allow_random_init:
            raise ValueError("stylegan2_weights: required (mmgen's StyleGAN2 file, e.g. https://download.openmmlab.com/"
                             "mmgen/stylegan2/official_weights/stylegan2-ffhq-config-f-official_20210327_171224-"
                             "bce9310c.pth, saved where the workers can read it)")
        if self.eval.tile is not None:
            raise ValueError("eval.tile: GLEAN takes whole in_size inputs; tiling does not apply")
        return self

    @property
    def sharpened_gt_in(self) -> list[str]:  # what SRGANTask reads; GLEAN has no sharpened GT
        return []


def _to_signed(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1


class GLEANTask(SRGANTask):
    """``sr_gan``'s step on [-1, 1] images; see the module docstring."""

    Config = GLEANConfig
    nets: ClassVar[dict[str, str]] = {"generator": "GLEAN (encoder, frozen StyleGAN2 bank, decoder)",
                                      "discriminator": "StyleGAN2 critic"}
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}
    infer_batchable: ClassVar[bool] = True

    def __init__(self, cfg: GLEANConfig):
        super().__init__(cfg)  # type: ignore[arg-type]
        self.in_size = cfg.data.gt_size // cfg.data.scale

    @staticmethod
    def sampler(cfg: GLEANConfig) -> GLEANSampler:
        return GLEANSampler(cfg.data)

    score = SREval.score  # PSNR/SSIM as the SR family (no NIQE: the zoo reports PSNR)

    @staticmethod
    def check_nets(cfg: GLEANConfig, nets: dict[str, dict[str, Any]]) -> None:
        g = nets["generator"]
        if g["name"] != "glean":
            raise ValueError(f"nets.generator.name: the glean task trains a glean network, got {g['name']!r}")
        d = cfg.data
        if g.get("in_size") != d.gt_size // d.scale or g.get("out_size") != d.gt_size:
            raise ValueError(f"nets.generator: in_size/out_size {g.get('in_size')}/{g.get('out_size')} do not match "
                             f"task.data gt_size {d.gt_size} / scale {d.scale} = {d.gt_size // d.scale}")
        disc = nets["discriminator"]
        if disc["name"] == "stylegan2_disc" and disc.get("in_size") != d.gt_size:
            raise ValueError(f"nets.discriminator.in_size: is {disc.get('in_size')}, the GT is {d.gt_size} px")

    @staticmethod
    def preflight(cfg: GLEANConfig) -> None:
        SRGANTask.preflight(cfg)  # type: ignore[arg-type]
        w = cfg.stylegan2_weights
        if w and "://" not in w and not os.path.isfile(w):
            raise ValueError(f"{STYLEGAN2_FIELD}: {w} not found (mmgen's StyleGAN2 file)")

    def init_net(self, role: str, net: nn.Module) -> None:
        """A new run's start without ``init_from``: the bank and the critic from the StyleGAN2 file."""
        w = self.cfg.stylegan2_weights
        if w is None:
            return
        if role == "generator":
            load_stylegan2_bank(net, w, self.cfg.bank_prefix, STYLEGAN2_FIELD)
        elif role == "discriminator" and type(net).__name__ == "StyleGAN2Discriminator":
            load_stylegan2_bank(net, w, "discriminator", STYLEGAN2_FIELD)

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        signed = {k: _to_signed(v) for k, v in batch.items() if k in ("lq", "gt")}
        return super().train_step(nets, optimizers, batch | signed, step)

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lq = batch["lq"]
        if lq.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"glean: LQ must be {self.in_size}x{self.in_size} px (gt_size / scale), "
                             f"got {lq.shape[-2]}x{lq.shape[-1]}")
        return (unwrap(nets["generator"])(_to_signed(lq)) + 1) / 2

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The zoo demo's ``RandomResize(target_size=in_size, area)`` for other sizes, then the batch."""
        image = inputs["image"]
        if image.shape[:2] != (self.in_size, self.in_size):
            image = cv2.resize(image, (self.in_size, self.in_size), interpolation=cv2.INTER_AREA)
        return image_batch(image, "lq")

"""The face super-resolution family: DIC and DIC-GAN (mmedit 0.16's ``DIC`` restorer, x8, 16 -> 128 px).

The generator (``dicnet``) runs ``num_steps`` iterations, each giving an SR image and 68 landmark
heatmaps. It works in the zoo's mean-subtracted space: inputs and targets are RGB minus
``img_mean`` (0.509, 0.424, 0.378), outputs get it added back (mmedit's ``Normalize`` with std
255 and its ``img_denormalize``); :meth:`DICTask.predict` returns RGB in [0, 1].

One iteration (``train_step``), as the reference:

1. the generator makes every step's image and heatmaps;
2. the generator loss is, summed over steps, ``pixel(sr_t, gt)`` (L1 x 1) and
   ``align(heatmap_t, gt_heatmap)`` (MSE x 0.1, as the config declares; mmedit 0.16.1's code
   applies its *pixel* loss there instead -- ``align.reference_code_quirk: true`` reproduces
   that); from step ``fix_iter`` on (DIC-GAN: 10k) also the LightCNN feature loss (x 0.1) and
   the GAN loss (vanilla x 5e-3) on the last step's image, the discriminator frozen;
3. from ``fix_iter`` on, the discriminator is updated ``disc_steps`` times (DIC-GAN: 2) on the
   same fakes: per update, the real term's backward, the fake term's backward, one step. (Not
   sr_gan's ``disc_steps``, which spaces generator updates.)

Evaluation as the zoo: PSNR/SSIM of the last step's image on RGB with ``crop_border`` 8, outputs
rounded to uint8 (0.x). The preview shows LQ | output | output with its predicted landmarks
(each heatmap's peak, drawn with ``cv2.circle``) | GT. ``restoray infer`` takes a face image;
one that is not 16 x 16 is made 16 x 16 as the zoo makes its test inputs (PIL bicubic to
128 px, then to 1/8).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from degradations.matlab_resize import imresize
from trainers.losses import GANLoss, pixel_loss
from trainers.losses.light_cnn import LightCNNFeatureLoss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.samplers.dic import DICDataConfig, DICSampler, pil_bicubic, rescale_size
from trainers.strict import Strict
from trainers.tasks.common import frozen, optimizer_step, to_batch, to_uint8_image
from trainers.tasks.sr import PixelLossConfig, SREvalConfig, image_grid
from trainers.tasks.sr_gan import GANConfig

ZOO_MEAN = (0.509, 0.424, 0.378)  # mmedit's Normalize mean [129.795, 108.12, 96.39] / 255


class AlignLossConfig(PixelLossConfig):
    """The heatmap loss on every step's 68 heatmaps."""

    name: Literal["l1", "mse", "charbonnier"] = "mse"
    weight: float = Field(0.1, ge=0)
    reference_code_quirk: bool = Field(
        False, description="use the pixel loss (name and weight) on the heatmaps, as mmedit 0.16.1's DIC.train_step "
        "does (it calls pixel_loss, not align_loss); false: the loss the zoo config declares")


class LightCNNFeatureConfig(Strict):
    """mmedit's ``LightCNNFeatureLoss``, with where its face-recognition weights come from."""

    weight: float = Field(0.1, ge=0)
    criterion: Literal["l1", "mse"] = "l1"
    weights: str | None = Field(
        None, description="LightCNN feature weights: mmedit's light_cnn_feature.pth or a DIC-GAN zoo checkpoint "
        "(its feature_loss.model.* keys); local path, s3:// or https://")
    allow_random_init: bool = Field(False, description="random LightCNN weights (tests only: the loss means nothing)")

    @model_validator(mode="after")
    def _weights_given(self) -> "LightCNNFeatureConfig":
        if self.weights is None and not self.allow_random_init:
            raise ValueError("weights: required (mmedit's light_cnn_feature.pth, https://download.openmmlab.com/"
                             "mmediting/restorers/dic/light_cnn_feature.pth, or a DIC-GAN zoo checkpoint)")
        return self


class DICConfig(Strict):
    """``task:`` of the face SR family (DIC; DIC-GAN with ``feature``, ``gan`` and a discriminator)."""

    name: Literal["dic"] = "dic"
    data: DICDataConfig = DICDataConfig()
    img_mean: tuple[float, float, float] = Field(ZOO_MEAN, description="subtracted from inputs and targets")
    pixel: PixelLossConfig = PixelLossConfig()
    align: AlignLossConfig = AlignLossConfig()
    feature: LightCNNFeatureConfig | None = None
    gan: GANConfig | None = None
    fix_iter: int = Field(0, ge=0, description="feature/GAN losses and discriminator updates start at this step")
    disc_steps: int = Field(1, ge=1, description="discriminator updates per iteration")
    eval: SREvalConfig = SREvalConfig(crop_border=8, round=True)


def heatmap_peaks(heatmaps: torch.Tensor, image_size: int) -> np.ndarray:
    """``[N, h, w]`` heatmaps -> ``[N, 2]`` (x, y) of each peak in pixels of an ``image_size`` image."""
    n, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, -1).argmax(1).cpu().numpy()
    ys, xs = np.divmod(flat, w)
    return np.stack([(xs + 0.5) * image_size / w, (ys + 0.5) * image_size / h], 1)


def draw_landmarks(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A copy of the uint8 HxWx3 ``image`` with a green dot at each (x, y) point."""
    out = np.ascontiguousarray(image.copy())
    for x, y in points:
        cv2.circle(out, (int(x), int(y)), 1, (0, 255, 0), -1)
    return out


class DICTask:
    """DICNet (+ LightCNN discriminator); see the module docstring for the step."""

    Config = DICConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the DIC network (dicnet)",
                                      "discriminator": "DIC-GAN's face critic (light_cnn)"}
    optional_nets: ClassVar[frozenset[str]] = frozenset({"discriminator"})
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}
    infer_inputs: ClassVar[tuple[str, ...]] = ("image",)
    infer_batchable: ClassVar[bool] = True

    def __init__(self, cfg: DICConfig):
        self.cfg = cfg
        self.gan_loss = None if cfg.gan is None else GANLoss(
            cfg.gan.type, cfg.gan.real_label_val, cfg.gan.fake_label_val, cfg.gan.weight)
        f = cfg.feature
        self.feature_loss = None if f is None else LightCNNFeatureLoss(
            f.weights, f.weight, f.criterion, field="task.feature.weights", allow_random_init=f.allow_random_init)
        self.last_heatmaps: torch.Tensor | None = None  # the last predict's final heatmaps, for preview

    @staticmethod
    def sampler(cfg: DICConfig) -> DICSampler:
        return DICSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: DICConfig, nets: dict[str, dict[str, Any]]) -> None:
        g = nets["generator"]
        if g["name"] != "dicnet":
            raise ValueError(f"nets.generator.name: task dic trains a dicnet, not {g['name']}")
        if g.get("upscale_factor", 8) != cfg.data.scale or cfg.data.gt_size // cfg.data.scale != 16:
            raise ValueError(f"task.data: dicnet is x8 from 16 px (gt_size 128, scale 8), got gt_size "
                             f"{cfg.data.gt_size}, scale {cfg.data.scale}")
        if g.get("hg_num_keypoints", 68) != cfg.data.num_landmarks:
            raise ValueError(f"nets.generator.hg_num_keypoints: {g.get('hg_num_keypoints', 68)} but task.data."
                             f"num_landmarks is {cfg.data.num_landmarks}")
        if (cfg.gan is None) != ("discriminator" not in nets):
            raise ValueError("nets.discriminator: " + ("task.gan is set but there is no discriminator" if cfg.gan
                                                       else "a discriminator needs task.gan"))
        if "discriminator" in nets and nets["discriminator"]["name"] != "light_cnn":
            raise ValueError(f"nets.discriminator.name: DIC-GAN's critic is light_cnn, not "
                             f"{nets['discriminator']['name']}")

    @staticmethod
    def preflight(cfg: DICConfig) -> None:
        """A missing local LightCNN file is one line on the driver, not a traceback per worker."""
        f = cfg.feature
        if f is not None and f.weights and "://" not in f.weights and not os.path.isfile(f.weights):
            raise ValueError(f"task.feature.weights: {f.weights} not found (mmedit's light_cnn_feature.pth or a "
                             "DIC-GAN zoo checkpoint)")

    # ------------------------------------------------------------------ tensors
    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    def _mean(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.cfg.img_mean, device=like.device, dtype=like.dtype).view(1, 3, 1, 1)

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        cfg, g = self.cfg, nets["generator"]
        mean = self._mean(batch["gt"])
        gt = batch["gt"] - mean
        srs, heatmaps = g(batch["lq"] - mean)
        align = cfg.pixel if cfg.align.reference_code_quirk else cfg.align
        losses = {f"loss/pixel_v{t}": cfg.pixel.weight * pixel_loss(cfg.pixel.name, sr.float(), gt)
                  for t, sr in enumerate(srs)}
        losses |= {f"loss/align_v{t}": align.weight * pixel_loss(align.name, hm.float(), batch["heatmap"])
                   for t, hm in enumerate(heatmaps)}
        pred = srs[-1].float()
        adversarial = step >= cfg.fix_iter
        if adversarial and self.feature_loss is not None:
            losses["loss/feature"] = self.feature_loss.to(pred.device)(pred, gt)
        d = nets.get("discriminator")
        if adversarial and d is not None:
            with frozen(d) as critic:
                losses["loss/gan"] = self.gan_loss(critic(pred), target_is_real=True, is_disc=False)
        optimizer_step(optimizers["generator"], sum(losses.values()))
        logs = {k: v.detach() for k, v in losses.items()}
        if adversarial and d is not None:
            logs |= self._discriminator_steps(d, optimizers["discriminator"], pred.detach(), gt)
        return logs

    def _discriminator_steps(self, d, optimizer, fake, real) -> dict[str, torch.Tensor]:
        """``disc_steps`` updates, each: zero_grad, real term backward, fake term backward, step."""
        logs = {}
        for _ in range(self.cfg.disc_steps):
            optimizer.zero_grad(set_to_none=True)
            real_pred = d(real)
            loss_real = self.gan_loss(real_pred, target_is_real=True, is_disc=True)
            loss_real.backward()
            fake_pred = d(fake)
            loss_fake = self.gan_loss(fake_pred, target_is_real=False, is_disc=True)
            loss_fake.backward()
            optimizer.step()
            logs = {"loss/d_real": loss_real.detach(), "loss/d_fake": loss_fake.detach(),
                    "disc/real_pred": real_pred.detach().mean(), "disc/fake_pred": fake_pred.detach().mean()}
        return logs

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last step's image in RGB [0, 1] (not clamped); its heatmaps kept for :meth:`preview`."""
        mean = self._mean(batch["lq"])
        srs, heatmaps = nets["generator"](batch["lq"] - mean)
        self.last_heatmaps = heatmaps[-1].detach()
        return srs[-1] + mean

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        e = self.cfg.eval
        p, g = tensor_to_image(pred[0], round=e.round), tensor_to_image(batch["gt"][0], round=e.round)
        kw = dict(crop_border=e.crop_border, convert_to=e.convert_to)
        channels = e.ssim_channels if e.convert_to == "rgb" else "mean"
        return {"psnr": psnr(p, g, **kw), "ssim": ssim(p, g, **kw, channels=channels)}

    def score_conventions(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Both RGB SSIM conventions (see ``SREvalConfig.ssim_channels``), as the SR family prints them."""
        e = self.cfg.eval
        if e.convert_to != "rgb":
            return {}
        p, g = tensor_to_image(pred[0], round=e.round), tensor_to_image(batch["gt"][0], round=e.round)
        return {f"ssim_{c}": ssim(p, g, crop_border=e.crop_border, channels=c) for c in ("mean", "blue")}

    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """MATLAB-bicubic x8 of the LQ face."""
        lq = batch["lq"][0].permute(1, 2, 0).cpu().numpy()
        up = np.clip(imresize(lq, scale=self.cfg.data.scale), 0, 1)
        return "bicubic", torch.from_numpy(up).permute(2, 0, 1)[None].float()

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """LQ | output | output with its predicted landmarks | GT."""
        grid = image_grid(batch["lq"][0], pred[0], batch["gt"][0])
        out = to_uint8_image(pred[0])
        if self.last_heatmaps is not None and len(self.last_heatmaps) == len(pred):
            out = draw_landmarks(out, heatmap_peaks(self.last_heatmaps[0].float(), out.shape[1]))
        w = out.shape[1]
        return np.concatenate([grid[:, : 2 * w], out, grid[:, 2 * w:]], axis=1)

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        img = inputs["image"]
        d = self.cfg.data
        lr = d.gt_size // d.scale
        if img.shape[:2] != (lr, lr):
            img = pil_bicubic(pil_bicubic(img, (d.gt_size, d.gt_size)), rescale_size((d.gt_size, d.gt_size), 1 / d.scale))
        return {"lq": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(255)}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return to_uint8_image(pred[0])

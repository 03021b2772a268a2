"""Reference-based super-resolution: TTSR (mmedit 0.16's ``TTSR`` restorer, ``ttsr-rec`` and
``ttsr-gan`` zoo configs).

Networks: the ``generator`` (``ttsr``, TTSRNet), the ``extractor`` (``lte``, VGG19-initialised
texture extractor, its own optimizer: lr 1e-5 in the configs) and, for TTSR-GAN, the
``discriminator`` (``ttsr_disc``). The search/transfer step holds no weights
(``trainers.archs.ttsr.SearchTransformer``).

Value ranges follow the zoo: ``lq`` and ``gt`` in [-1, 1] (its ``Normalize`` with mean = std =
127.5), the generator's output clamped to [-1, 1], ``lq_up``/``ref``/``ref_downup`` in [0, 1] for
the LTE. Losses are computed in [-1, 1] as the zoo's (so an L1 of 1.0 is the zoo's L1 of 1.0).

One iteration, as the reference's ``train_step``:

1. LTE features of ``lq_up`` (query), ``ref_downup`` (key) and ``ref`` (values), the search, the
   generator;
2. generator (and LTE) update on ``pixel`` and, from ``pixel_init_steps`` (the zoo's ``fix_iter``,
   25k) on, ``perceptual`` (VGG19 layer 29 of [-1, 1] images), ``transferal`` (the LTE, frozen,
   on ``(sr + 1) / 2`` against the transferred textures) and ``gan``;
3. from ``pixel_init_steps`` on, ``disc_repeat`` (the zoo's ``disc_steps``, 2) discriminator
   updates on the same real and fake batch, each a real backward, a fake backward and one step.

Evaluation: PSNR/SSIM of ``(sr + 1) / 2`` against the GT, RGB, ``crop_border`` 4, uint8-rounded
(mmedit 0.x). CUFED5's reference level is a property of the validation shard set.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from trainers.archs.ttsr import SearchTransformer
from trainers.losses import GANLoss, pixel_loss
from trainers.losses.transferal import transferal_perceptual_loss
from trainers.losses.vgg import TORCHVISION_URLS
from trainers.samplers.ttsr import TTSRDataConfig, TTSRSampler, pil_rescale
from trainers.strict import Strict
from trainers.tasks.common import frozen, image_batch, to_batch, to_uint8_image
from trainers.tasks.sr import PixelLossConfig, SREvalConfig, SRScores
from trainers.tasks.sr_gan import GANConfig, PerceptualConfig, build_perceptual


class TransferalConfig(Strict):
    """mmedit's ``TransferalPerceptualLoss`` (the zoo: weight 1e-2, no attention, MSE)."""

    weight: float = Field(1e-2, ge=0)
    use_attention: bool = False
    criterion: Literal["l1", "mse"] = "mse"


class TTSRConfig(Strict):
    """``task:`` of the TTSR family."""

    name: Literal["ttsr"] = "ttsr"
    data: TTSRDataConfig = TTSRDataConfig()
    pixel: PixelLossConfig = PixelLossConfig()
    perceptual: PerceptualConfig | None = None
    transferal: TransferalConfig | None = None
    gan: GANConfig | None = None
    pixel_init_steps: int = Field(0, ge=0, description="generator-only pixel-loss steps first (the zoo's fix_iter)")
    disc_repeat: int = Field(1, ge=1, description="discriminator updates per step (the zoo's disc_steps)")
    allow_random_lte: bool = Field(
        False, description="start the LTE from random weights instead of torchvision's VGG19 (tests only)")
    eval: SREvalConfig = SREvalConfig(crop_border=4, round=True)


def _up(img: torch.Tensor, scale: int) -> torch.Tensor:
    return img.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


class TTSRTask(SRScores):
    """Generator + LTE (+ discriminator); see the module docstring for the step."""

    Config = TTSRConfig
    nets: ClassVar[dict[str, str]] = {
        "generator": "TTSRNet (ttsr)",
        "extractor": "the learnable texture extractor (lte)",
        "discriminator": "TTSR-GAN's critic (ttsr_disc), with task.gan",
    }
    optional_nets: ClassVar[frozenset[str]] = frozenset({"discriminator"})
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}
    infer_inputs: ClassVar[tuple[str, ...]] = ("image", "ref")

    def __init__(self, cfg: TTSRConfig):
        self.cfg = cfg
        self.eval_cfg = cfg.eval
        self.search = SearchTransformer()
        self.perceptual = build_perceptual(cfg.perceptual)
        g = cfg.gan
        self.gan_loss = None if g is None else GANLoss(g.type, g.real_label_val, g.fake_label_val, g.weight)

    # ------------------------------------------------------------------ config checks
    @staticmethod
    def sampler(cfg: TTSRConfig) -> TTSRSampler:
        return TTSRSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: TTSRConfig, nets: dict[str, dict[str, Any]]) -> None:
        want = {"generator": "ttsr", "extractor": "lte", "discriminator": "ttsr_disc"}
        for role, spec in nets.items():
            if spec["name"] != want[role]:
                raise ValueError(f"nets.{role}.name: the ttsr task takes {want[role]}, got {spec['name']!r}")
        if cfg.data.scale != 4:
            raise ValueError(f"task.data.scale: TTSRNet upscales x4, got {cfg.data.scale}")
        if (cfg.gan is None) != ("discriminator" not in nets):
            raise ValueError("nets.discriminator: give both task.gan and a discriminator, or neither")
        if cfg.gan is not None and cfg.gan.relativistic:
            raise ValueError("task.gan.relativistic: TTSR's GAN loss is not relativistic")

    @staticmethod
    def check_experiment(cfg) -> None:
        """The LTE starts from torchvision's VGG19 (``init_from.extractor``, format torchvision)."""
        if "extractor" not in cfg.init_from and not cfg.task.allow_random_lte:
            raise ValueError(
                "@init_from.extractor: the LTE starts from torchvision's VGG19: init_from.extractor: "
                f"{{source: <path or URI of vgg19-dcbb9e9d.pth ({TORCHVISION_URLS['vgg19']})>, format: torchvision}} "
                "(or a zoo/restoray checkpoint), or set task.allow_random_lte: true (tests only)")

    @staticmethod
    def preflight(cfg: TTSRConfig) -> None:
        p = cfg.perceptual
        if p is not None and p.vgg_weights and "://" not in p.vgg_weights and not os.path.isfile(p.vgg_weights):
            raise ValueError(f"task.perceptual.vgg_weights: {p.vgg_weights} not found (torchvision's "
                             f"{p.vgg_type} weights: {TORCHVISION_URLS[p.vgg_type]})")

    # ------------------------------------------------------------------ forward
    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    def _forward(self, nets, batch) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(sr in [-1, 1], soft attention, textures)`` for a batch of the schema."""
        query, key, values = self._features(nets["extractor"], [batch["lq_up"], batch["ref_downup"], batch["ref"]])
        soft, textures = self.search(query[0], key[0], values)
        return nets["generator"](batch["lq"] * 2 - 1, soft, textures), soft, textures

    @staticmethod
    def _features(lte, images: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """LTE levels of each image. Same-size images (training: all at the GT's size) go through
        one call on their concatenation: a DDP-wrapped module may run forward only once per backward,
        and one batched call is faster; the LTE has no batch statistics, so the features are the same."""
        if any(t.shape != images[0].shape for t in images):
            return [lte(t) for t in images]
        n = images[0].shape[0]
        levels = lte(torch.cat(images))
        return [[f[i * n:(i + 1) * n] for f in levels] for i in range(len(images))]

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self._forward(nets, batch)[0] + 1) / 2

    # ------------------------------------------------------------------ training
    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        sr, soft, textures = self._forward(nets, batch)
        sr = sr.float()
        gt = batch["gt"] * 2 - 1
        losses = {"loss/pix": cfg.pixel.weight * pixel_loss(cfg.pixel.name, sr, gt)}
        adversarial = step >= cfg.pixel_init_steps
        if adversarial:
            losses |= self._texture_losses(nets, sr, gt, soft, textures)
        total = sum(losses.values())
        g_opts = [optimizers["generator"], optimizers["extractor"]]
        for opt in g_opts:
            opt.zero_grad(set_to_none=True)
        total.backward()
        for opt in g_opts:
            opt.step()
        logs = {k: v.detach() for k, v in losses.items()}
        if adversarial and self.gan_loss is not None and "discriminator" in nets:
            for _ in range(cfg.disc_repeat):
                logs |= self._discriminator_step(nets["discriminator"], optimizers["discriminator"], sr.detach(), gt)
        return logs

    def _texture_losses(self, nets, sr, gt, soft, textures) -> dict[str, torch.Tensor]:
        cfg, losses = self.cfg, {}
        if self.perceptual is not None:
            percep, style = self.perceptual.to(sr.device)(sr, gt)
            if percep is not None:
                losses["loss/perceptual"] = percep
            if style is not None:
                losses["loss/style"] = style
        if cfg.transferal is not None:
            t = cfg.transferal
            with frozen(nets["extractor"]) as lte:
                sr_textures = lte((sr + 1) / 2)
            losses["loss/transferal"] = transferal_perceptual_loss(sr_textures, soft, textures, t.weight,
                                                                   t.use_attention, t.criterion)
        if self.gan_loss is not None and "discriminator" in nets:
            with frozen(nets["discriminator"]) as critic:
                losses["loss/gan"] = self.gan_loss(critic(sr), target_is_real=True, is_disc=False)
        return losses

    def _discriminator_step(self, d, optimizer, fake, real) -> dict[str, torch.Tensor]:
        """Real term, backward; fake term, backward; one step (the reference's order)."""
        optimizer.zero_grad(set_to_none=True)
        loss_real = self.gan_loss(d(real), target_is_real=True, is_disc=True)
        loss_real.backward()
        loss_fake = self.gan_loss(d(fake), target_is_real=False, is_disc=True)
        loss_fake.backward()
        optimizer.step()
        return {"loss/d_real": loss_real.detach(), "loss/d_fake": loss_fake.detach()}

    # ------------------------------------------------------------------ evaluation
    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """PIL-bicubic upscaling of the LR input: the ``lq_up`` the search already uses."""
        return "bicubic", batch["lq_up"][:1]

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """input (nearest-upsampled) | reference (fitted to the GT) | output | GT."""
        gt = batch["gt"][0]
        lq = _up(batch["lq"][0], self.cfg.data.scale)[..., : gt.shape[-2], : gt.shape[-1]]
        return to_uint8_image(torch.cat([lq, batch["ref"][0], pred[0].clamp(0, 1), gt], dim=-1))

    # ------------------------------------------------------------------ inference
    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """An LR image and its reference -> the batch the zoo's test pipeline makes: ``lq_up`` the
        LR image x4 (PIL bicubic), the reference cut to a multiple of 4 with its ``ref_downup``."""
        scale = self.cfg.data.scale
        image, ref = inputs["image"], inputs["ref"]
        if ref.ndim != 3 or ref.shape[2] != 3:
            raise ValueError(f"reference: expected an RGB image, got shape {ref.shape}")
        ref = ref[: ref.shape[0] - ref.shape[0] % scale, : ref.shape[1] - ref.shape[1] % scale]
        if min(ref.shape[:2]) < 4 * scale or min(image.shape[:2]) < 4:
            raise ValueError(f"reference {ref.shape[1]}x{ref.shape[0]} or input {image.shape[1]}x{image.shape[0]} "
                             "too small (the search needs at least 4 px at the coarsest level)")
        views = {"lq": image, "lq_up": pil_rescale(image, float(scale)), "ref": ref,
                 "ref_downup": pil_rescale(pil_rescale(ref, 1 / scale), float(scale))}
        return {k: image_batch(v, k)[k] for k, v in views.items()}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return to_uint8_image(pred[0])


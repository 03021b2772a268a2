"""The inpainting family: DeepFill v1/v2, Global&Local, PConv, AOT-GAN (mmedit 0.16's inpaintors,
without their class hierarchy).

Every inpaintor sees ``gt`` in [-1, 1] (``(x - 127.5) / 127.5``; in BGR order where the zoo's
weights expect it, ``channel_order``) and a mask ``[B,1,H,W]`` with 1 = hole; ``masked = gt·(1 −
mask)``; the composite is ``masked·(1 − mask) + res·mask``. What differs, per ``inpaintor``
(each arch file's docstring gives the reference's details):

* ``deepfill_v1``: ``G(cat[masked, 1, mask]) -> (stage1, stage2)``; L1 on hole and valid for
  both stages; WGAN critics on the whole composite and a 128 px patch around the hole (global +
  local ``disc``), with gradient penalty and disc-shift terms; the critic steps every
  iteration, the generator every ``disc_steps``-th.
* ``deepfill_v2``: the same generator call; SN-PatchGAN on ``cat[image, mask]``, hinge loss.
* ``gl``: ``G(cat[masked, mask])``; generator-only on the hole L1 until ``iter_tc``, then
  discriminator-only (global + local) until ``iter_td``, then both (vanilla GAN).
* ``pconv``: ``G(masked, 1 − mask)`` (a validity mask) ``-> (res, mask)``; hole/valid L1,
  VGG16 perceptual and style on composite and output, total variation on the composite.
* ``aot``: ``G(cat[masked + mask, mask])``; soft-mask PatchGAN (``smgan``), whole-image L1,
  VGG19 perceptual and style on the output.

Metrics on the composite, as mmedit evaluates (:mod:`trainers.inpainting_metrics`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from trainers.inpainting_metrics import gt_to_model_range, inpainting_scores, mask_area_bucket
from trainers.losses import GANLoss, PerceptualLoss, disc_shift_loss, gradient_penalty_loss, l1_loss
from trainers.losses.vgg import TORCHVISION_URLS
from trainers.samplers.inpainting import InpaintingDataConfig, InpaintingSampler
from trainers.strict import Strict
from trainers.tasks.common import frozen, optimizer_step, to_batch, to_uint8_image, unwrap
from trainers.tasks.sr_gan import PerceptualConfig

INPAINTORS = ("deepfill_v1", "deepfill_v2", "gl", "pconv", "aot")
_GAN_OF = {"deepfill_v1": "wgan", "deepfill_v2": "hinge", "gl": "vanilla", "aot": "smgan"}


class InpaintingGANConfig(Strict):
    weight: float = Field(gt=0, description="the generator's adversarial weight (mmedit's loss_gan.loss_weight)")
    gp_weight: float = Field(0.0, ge=0, description="WGAN-GP gradient penalty (DeepFill v1: 10)")
    disc_shift_weight: float = Field(0.0, ge=0, description="disc-shift loss (DeepFill v1: 1e-3)")


class InpaintingConfig(Strict):
    """``task:`` of the inpainting family."""

    name: Literal["inpainting"] = "inpainting"
    inpaintor: Literal["deepfill_v1", "deepfill_v2", "gl", "pconv", "aot"]
    data: InpaintingDataConfig
    channel_order: Literal["rgb", "bgr"] = Field(
        "bgr", description="what the network sees: mmcv loaded BGR and the zoo's pipelines never swapped")
    l1_hole: float = Field(1.0, ge=0, description="L1 on the hole (PConv: 6)")
    l1_valid: float = Field(1.0, ge=0, description="L1 on the known part (GL: 0; AOT: the whole image, unmasked)")
    gan: InpaintingGANConfig | None = None
    perceptual: PerceptualConfig | None = Field(None, description="PConv: VGG16 {4,9,16}; AOT: VGG19")
    tv_weight: float = Field(0.0, ge=0, description="masked total variation on the composite (PConv: 0.1)")
    disc_steps: int = Field(1, ge=1, description="DeepFill v1: the generator steps once per disc_steps critic steps")
    local_size: int = Field(128, ge=8, description="DeepFill v1 / GL: side of the local patch around the hole")
    pad_multiple: int = Field(8, ge=1, description="inference pads (edge) to this multiple and crops back "
                              "(DeepFill 8, GL/AOT 4, PConv 2**num_layers: 128)")
    iter_tc: int = Field(0, ge=0, description="GL: generator-only (hole L1) until this iteration")
    iter_td: int = Field(0, ge=0, description="GL: then discriminator-only until this iteration")
    start_iter: int = Field(0, ge=0, description="GL: the iteration counter's start (Places: 350000)")

    @model_validator(mode="after")
    def _consistent(self) -> "InpaintingConfig":
        if self.inpaintor == "pconv":
            if self.gan is not None:
                raise ValueError("gan: PConv trains without a discriminator")
        elif self.gan is None:
            raise ValueError(f"gan: {self.inpaintor} needs its adversarial weight (gan.weight)")
        if self.iter_td < self.iter_tc:
            raise ValueError(f"iter_td: {self.iter_td} is before iter_tc {self.iter_tc}")
        return self


def hole_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of the hole of a ``[1,H,W]`` mask (its bounding box)."""
    ys, xs = torch.nonzero(mask[0] > 0, as_tuple=True)
    if ys.numel() == 0:
        return 0, 0, 0, 0
    top, left = int(ys.min()), int(xs.min())
    return top, left, int(ys.max()) - top + 1, int(xs.max()) - left + 1


def hole_boxes(batch: dict[str, torch.Tensor], mask: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Per sample, the box the local patch is centred on: the sampler's ``mask_bbox`` (the box
    the bbox mask was drawn in, before mmedit's random shrink) when there is one, else the
    hole's bounding box."""
    if "mask_bbox" in batch:
        return [tuple(int(v) for v in row) for row in batch["mask_bbox"].reshape(-1, 4).tolist()]
    return [hole_box(m) for m in mask]


def local_patches(images: list[torch.Tensor], boxes: list[tuple[int, int, int, int]], size: int) -> list[torch.Tensor]:
    """Each image's ``size`` x ``size`` window around its sample's box, as mmedit's inpaintors
    cut it: the box grown about its centre, ``top' = max(0, top - (size - h) // 2)``, not clamped
    at the bottom/right (the zoo's boxes always fit)."""
    crops: list[list[torch.Tensor]] = [[] for _ in images]
    for b, (top, left, h, w) in enumerate(boxes):
        top, left = max(0, top - (size - h) // 2), max(0, left - (size - w) // 2)
        for out, img in zip(crops, images):
            out.append(img[b:b + 1, :, top:top + size, left:left + size])
    return [torch.cat(c) for c in crops]


def masked_tv(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mmedit's ``MaskedTVLoss`` (PConv): mean absolute neighbour difference over the hole, each
    direction normalised by its own mask area (×3 channels)."""
    dy = (img[..., :-1, :] - img[..., 1:, :]).abs() * mask[..., :-1, :]
    dx = (img[..., :, :-1] - img[..., :, 1:]).abs() * mask[..., :, :-1]
    return dy.sum() / (3 * mask[..., :-1, :].sum() + 1e-12) + dx.sum() / (3 * mask[..., :, :-1].sum() + 1e-12)


class InpaintingTask:
    """Fill the holes of an image."""

    Config = InpaintingConfig
    nets: ClassVar[dict[str, str]] = {
        "generator": "the inpainting network (deepfill_v1, deepfill_v2, gl, pconv, aot)",
        "disc": "its discriminator (deepfill_v1_disc, deepfill_v2_disc, gl_disc, aot_disc; none for PConv)",
    }
    optional_nets: ClassVar[frozenset[str]] = frozenset({"disc"})
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"l1": "min", "psnr": "max", "ssim": "max"}
    sync_batchnorm: ClassVar[bool] = True  # the zoo's GL and PConv trained with SyncBN across GPUs
    infer_inputs: ClassVar[tuple[str, ...]] = ("image", "mask")

    def __init__(self, cfg: InpaintingConfig):
        self.cfg = cfg
        self.gan = None if cfg.gan is None else GANLoss(_GAN_OF[cfg.inpaintor], loss_weight=cfg.gan.weight)
        p = cfg.perceptual
        self.perceptual = None if p is None else PerceptualLoss(
            p.layer_weights, p.layer_weights_style, p.vgg_type, p.use_input_norm, p.perceptual_weight,
            p.style_weight, p.norm_img, p.criterion, vgg_weights=p.vgg_weights,
            vgg_weights_field="task.perceptual.vgg_weights", vgg_sha256=p.vgg_sha256,
            allow_random_init=p.allow_random_init)
        self._boxes: list[tuple[int, int, int, int]] = []  # this step's local-patch boxes (DeepFill v1, GL)

    @staticmethod
    def sampler(cfg: InpaintingConfig) -> InpaintingSampler:
        return InpaintingSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: InpaintingConfig, nets: dict[str, dict[str, Any]]) -> None:
        if nets["generator"]["name"] != cfg.inpaintor:
            raise ValueError(f"nets.generator.name: inpaintor {cfg.inpaintor} trains a {cfg.inpaintor} generator, "
                             f"not {nets['generator']['name']}")
        if (cfg.gan is None) != ("disc" not in nets):
            raise ValueError("nets.disc: " + ("PConv has no discriminator" if cfg.gan is None
                                              else f"{cfg.inpaintor} needs its discriminator"))
        if "disc" in nets and nets["disc"]["name"] != f"{cfg.inpaintor}_disc":
            raise ValueError(f"nets.disc.name: {cfg.inpaintor} is judged by {cfg.inpaintor}_disc")

    @staticmethod
    def preflight(cfg: InpaintingConfig) -> None:
        p = cfg.perceptual
        if p is not None and p.vgg_weights and "://" not in p.vgg_weights and not os.path.isfile(p.vgg_weights):
            raise ValueError(f"task.perceptual.vgg_weights: {p.vgg_weights} not found (torchvision's {p.vgg_type} "
                             f"weights: {TORCHVISION_URLS[p.vgg_type]})")

    # ------------------------------------------------------------------ tensors
    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    def _prepare(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gt in [-1, 1] in the network's channel order, mask {0, 1})``; ``gt`` as mmcv's
        ``(k - 127.5) / 127.5`` of the 8-bit values, to the last bit."""
        gt = gt_to_model_range(batch["gt"])
        if self.cfg.channel_order == "bgr":
            gt = gt.flip(1)
        return gt, (batch["mask"] > 0).to(gt.dtype)

    def _generate(self, g: nn.Module, masked: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The generator's outputs in [-1, 1]-space (two stages for DeepFill, one otherwise)."""
        inp = self.cfg.inpaintor
        if inp in ("deepfill_v1", "deepfill_v2"):
            return list(g(torch.cat([masked, torch.ones_like(mask), mask], 1))[:2])
        if inp == "gl":
            return [g(torch.cat([masked, mask], 1))]
        if inp == "pconv":
            return [g(masked, (1 - mask).expand_as(masked))[0]]
        return [g(torch.cat([masked + mask, mask], 1))]

    # ------------------------------------------------------------------ training
    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        gt, mask = self._prepare(batch)
        self._boxes = hole_boxes(batch, mask) if self.cfg.inpaintor in ("deepfill_v1", "gl") else []
        masked = gt * (1 - mask)
        inp = self.cfg.inpaintor
        if inp == "gl":
            return self._gl_step(nets, optimizers, gt, mask, masked, step)
        # DeepFill v1: the critic steps every iteration, the generator when mmedit's counter
        # (step + 1) % disc_steps wraps to 0; a function of the step, so a resumed run agrees
        train_g = inp != "deepfill_v1" or (step + 1) % self.cfg.disc_steps == 0
        if inp == "pconv":
            res = self._generate(nets["generator"], masked, mask)
            loss, logs = self._generator_loss(res, gt, mask, masked, None)
            optimizer_step(optimizers["generator"], loss)
            return logs
        res = self._forward(nets["generator"], masked, mask, train_g)
        fake = masked * (1 - mask) + res[-1] * mask
        return self._adversarial_steps(nets, optimizers, res, gt, mask, masked, fake, train_g)

    def _gl_step(self, nets, optimizers, gt, mask, masked, step: int) -> dict[str, torch.Tensor]:
        """Global&Local's three phases by the iteration counter (``start_iter + step + 1``)."""
        it = self.cfg.start_iter + step + 1
        if it <= self.cfg.iter_tc:
            res = self._generate(nets["generator"], masked, mask)
            loss = self.cfg.l1_hole * l1_loss(res[0], gt, mask)
            optimizer_step(optimizers["generator"], loss)
            return {"loss/l1_hole": loss.detach()}
        train_g = it > self.cfg.iter_td
        res = self._forward(nets["generator"], masked, mask, train_g)
        fake = gt * (1 - mask) + res[0] * mask
        return self._adversarial_steps(nets, optimizers, res, gt, mask, masked, fake, train_g)

    def _forward(self, g: nn.Module, masked: torch.Tensor, mask: torch.Tensor, train_g: bool) -> list[torch.Tensor]:
        """The generator's outputs, without a graph (and outside DDP) when it does not step."""
        if train_g:
            return self._generate(g, masked, mask)
        with torch.no_grad():
            return self._generate(unwrap(g), masked, mask)

    def _adversarial_steps(self, nets, optimizers, res, gt, mask, masked, fake, train_g) -> dict[str, torch.Tensor]:
        """The discriminator's step on ``fake`` (detached), then, when it trains, the generator's
        against the just-updated discriminator (frozen), as every mmedit GAN inpaintor orders them."""
        logs = self._disc_step(nets["disc"], optimizers["disc"], gt, fake.detach(), mask)
        if train_g:
            with frozen(nets["disc"]) as critic:
                loss, g_logs = self._generator_loss(res, gt, mask, masked, critic)
            optimizer_step(optimizers["generator"], loss)
            logs |= g_logs
        return logs

    def _judge(self, d, img: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The discriminator's predictions of one image batch, as each inpaintor feeds it."""
        inp = self.cfg.inpaintor
        if inp in ("deepfill_v1", "gl"):  # v1: two critics' scores; GL: one score of the pair
            out = d(img, *local_patches([img], self._boxes, self.cfg.local_size))
            return list(out) if isinstance(out, (tuple, list)) else [out]
        if inp == "deepfill_v2":
            return [d(torch.cat([img, mask], 1))]
        return [d(img)]

    def _gan(self, pred: torch.Tensor, real: bool, is_disc: bool, mask: torch.Tensor) -> torch.Tensor:
        return self.gan(pred, target_is_real=real, is_disc=is_disc, mask=mask if self.cfg.inpaintor == "aot" else None)

    def _disc_step(self, d, optimizer, gt, fake, mask) -> dict[str, torch.Tensor]:
        """Fake and real terms (+ DeepFill v1's penalty and shift terms), one step."""
        cfg = self.cfg
        optimizer.zero_grad(set_to_none=True)
        terms = {}
        for name, img, real in (("fake", fake, False), ("real", gt, True)):
            for i, pred in enumerate(self._judge(d, img, mask)):
                t = self._gan(pred, real, True, mask)
                terms[f"d_{name}{'_local' if i else ''}"] = t
                if cfg.gan.disc_shift_weight:
                    terms[f"d_shift_{name}{'_local' if i else ''}"] = 0.5 * cfg.gan.disc_shift_weight * disc_shift_loss(t)
        if cfg.gan.gp_weight:
            inner = unwrap(d)
            terms["d_gp"] = cfg.gan.gp_weight * gradient_penalty_loss(inner.global_disc, gt, fake, mask)
            gt_local, fake_local = local_patches([gt, fake], self._boxes, cfg.local_size)
            terms["d_gp_local"] = cfg.gan.gp_weight * gradient_penalty_loss(inner.local_disc, gt_local, fake_local)
        sum(terms.values()).backward()  # GL backpropagates fake and real in turn: the same gradients
        optimizer.step()
        return {f"loss/{k}": v.detach() for k, v in terms.items()}

    def _generator_loss(self, res, gt, mask, masked, critic) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, inp, losses = self.cfg, self.cfg.inpaintor, {}
        for k, r in enumerate(res):
            stage = f"stage{k + 1}_" if len(res) > 1 else ""
            if cfg.l1_hole:
                losses[f"{stage}l1_hole"] = cfg.l1_hole * l1_loss(r, gt, mask)
            if cfg.l1_valid:
                # AOT's "valid" L1 carries no mask: the whole image
                losses[f"{stage}l1_valid"] = cfg.l1_valid * (l1_loss(r, gt) if inp == "aot" else l1_loss(r, gt, 1 - mask))
        fake = masked * (1 - mask) + res[-1] * mask
        if self.perceptual is not None:
            vgg = self.perceptual.to(fake.device)
            targets = [("", res[-1])] if inp == "aot" else [("comp_", fake), ("", res[-1])]
            for prefix, img in targets:
                percep, style = vgg(img, gt)
                if percep is not None:
                    losses[f"{prefix}percep"] = percep
                if style is not None:
                    losses[f"{prefix}style"] = style
        if cfg.tv_weight:
            losses["tv"] = cfg.tv_weight * masked_tv(fake, mask)
        if critic is not None:
            preds = self._judge(critic, fake, mask)
            losses["g_gan"] = sum(self._gan(p, True, False, mask) for p in preds)
        return sum(losses.values()), {f"loss/{k}": v.detach() for k, v in losses.items()}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The generator's raw output (last stage) in RGB order on its [-1, 1] scale, ``[B,3,H,W]``:
        what mmedit's metrics take (its L1 reads the unclamped output); :meth:`composite` makes
        the picture."""
        gt, mask = self._prepare(batch)
        h, w = gt.shape[-2:]
        m = self.cfg.pad_multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        if any(pad):  # an input of any size: edge-padded to the network's multiple, cropped back
            gt, mask = F.pad(gt, pad, mode="replicate"), F.pad(mask, pad, mode="replicate")
        res = self._generate(nets["generator"], gt * (1 - mask), mask)[-1].float()[..., :h, :w]
        return res.flip(1) if self.cfg.channel_order == "bgr" else res

    @staticmethod
    def composite(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``pred`` in the hole, the input elsewhere, in [0, 1] RGB (what is shown and written)."""
        mask = (batch["mask"] > 0).to(pred.dtype)
        return batch["gt"] * (1 - mask) + ((pred + 1) / 2).clamp(0, 1) * mask

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """mmedit's L1 (on the hole; AOT-GAN: the composite's whole image, as its inpaintor
        passes it), PSNR and SSIM of the composite; see :mod:`trainers.inpainting_metrics`."""
        mask = (batch["mask"][:1] > 0).float()
        gt = gt_to_model_range(batch["gt"][:1])
        if self.cfg.inpaintor == "aot":
            fake = pred[:1] * mask + gt * (1 - mask)
            return inpainting_scores(fake, gt, mask, l1_region="image")
        return inpainting_scores(pred[:1], gt, mask)

    @staticmethod
    def group(batch: dict[str, torch.Tensor]) -> str:
        """The hole-area bucket of the first sample (``"50-60%"``): ``restoray eval`` reports the
        scores per bucket too, as the AOT-GAN tables do."""
        return mask_area_bucket((batch["mask"][0, 0] > 0).to(torch.uint8).cpu().numpy())

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """masked input (holes white) | raw output | composite | GT."""
        mask = (batch["mask"][:1] > 0).float()
        shown = batch["gt"][:1] * (1 - mask) + mask
        raw = ((pred[:1] + 1) / 2).clamp(0, 1)
        tiles = [shown[0], raw[0], self.composite(pred[:1], batch)[0], batch["gt"][0]]
        return to_uint8_image(torch.cat(tiles, dim=-1))

    # ------------------------------------------------------------------ inference I/O
    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        image, mask = inputs["image"], inputs["mask"]
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.shape[1]}x{image.shape[0]}: "
                             "they must be the same size")
        values = np.unique(mask)
        if not set(values.tolist()) <= {0, 255} and not set(values.tolist()) <= {0, 1}:
            raise ValueError(f"mask is not binary (values {values[:5].tolist()}...): use 0 and 255 (255 = hole)")
        if values.size == 1:
            raise ValueError("mask has no hole" if values[0] == 0 else "mask is all hole: nothing to fill from")
        return {"gt": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255),
                "mask": torch.from_numpy((mask > 0).astype(np.float32))[None, None]}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return to_uint8_image(self.composite(pred, batch)[0])

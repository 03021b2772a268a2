"""The matting family: DIM, GCA and IndexNet (mmedit 0.16's mattors, without their class hierarchy).

A mattor wraps one encoder-decoder (``backbone``) and, for DIM's stages 2 and 3, a ``refiner``:

* input: the composite normalised with ImageNet mean/std, concatenated with the trimap -- scaled
  to [0, 1] (DIM, IndexNet: 4 channels), one-hot over (bg, unknown, fg) (GCA: 6 channels) or as
  class indices 0/1/2 (GCA's ``dimaug`` configs: 4 channels);
* output: the backbone's raw alpha through the mattor's activation -- sigmoid (DIM), ``(tanh + 1)
  / 2`` (GCA) or none (IndexNet: its last layer is a plain convolution, so the losses see the
  unbounded output; only test time clips it);
* DIM's refiner sees the image with the predicted alpha and refines the raw alpha;
* losses only on the unknown region of the trimap (mmedit's ``get_unknown_tensor``): the alpha
  loss, the composition loss (``a·fg + (1 − a)·bg`` against the un-normalised composite, DIM and
  IndexNet) and DIM's refinement loss;
* ``train_backbone: false`` (DIM stage 2) freezes the backbone as ``freeze_backbone`` does: eval
  mode, no gradient;
* test time: the full image, padded by reflection (DIM, GCA) or resized (IndexNet) to a multiple
  of 32, the prediction cropped or resized back, clipped to [0, 1] and forced to the trimap's
  known regions (``restore_shape``), then scored with SAD, MSE, GRAD and CONN.

Images in the batch: ``merged``, ``fg``, ``bg`` ``[B,3,H,W]`` and ``alpha``, ``trimap``
``[B,1,H,W]``, all float in [0, 1] (the trimap's unknown value is 128/255).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from trainers.losses import charbonnier_loss, l1_loss
from trainers.matting_metrics import matting_scores
from trainers.samplers.matting import MattingDataConfig, MattingSampler
from trainers.strict import Strict
from trainers.tasks.common import to_batch, to_uint8_image, unwrap

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNKNOWN = 128 / 255
_LOSSES = {"l1": l1_loss, "charbonnier": charbonnier_loss}


class MattingLossConfig(Strict):
    """One of mmedit's masked pixel losses (``L1Loss``, ``CharbonnierLoss`` and their ``Comp``
    variants), reduced over the unknown region."""

    name: Literal["l1", "charbonnier"] = "charbonnier"
    weight: float = Field(1.0, gt=0)
    sample_wise: bool = Field(False, description="mean per sample over its own unknown area (IndexNet)")


class MattingEvalConfig(Strict):
    """How a full-size test image meets the network's downsampling factor."""

    fit: Literal["pad", "resize"] = Field(
        "pad", description="pad: reflect-pad to the multiple, crop back (DIM, GCA); "
        "resize: bicubic to the multiple below, resize back (IndexNet)")
    multiple: int = Field(32, ge=1)


class MattingConfig(Strict):
    """``task:`` of the matting family."""

    name: Literal["matting"] = "matting"
    data: MattingDataConfig
    trimap_input: Literal["scaled", "onehot", "classes"] = Field(
        "scaled", description="scaled: trimap / 255 as a 4th channel (DIM, IndexNet); onehot: 3 channels (GCA); "
        "classes: 0/1/2 as a 4th channel (GCA's dimaug configs, FormatTrimap(to_onehot=False))")
    output: Literal["sigmoid", "tanh", "none"] = Field(
        "sigmoid", description="the mattor's activation on the backbone's output: DIM sigmoid, "
        "GCA (tanh + 1) / 2, IndexNet none")
    alpha_loss: MattingLossConfig | None = MattingLossConfig(weight=0.5)
    comp_loss: MattingLossConfig | None = None
    refine_loss: MattingLossConfig | None = None
    train_backbone: bool = True
    train_refiner: bool = False
    refine: bool = Field(False, description="predict with the refiner's output (DIM stages 2 and 3)")
    eval: MattingEvalConfig = MattingEvalConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "MattingConfig":
        if not (self.train_backbone or self.train_refiner):
            raise ValueError("train_backbone: at least one of train_backbone and train_refiner must be true")
        if self.train_backbone and self.alpha_loss is None and self.comp_loss is None:
            raise ValueError("alpha_loss: train_backbone needs alpha_loss or comp_loss")
        if self.train_refiner and self.refine_loss is None:
            raise ValueError("refine_loss: train_refiner needs refine_loss")
        return self


def unknown_region(trimap: torch.Tensor) -> torch.Tensor:
    """``[B,1,H,W]`` float mask of the trimap's unknown pixels (value 128/255)."""
    return ((trimap - UNKNOWN).abs() < 0.5 / 255).float()


def trimap_classes(trimap: torch.Tensor) -> torch.Tensor:
    """0 / 128 / 255 (as float in [0, 1]) -> class 0 / 1 / 2, ``[B,H,W]`` long."""
    return (trimap[:, 0] * 2).round().long().clamp(0, 2)


class MattingTask:
    """Predict an alpha matte from a composite and its trimap."""

    Config = MattingConfig
    nets: ClassVar[dict[str, str]] = {
        "backbone": "the encoder-decoder (dim, gca, gca_baseline, indexnet)",
        "refiner": "DIM's refinement network (plain_refiner; stages 2 and 3)",
    }
    optional_nets: ClassVar[frozenset[str]] = frozenset({"refiner"})
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"sad": "min", "mse": "min", "grad": "min", "conn": "min"}
    infer_inputs: ClassVar[tuple[str, ...]] = ("image", "trimap")

    def __init__(self, cfg: MattingConfig):
        self.cfg = cfg
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @staticmethod
    def sampler(cfg: MattingConfig) -> MattingSampler:
        return MattingSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: MattingConfig, nets: dict[str, dict[str, Any]]) -> None:
        needs_refiner = cfg.train_refiner or cfg.refine
        if needs_refiner and "refiner" not in nets:
            raise ValueError("nets.refiner: train_refiner/refine need a refiner network")
        if "refiner" in nets and not needs_refiner:
            raise ValueError("nets.refiner: set task.train_refiner or task.refine, or drop the refiner")
        channels = nets["backbone"].get("in_channels")
        want = 6 if cfg.trimap_input == "onehot" else 4
        if channels is not None and channels != want:
            raise ValueError(f"nets.backbone.in_channels: {channels}, but trimap_input {cfg.trimap_input} "
                             f"makes {want} input channels")

    # ------------------------------------------------------------------ network input and output
    def network_input(self, merged: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised composite + trimap in the family's encoding."""
        x = (merged - self.mean.to(merged)) / self.std.to(merged)
        if self.cfg.trimap_input == "onehot":
            t = F.one_hot(trimap_classes(trimap), 3).permute(0, 3, 1, 2).to(x)
        elif self.cfg.trimap_input == "classes":
            t = trimap_classes(trimap)[:, None].to(x)
        else:
            t = trimap.to(x)
        return torch.cat([x, t], dim=1)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        if self.cfg.output == "sigmoid":
            return raw.sigmoid()
        if self.cfg.output == "tanh":
            return (raw.tanh() + 1.0) / 2.0
        return raw

    def forward(self, nets: dict[str, nn.Module], x: torch.Tensor, refine: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(alpha, refined alpha or None)`` as the mattor's ``_forward``."""
        if self.cfg.train_backbone or not torch.is_grad_enabled():
            raw = nets["backbone"](x)
        else:  # DIM stage 2: the frozen backbone, in eval mode, outside DDP
            with torch.no_grad():
                raw = unwrap(nets["backbone"]).eval()(x)
        alpha = self.activate(raw)
        if not refine:
            return alpha, None
        return alpha, nets["refiner"](torch.cat([x[:, :3], alpha], dim=1), raw)

    # ------------------------------------------------------------------ training
    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        x = self.network_input(batch["merged"], batch["trimap"])
        alpha, refined = self.forward(nets, x, cfg.train_refiner)
        weight = unknown_region(batch["trimap"])
        terms: dict[str, torch.Tensor] = {}
        if cfg.train_backbone and cfg.alpha_loss is not None:
            a = cfg.alpha_loss
            terms["alpha"] = a.weight * _LOSSES[a.name](alpha.float(), batch["alpha"], weight, sample_wise=a.sample_wise)
        if cfg.train_backbone and cfg.comp_loss is not None:
            c = cfg.comp_loss
            comp = alpha.float() * batch["fg"] + (1.0 - alpha.float()) * batch["bg"]
            terms["comp"] = c.weight * _LOSSES[c.name](comp, batch["merged"], weight.expand(-1, 3, -1, -1),
                                                       sample_wise=c.sample_wise)
        if cfg.train_refiner:
            r = cfg.refine_loss
            terms["refine"] = r.weight * _LOSSES[r.name](refined.float(), batch["alpha"], weight, sample_wise=r.sample_wise)
        trained = [role for role, on in (("backbone", cfg.train_backbone), ("refiner", cfg.train_refiner)) if on]
        for role in trained:
            optimizers[role].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for role in trained:
            optimizers[role].step()
        return {f"loss/{k}": v.detach() for k, v in terms.items()}

    # ------------------------------------------------------------------ evaluation
    def _fit(self, merged: torch.Tensor, trimap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The test input at the network's multiple (mmedit's ``Pad`` or ``Resize(size_factor)``)."""
        m = self.cfg.eval.multiple
        h, w = merged.shape[-2:]
        if self.cfg.eval.fit == "pad":
            ph, pw = (-h) % m, (-w) % m
            if ph or pw:  # numpy's reflect == torch's reflect; pad may exceed the size for tiny inputs
                merged = torch.from_numpy(np.pad(merged.cpu().numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)),
                                                 mode="reflect")).to(merged.device)
                trimap = torch.from_numpy(np.pad(trimap.cpu().numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)),
                                                 mode="reflect")).to(trimap.device)
            return merged, trimap
        nh, nw = h - h % m, w - w % m
        if nh < m or nw < m:
            raise ValueError(f"image {w}x{h} is smaller than the network's multiple {m}")
        if (nh, nw) == (h, w):
            return merged, trimap
        img = cv2.resize(merged[0].permute(1, 2, 0).cpu().numpy(), (nw, nh), interpolation=cv2.INTER_CUBIC)
        tri = cv2.resize(trimap[0, 0].cpu().numpy(), (nw, nh), interpolation=cv2.INTER_NEAREST)
        return (torch.from_numpy(img).permute(2, 0, 1)[None].to(merged.device),
                torch.from_numpy(tri)[None, None].to(trimap.device))

    def _restore(self, alpha: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        """Back to the input's size, clipped, known regions forced (``restore_shape``)."""
        h, w = trimap.shape[-2:]
        if alpha.shape[-2:] != (h, w):
            if self.cfg.eval.fit == "pad":
                alpha = alpha[..., :h, :w]
            else:
                a = cv2.resize(alpha[0, 0].float().cpu().numpy(), (w, h), interpolation=cv2.INTER_CUBIC)
                alpha = torch.from_numpy(a)[None, None].to(trimap.device)
        alpha = alpha.float().clamp(0, 1)
        classes = trimap_classes(trimap)[:, None]
        alpha = torch.where(classes == 0, torch.zeros_like(alpha), alpha)
        return torch.where(classes == 2, torch.ones_like(alpha), alpha)

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[1,1,H,W]`` alpha in [0, 1] at the input's size (a batch of one full image)."""
        merged, trimap = self._fit(batch["merged"], batch["trimap"])
        alpha, refined = self.forward(nets, self.network_input(merged, trimap), self.cfg.refine)
        return self._restore(refined if self.cfg.refine else alpha, batch["trimap"])

    @staticmethod
    def _u8(x: torch.Tensor) -> np.ndarray:
        return (x[0, 0].float().cpu().numpy() * 255).round().astype(np.uint8)

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return matting_scores(pred[0, 0].float().cpu().numpy(), self._u8(batch["alpha"]), self._u8(batch["trimap"]))

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """image | trimap | predicted alpha | GT alpha | the image over a plain green background."""
        grey = lambda t: t[0].expand(3, -1, -1)  # noqa: E731
        green = torch.tensor([0.0, 0.7, 0.2], device=pred.device).view(3, 1, 1)
        composite = batch["merged"][0] * pred[0] + green * (1 - pred[0])
        tiles = [batch["merged"][0], grey(batch["trimap"]), grey(pred.clamp(0, 1))]
        if "alpha" in batch:
            tiles.append(grey(batch["alpha"]))
        return to_uint8_image(torch.cat(tiles + [composite], dim=-1))

    # ------------------------------------------------------------------ inference I/O
    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        image, trimap = inputs["image"], inputs["trimap"]
        if trimap.shape != image.shape[:2]:
            raise ValueError(f"trimap is {trimap.shape[1]}x{trimap.shape[0]}, the image "
                             f"{image.shape[1]}x{image.shape[0]}: they must be the same size")
        odd = np.setdiff1d(np.unique(trimap), (0, 128, 255))
        if odd.size:
            raise ValueError(f"trimap has values {odd[:5].tolist()} besides 0/128/255")
        return {"merged": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255),
                "trimap": torch.from_numpy(trimap)[None, None].float().div(255)}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return self._u8(pred)


def composite_on(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The image's foreground (the image itself, weighted by alpha) over a new background, resized
    to the image (bicubic); uint8 in, uint8 out."""
    bg = cv2.resize(background, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.clip(image * a + bg * (1 - a), 0, 255).round().astype(np.uint8)

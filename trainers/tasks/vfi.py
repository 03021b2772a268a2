"""The frame-interpolation family ``vfi``: CAIN, FLAVR and TOFlow-VFI (mmedit 0.16.1's
``CAIN``, ``FLAVR`` and ``BasicInterpolator`` models).

Batches: ``inputs`` ``[B, T_in, 3, H, W]`` (the frames around the missing one, in time order)
and ``gt`` ``[B, 3, H, W]`` (the missing frame), see :mod:`trainers.samplers.vfi`. Training is
one pixel loss between the generator's output and ``gt`` (L1 for CAIN and FLAVR, Charbonnier
for TOFlow-VFI); the generator runs without padding (training crops are multiples of its
factor).

Evaluation runs each network as the zoo tests it and crops back to the input size: CAIN with
``padding_flag=True`` (its own centred padding to a multiple of 128), TOFlow-VFI as it is (it
pads to 16 itself), FLAVR padded here to a multiple of 8 (centred, reflection; mmedit pads
nothing and needs Vimeo's 448x256, which is one). The output is clamped to [0, 1] and scored
as mmedit's ``BasicInterpolator.evaluate``: RGB PSNR and SSIM on ``tensor2img``-rounded images,
crop border 0. ``restoray eval`` also scores the average of the two frames around the target
(``blend``), the baseline every interpolator must beat.

Inference (``infer_kind = "interpolate"``): ``restoray infer`` turns a video into the same video
at twice the frame rate, each original frame followed by the one synthesised between it and the
next (``pipelines/infer_video.py``), and a pair of images into their middle frame. Every gap
gets a frame: a network with more than two inputs (FLAVR's four) sees the first and last frames
repeated at the ends, where mmedit's demo leaves the first and last gaps out.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from trainers.losses import pixel_loss
from trainers.metrics import psnr, ssim, tensor_to_image
from trainers.samplers.vfi import VFIDataConfig, VFISampler
from trainers.strict import Strict
from trainers.tasks.common import optimizer_step, to_batch, to_uint8_image, unwrap
from trainers.tasks.sr import PixelLossConfig

#: Input frames each architecture takes (``check_nets``); FLAVR's is its ``num_input_frames``.
TWO_FRAME_ARCHS = frozenset({"cain", "tof_vfi"})
#: Evaluation padding done here for networks that neither pad themselves nor take ``padding_flag``.
PAD_MULTIPLE = {"FLAVRNet": 8}


class VFIEvalConfig(Strict):
    crop_border: int = Field(0, ge=0)
    convert_to: Literal["rgb", "y"] = "rgb"
    round: bool = Field(True, description="score uint8-rounded frames (mmedit 0.x's tensor2img)")


class VFIConfig(Strict):
    """``task:`` of the frame-interpolation family."""

    name: Literal["vfi"] = "vfi"
    data: VFIDataConfig = VFIDataConfig()
    pixel: PixelLossConfig = PixelLossConfig(name="l1")
    eval: VFIEvalConfig = VFIEvalConfig()


def centred_padding(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` to the next multiples of ``multiple``, the odd pixel right / down."""
    pad_h, pad_w = -h % multiple, -w % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def synthesise(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The middle frame ``[B, 3, H, W]`` of ``inputs`` ``[B, T, 3, H, W]`` for any H, W, with the
    network's evaluation padding (see the module docstring); not clamped."""
    inner = unwrap(net)
    if "padding_flag" in inspect.signature(inner.forward).parameters:  # CAIN
        return net(inputs, padding_flag=True)
    multiple = PAD_MULTIPLE.get(type(inner).__name__, 1)
    b, t, c, h, w = inputs.shape
    left, right, top, bottom = centred_padding(h, w, multiple)
    if not (left or right or top or bottom):
        return net(inputs)
    mode = "reflect" if max(right, bottom) < min(h, w) else "replicate"
    x = F.pad(inputs.reshape(b * t, c, h, w), (left, right, top, bottom), mode=mode)
    out = net(x.view(b, t, c, h + top + bottom, w + left + right))
    return out[..., top:top + h, left:left + w]


def middle_pair(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two input frames around the target (``[..., T, 3, H, W]``)."""
    k = inputs.shape[-4] // 2
    return inputs[..., k - 1, :, :, :], inputs[..., k, :, :, :]


class VFITask:
    """One interpolation generator and one pixel loss."""

    Config = VFIConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the frame-interpolation network"}
    metrics: ClassVar[dict[str, Literal["max", "min"]]] = {"psnr": "max", "ssim": "max"}
    infer_inputs: ClassVar[tuple[str, ...]] = ("video",)
    infer_kind: ClassVar[str] = "interpolate"  # restoray infer: frame-rate doubling, not restoration

    def __init__(self, cfg: VFIConfig):
        self.cfg = cfg
        self.num_input_frames = len(cfg.data.input_frames)

    @staticmethod
    def sampler(cfg: Any) -> VFISampler:
        return VFISampler(cfg.data)

    @staticmethod
    def check_nets(cfg: Any, nets: dict[str, dict[str, Any]]) -> None:
        g = nets.get("generator", {})
        n = len(cfg.data.input_frames)
        want = 2 if g.get("name") in TWO_FRAME_ARCHS else g.get("num_input_frames")
        if want is not None and want != n:
            raise ValueError(f"task.data.input_frames: {g.get('name')} takes {want} input frames, "
                             f"the data gives {n}")
        if g.get("name") == "flavr" and g.get("num_output_frames", 1) != 1:
            raise ValueError("nets.generator.num_output_frames: the vfi task trains one target frame")

    def device_stage(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_batch(raw)

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        p = self.cfg.pixel
        pred = nets["generator"](batch["inputs"])
        loss = p.weight * pixel_loss(p.name, pred.float(), batch["gt"])
        optimizer_step(optimizers["generator"], loss)
        return {f"loss/{p.name}": loss.detach()}

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] (clamped, as the zoo's test)."""
        return synthesise(nets["generator"], batch["inputs"]).clamp(0, 1)

    def score(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """mmedit's PSNR / SSIM of the first sample of the batch."""
        e, gt = self.cfg.eval, batch["gt"]
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} does not match the GT {tuple(gt.shape)}")
        p, g = tensor_to_image(pred[0], round=e.round), tensor_to_image(gt[0], round=e.round)
        kw = dict(crop_border=e.crop_border, convert_to=e.convert_to)
        return {"psnr": psnr(p, g, **kw), "ssim": ssim(p, g, **kw)}

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """``frame 0 | synthesised | frame 1 | GT`` (frames 0 and 1: the inputs around the target)."""
        before, after = middle_pair(batch["inputs"][0])
        return to_uint8_image(torch.cat([before, pred[0].clamp(0, 1), after, batch["gt"][0]], dim=-1))

    def baseline(self, batch: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
        """The average of the two frames around the target."""
        before, after = middle_pair(batch["inputs"])
        return "blend", (before + after) / 2

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def interpolate(self, nets: dict[str, nn.Module], inputs: torch.Tensor) -> torch.Tensor:
        """Middle frames ``[B, 3, H, W]`` in [0, 1] of windows ``[B, T_in, 3, H, W]``."""
        if inputs.dim() != 5 or inputs.shape[1] != self.num_input_frames:
            raise ValueError(f"interpolation windows must be [B, {self.num_input_frames}, 3, H, W], "
                             f"got {list(inputs.shape)}")
        return synthesise(nets["generator"], inputs).clamp(0, 1)

    def infer_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """``{"video": [T_in, H, W, 3] uint8}`` (one window) -> ``{"inputs": [1, T_in, 3, H, W]}``."""
        clip = inputs["video"]
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"a window must be T x H x W x 3, got shape {clip.shape}")
        return {"inputs": torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)[None].float().div(255)}

    def infer_output(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """``[B, 3, H, W]`` -> ``[B, H, W, 3]`` uint8 frames."""
        return np.stack([to_uint8_image(f) for f in pred])

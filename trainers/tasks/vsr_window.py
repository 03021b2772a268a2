"""The sliding-window video super-resolution families: EDVR (M/L, with and without TSA), TDAN and
TOFlow-VSR (``vsr_window``).

Training batches are windows, ``lq`` ``[B,n,3,h,w]`` (n = ``data.num_input_frames``, 5 or 7)
and the GT of the window's centre frame ``gt`` ``[B,3,H,W]`` (``VSRWindowSampler``). The losses
are mmedit 0.16's ``EDVR`` restorer (one pixel loss; the zoo's EDVR configs take Charbonnier
with ``reduction: sum``, so the loss scales with the patch and batch size) and its ``TDAN``
restorer (MSE on the output plus ``aligned.weight`` x MSE between the network's aligned LR frames
and the centre LR frame repeated). EDVR-TSA's "only the fusion module trains for the first
``tsa_iter`` steps" is the optimizer's ``train_only_until_step: {fusion: N}``, not the task's.

TOFlow-VSR takes its 7 LQ frames already bicubic-upsampled to the output size (``upsample_lq``:
MATLAB ``imresize`` x ``scale`` per frame, rounded to uint8 as the zoo's ``BIx4up_direct`` PNGs,
done by the task on the worker's CPU) and normalises them itself (ImageNet mean/std).

``normalize: tdan`` is TDAN's data convention: frames go in as ``x - 0.5`` (mmedit's ``Normalize``
with mean 0.5 on [0, 1] frames, for LQ and GT alike) and 0.5 is added back to the output; the
aligned-frame loss compares frames in that shifted space (the shift cancels in every loss).

Validation, ``restoray eval`` and ``restoray infer`` restore every frame of a clip from its own
window, filled at the clip's ends by ``eval.padding`` (mmedit's ``GenerateFrameIndiceswithPadding``:
EDVR/TOFlow ``reflection_circle``, TDAN ``reflection``), and score as the recurrent family does
(``VSREval.score``: mean of per-frame PSNR/SSIM on rounded frames per clip, dataset mean over
clips; every REDS4 clip has 100 frames, so this equals mmedit's mean over frames). Inference in
chunks (``--max-seq-len``) pads each chunk at its own ends, so frames near a chunk border see a
padded window instead of their true neighbours; a last chunk too short for the padding mode
(``min_clip_frames``) is merged into the one before.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from degradations.matlab_resize import imresize

from trainers.losses import pixel_loss
from trainers.samplers.vsr import PADDINGS, VSRWindowDataConfig, VSRWindowSampler, padded_indices
from trainers.strict import Strict
from trainers.tasks.common import optimizer_step, to_uint8_image
from trainers.tasks.sr import PixelLossConfig
from trainers.tasks.vsr import VSREval, VSREvalConfig

#: Window networks whose output is 4x their input; TOFlow's output is its (pre-upsampled) input's size.
X4_WINDOW_ARCHS = frozenset({"edvr", "tdan"})
TDAN_FRAMES, TOF_FRAMES = 5, 7


class WindowPixelLossConfig(PixelLossConfig):
    reduction: Literal["mean", "sum"] = Field("mean", description="EDVR's zoo configs: sum")


class AlignedLossConfig(Strict):
    """TDAN's ``lq_pixel_loss``: the aligned LR frames against the centre LR frame repeated."""

    name: Literal["l1", "mse", "charbonnier"] = "mse"
    weight: float = Field(0.25, ge=0, description="0.25 for BIx4, 0.01 for BDx4 (the zoo)")


class VSRWindowEvalConfig(VSREvalConfig):
    frames: Literal["all", "centre"] = Field(
        "all", description="all: every frame of the clip from its padded window (REDS4, Vid4, SPMCS); "
        "centre: only the clip's centre frame (Vimeo-90K-T)")
    padding: Literal[PADDINGS] = Field(  # type: ignore[valid-type]
        "reflection_circle", description="GenerateFrameIndiceswithPadding at the clip's ends")
    window_batch: int = Field(8, ge=1, description="windows per forward pass (memory; results do not change)")


class VSRWindowConfig(Strict):
    """``task:`` of the sliding-window VSR families."""

    name: Literal["vsr_window"] = "vsr_window"
    data: VSRWindowDataConfig = VSRWindowDataConfig()
    pixel: WindowPixelLossConfig = WindowPixelLossConfig(name="charbonnier", reduction="sum")
    aligned: AlignedLossConfig | None = Field(None, description="TDAN's aligned-LR loss; needs a net returning it")
    normalize: Literal["none", "tdan"] = Field("none", description="tdan: frames as x - 0.5 in and out")
    upsample_lq: bool = Field(
        False, description="MATLAB-bicubic upsample the LQ frames by data.scale (uint8-rounded) before the net: "
        "TOFlow-VSR's input (the zoo's Vid4 BIx4up_direct)")
    eval: VSRWindowEvalConfig = VSRWindowEvalConfig()


class VSRWindowTask(VSREval):
    """One window network; pixel loss (+ TDAN's aligned-frame loss)."""

    Config = VSRWindowConfig
    nets: ClassVar[dict[str, str]] = {"generator": "the sliding-window VSR network (centre frame of a window)"}

    def __init__(self, cfg: VSRWindowConfig):
        super().__init__(cfg.data, cfg.eval)
        self.cfg = cfg
        self.shift = 0.5 if cfg.normalize == "tdan" else 0.0

    @property
    def min_clip_frames(self) -> int:
        """The shortest clip every frame of which ``eval.padding`` can pad a window for (video
        inference merges a shorter last chunk into the one before)."""
        n, mode = self.data.num_input_frames, self.eval_cfg.padding
        for total in range(1, n + 1):
            try:
                for t in range(total):
                    padded_indices(t, total, n, mode)
                return total
            except ValueError:
                continue
        return n

    @staticmethod
    def sampler(cfg: Any) -> VSRWindowSampler:
        return VSRWindowSampler(cfg.data)

    @staticmethod
    def check_nets(cfg: Any, nets: dict[str, dict[str, Any]]) -> None:
        g = nets.get("generator", {})
        name, n = g.get("name"), cfg.data.num_input_frames
        if name in X4_WINDOW_ARCHS and cfg.data.scale != 4:
            raise ValueError(f"task.data.scale: {name} upscales x4, the data is x{cfg.data.scale}")
        if name == "edvr":
            frames, centre = g.get("num_frames", 5), g.get("center_frame_idx", 2)
            if frames != n:
                raise ValueError(f"task.data.num_input_frames {n} != nets.generator.num_frames {frames}")
            if centre != n // 2:
                raise ValueError(f"nets.generator.center_frame_idx {centre}: the window's centre is {n // 2}")
        if name == "tdan" and n != TDAN_FRAMES:
            raise ValueError(f"task.data.num_input_frames: tdan takes {TDAN_FRAMES}-frame windows, got {n}")
        if name == "tof" and n != TOF_FRAMES:
            raise ValueError(f"task.data.num_input_frames: tof takes {TOF_FRAMES}-frame windows, got {n}")
        if name == "tof" and not cfg.upsample_lq:
            raise ValueError("task.upsample_lq: tof takes LQ frames already upsampled to the output size; set it true")
        if name in X4_WINDOW_ARCHS and cfg.upsample_lq:
            raise ValueError(f"task.upsample_lq: {name} upsamples x4 itself; leave it false")
        if cfg.aligned is not None and name not in (None, "tdan"):
            raise ValueError(f"task.aligned: only tdan returns aligned LR frames, not {name}")

    # ------------------------------------------------------------------ forward

    def _run(self, net: nn.Module, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(output, aligned LR frames or None)`` of windows in [0, 1], output back in [0, 1]
        and aligned frames in the network's own (shifted) space."""
        windows = windows.contiguous()  # stream batches are channel-moved views; the nets .view() their input
        out = net(windows - self.shift if self.shift else windows)
        out, aligned = out if isinstance(out, tuple) else (out, None)
        return out + self.shift if self.shift else out, aligned

    def net_input(self, lq: torch.Tensor) -> torch.Tensor:
        """``lq`` as the network takes it: MATLAB-bicubic x ``scale`` per frame (uint8-rounded,
        as the zoo's ``BIx4up_direct`` PNGs) with ``upsample_lq``, else unchanged."""
        if not self.cfg.upsample_lq:
            return lq
        frames = (lq.detach().flatten(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().clip(0, 255)
        up = np.stack([imresize(f.astype(np.uint8), scale=self.data.scale) for f in frames])
        up = torch.from_numpy(up).to(lq.device).permute(0, 3, 1, 2).float().div(255)
        return up.view(*lq.shape[:2], *up.shape[1:])

    def restore_frames(self, net: nn.Module, lq: torch.Tensor, frames: list[int] | None = None) -> torch.Tensor:
        """Frames ``frames`` (all by default) of clips ``lq`` ``[B,T,3,h,w]``, each from its
        padded window, ``window_batch`` windows per forward: ``[B,len(frames),3,H,W]``.

        Raises:
            ValueError: when the clip is too short for the window under the padding mode.
        """
        e, n = self.eval_cfg, self.data.num_input_frames
        lq = self.net_input(lq)
        b, total = lq.shape[:2]
        frames = list(range(total)) if frames is None else frames
        idx = [padded_indices(t, total, n, e.padding) for t in frames]
        outs = []
        for i in range(0, len(idx), e.window_batch):
            part = idx[i:i + e.window_batch]
            windows = torch.stack([lq[:, w] for w in part], 1)  # [B, k, n, 3, h, w]
            out = self._run(net, windows.flatten(0, 1))[0]
            outs.append(out.view(b, len(part), *out.shape[1:]))
        return torch.cat(outs, 1)

    @torch.no_grad()
    def predict(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B,T,3,H,W]`` for ``frames: all``; ``[B,1,3,H,W]`` (the centre frame) for ``centre``."""
        lq = batch["lq"]
        frames = [lq.shape[1] // 2] if self.eval_cfg.frames == "centre" else None
        return self.restore_frames(nets["generator"], lq, frames)

    @torch.no_grad()
    def restore_clip(self, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every frame of the chunk ``batch["lq"]``, windows padded at the chunk's ends."""
        return self.restore_frames(nets["generator"], batch["lq"])

    def preview(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """The clip's middle scored frame: its padded LQ window (nearest-upsampled) | output | GT."""
        lq, out = batch["lq"][0], pred[0]
        total, i = lq.shape[0], out.shape[0] // 2
        t = total // 2 if self.eval_cfg.frames == "centre" else i
        window = lq[padded_indices(t, total, self.data.num_input_frames, self.eval_cfg.padding)]
        h, w = out.shape[-2:]
        scale = max(h // lq.shape[-2], 1)
        up = window.repeat_interleave(scale, -2).repeat_interleave(scale, -1)[..., :h, :w]
        gt = self._targets(batch)[0, i] if "gt" in batch else out[i]
        return to_uint8_image(torch.cat([*up, out[i].clamp(0, 1), gt], dim=-1))

    # ------------------------------------------------------------------ train

    def train_step(self, nets, optimizers, batch, step: int) -> dict[str, torch.Tensor]:
        p, a, lq = self.cfg.pixel, self.cfg.aligned, batch["lq"]
        pred, aligned = self._run(nets["generator"], self.net_input(lq))
        logs = {f"loss/{p.name}": pixel_loss(p.name, pred.float(), batch["gt"], loss_weight=p.weight,
                                             reduction=p.reduction)}
        if a is not None:
            if aligned is None:
                raise ValueError("task.aligned: the generator returns no aligned LR frames (only tdan does)")
            logs["loss/aligned"] = aligned_loss(aligned.float(), lq - self.shift, a)
        optimizer_step(optimizers["generator"], sum(logs.values()))
        return {k: v.detach() for k, v in logs.items()}


def aligned_loss(aligned: torch.Tensor, window: torch.Tensor, cfg: AlignedLossConfig) -> torch.Tensor:
    """TDAN's ``lq_pixel_loss``: ``aligned`` ``[B,n,3,h,w]`` against the window's centre frame
    repeated n times (both in the network's value space), mean reduction, times the weight."""
    t = aligned.shape[1]
    ref = window[:, t // 2:t // 2 + 1].expand(-1, t, -1, -1, -1)
    return pixel_loss(cfg.name, aligned.flatten(0, 1), ref.flatten(0, 1), loss_weight=cfg.weight)

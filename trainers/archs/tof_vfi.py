"""TOFlow for video frame interpolation: two frames -> the frame half-way between them.

Paper: Xue, Chen, Wu, Wei & Freeman, "Video Enhancement with Task-Oriented Flow", IJCV 2019
(arXiv 1711.09078). Zoo config: ``tof_vfi_spynet_chair_nobn_1xb1_vimeo90k`` (MMEditing 0.16.1's
``TOFlowVFINet``; the config says ``type='TOFlowVFI'``, a name 0.16.1 never registered). The
zoo trains it under ``BasicInterpolator`` on Vimeo-90K triplets (im1, im3 -> im2), batch 1,
Charbonnier (mean), Adam 5e-5 betas (0.9, 0.99) weight decay 1e-4, 1M iterations halving the rate
at 200k/400k/600k/800k, with the flow network started from a SPyNet trained on FlyingChairs
(``flow_cfg.pretrained``; four more published checkpoints differ only in that start: KITTI,
Sintel clean/final, pytoflow). Test: output clamped to [0, 1], RGB PSNR/SSIM, no crop
(chair: 33.3294 / 0.9465).

Conventions, as MMEditing's:

* input ``[N, 2, 3, H, W]`` (frame 0, frame 1), RGB in [0, 1]; output ``[N, 3, H, W]``, not clamped;
* any H, W >= 9: the frames are padded at the bottom and right to multiples of 16 with
  *reflection* (before normalisation) and the output cropped back, so training crops and
  test frames need no padding by the caller (Vimeo's 256x448 needs none);
* ImageNet mean/std normalisation by default (``rgb_mean``/``rgb_std``, the ``mean``/``std``
  buffers in the state dict); the result is de-normalised;
* flows: ``flow_10 = spynet(frame0, frame1)`` and ``flow_01 = spynet(frame1, frame0)``; frame 0
  is warped with *half of* ``flow_01`` and frame 1 with half of ``flow_10`` (zeros outside), a
  linear-motion guess at the flows from the middle frame; the warped pair (6 channels) goes
  through ``resnet.res_block`` (9x9 conv to 64, ReLU, 1x1 to 64, ReLU, 1x1 to 3, PyTorch's
  default init) whose output is added to the mean of the two *warped* frames;
* the flow network is ``tof.TOFlowSPyNet`` (four levels, frames normalised before it, sides
  multiples of 16) with the per-level warps padded at the border; ``flow_cfg.norm_cfg`` None
  (the zoo, "nobn") builds it without batch norm, ``{"type": "BN"}`` with (``SyncBN`` is the
  same module here, see ``conv_module``).

``flow_cfg.pretrained`` keeps mmedit's meaning, "load this SPyNet file now": a local path (no
download), loaded strictly as mmcv does (a ``state_dict`` entry or the bare dict, ``module.``
stripped); the file holds the ``basic_module.*`` keys of the flow network alone.
"""

import os
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.edvr_blocks import load_pretrained_
from trainers.archs.flow import flow_warp
from trainers.archs.tof import IMAGENET_MEAN, IMAGENET_STD, SIZE_MULTIPLE, TOFlowSPyNet

FLOW_CFG_KEYS = ("norm_cfg", "pretrained")
NORM_TYPES = ("BN", "SyncBN")


class TOFlowResNet(nn.Module):
    """The fusion net: warped pair ``[N, 2, 3, H, W]`` -> their mean plus a residue ``[N, 3, H, W]``."""

    def __init__(self):
        super().__init__()
        self.res_block = nn.Sequential(
            nn.Conv2d(6, 64, kernel_size=9, stride=1, padding=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 3, kernel_size=1, stride=1, padding=0),
        )

    def forward(self, frames: Tensor) -> Tensor:
        """Residue on the channel-stacked pair, added to the pair's mean."""
        n, _, _, h, w = frames.shape
        return self.res_block(frames.reshape(n, -1, h, w)) + frames.mean(dim=1)


def _parse_flow_cfg(flow_cfg: dict | None) -> tuple[bool, str | os.PathLike | None]:
    """``flow_cfg`` -> (batch norm?, pretrained path); ValueError on anything else."""
    flow_cfg = {} if flow_cfg is None else flow_cfg
    if not isinstance(flow_cfg, dict) or set(flow_cfg) - set(FLOW_CFG_KEYS):
        raise ValueError(f"tof_vfi flow_cfg must be a dict with keys {', '.join(FLOW_CFG_KEYS)}, got {flow_cfg!r}")
    norm_cfg = flow_cfg.get("norm_cfg")
    if norm_cfg is not None and (not isinstance(norm_cfg, dict) or norm_cfg.get("type") not in NORM_TYPES
                                 or set(norm_cfg) - {"type", "requires_grad"}):
        raise ValueError(f"tof_vfi flow_cfg.norm_cfg must be None or {{'type': 'BN'}} (or 'SyncBN'), "
                         f"got {norm_cfg!r}")
    pretrained = flow_cfg.get("pretrained")
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise ValueError(f"tof_vfi flow_cfg.pretrained must be a path or None, got {type(pretrained).__name__}")
    return norm_cfg is not None, pretrained


class TOFlowVFINet(nn.Module):
    """TOFlow frame interpolation (see the module docstring).

    Args:
        rgb_mean: Per-channel mean subtracted from the [0, 1] RGB frames.
        rgb_std: Per-channel divisor.
        flow_cfg: ``{"norm_cfg": None | {"type": "BN"}, "pretrained": None | path}`` of the
            flow network.

    Raises:
        ValueError: On a mean/std that is not three numbers, a bad ``flow_cfg``, or a
            pretrained file that cannot be read or does not fit.
    """

    def __init__(self, rgb_mean: Sequence[float] = IMAGENET_MEAN, rgb_std: Sequence[float] = IMAGENET_STD,
                 flow_cfg: dict | None = None):
        super().__init__()
        if len(rgb_mean) != 3 or len(rgb_std) != 3:
            raise ValueError(f"tof_vfi rgb_mean and rgb_std need 3 values each, got {list(rgb_mean)} "
                             f"and {list(rgb_std)}")
        norm, pretrained = _parse_flow_cfg(flow_cfg)
        self.register_buffer("mean", torch.tensor([float(v) for v in rgb_mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(v) for v in rgb_std]).view(1, 3, 1, 1))
        self.spynet = TOFlowSPyNet(norm=norm, warp_padding="border")
        if pretrained is not None:
            with warnings.catch_warnings():  # a config check builds on the meta device: copies are no-ops
                warnings.filterwarnings("ignore", message=".*to a meta parameter", category=UserWarning)
                load_pretrained_(self.spynet, pretrained, "tof_vfi flow_cfg.pretrained")
        self.resnet = TOFlowResNet()

    def forward(self, inputs: Tensor) -> Tensor:
        """``inputs`` ``[N, 2, 3, H, W]`` in [0, 1] -> the middle frame ``[N, 3, H, W]``.

        Raises:
            ValueError: If ``inputs`` is not a pair of RGB frames of at least 9x9 pixels.
        """
        if inputs.dim() != 5 or inputs.shape[1] != 2 or inputs.shape[2] != 3:
            raise ValueError(f"tof_vfi expects frame pairs [N, 2, 3, H, W], got shape {list(inputs.shape)}")
        n, t, c, h, w = inputs.shape
        if h < 9 or w < 9:  # reflection padding to a multiple of 16 needs pad < size
            raise ValueError(f"tof_vfi needs frames of at least 9x9 pixels (reflection padding to "
                             f"multiples of {SIZE_MULTIPLE}), got {h}x{w}")
        pad_h, pad_w = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
        x = inputs.reshape(n * t, c, h, w)
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
        hp, wp = h + pad_h, w + pad_w
        x = ((x - self.mean) / self.std).view(n, t, c, hp, wp)
        frame0, frame1 = x[:, 0], x[:, 1]
        flow_10 = self.spynet(frame0, frame1).permute(0, 2, 3, 1)
        flow_01 = self.spynet(frame1, frame0).permute(0, 2, 3, 1)
        warped = torch.stack([flow_warp(frame0, flow_01 / 2), flow_warp(frame1, flow_10 / 2)], dim=1)
        out = self.resnet(warped) * self.std + self.mean
        return out[..., :h, :w]

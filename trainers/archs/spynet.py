"""SPyNet: the optical-flow network inside BasicVSR, IconVSR, RealBasicVSR and BasicVSR++.

Paper: Ranjan & Black, "Optical Flow Estimation using a Spatial Pyramid Network", CVPR 2017.
Zoo configs: not trained alone; it is the ``spynet`` submodule of every ``basicvsr*``,
``iconvsr*``, ``realbasicvsr*`` and ``basicvsr_plusplus*`` config, which start it from
``spynet_20210409-c6c1bd09.pth`` (``spynet_pretrained``) and train it at a 0.125 learning-rate
multiplier (frozen for the first ``fix_iter`` steps; RealBasicVSR keeps it frozen).

MMEditing 0.x's variant (``basicvsr_net.SPyNet``), which is not the paper's:

* six pyramid levels, one ``SPyNetBasicModule`` each (five 7x7 convs 8-32-64-32-16-2, ReLU
  between, no batch norm), coarsest first: ``basic_module.<level>.basic_module.<j>.conv``;
* frames are normalised with ImageNet mean/std (``mean``/``std`` buffers, part of the state
  dict) and expected as RGB in [0, 1];
* any size works: both frames are resized (bilinear, ``align_corners=False``) up to the next
  multiples of 32, and the flow is resized back and its x/y values scaled by ``w/w_up``,
  ``h/h_up``; coarser levels are 2x2 average pools, and a level's flow is the coarser one
  upsampled (bilinear, ``align_corners=True``) times 2 plus the module's residue, with the
  supporting frame warped using ``padding_mode="border"``;
* the flow is from ``ref`` to ``supp``: warping ``supp`` with it aligns it to ``ref``.

``pretrained`` keeps MMEditing's meaning, "load this file" (there it is a URL; here a local
path or a URI the user configures, read with ``torch.load(weights_only=True)``, never fetched
implicitly). The file is loaded strictly, as mmcv's ``load_checkpoint`` would: an mmcv
checkpoint (``{"state_dict": ...}``) or a bare state dict, an all-``module.`` prefix dropped.
mmedit loads it before registering ``mean``/``std``, so the published file holds only the
``basic_module`` weights; a file that also holds ``mean``/``std`` (a restoray ``state_dict()``)
is accepted too.
"""

import os

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.conv_module import ConvNormAct
from trainers.archs.flow import flow_warp
from trainers.checkpoint_io import CheckpointError, compare_state_dict, load_checkpoint_file, load_strict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_LEVELS = 6


class SPyNetBasicModule(nn.Module):
    """One pyramid level: [ref, warped supp, upsampled flow] (8 channels) -> flow residue (2)."""

    def __init__(self):
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(*[
            ConvNormAct(c_in, c_out, 7, 1, 3, act="relu" if i < len(widths) - 2 else None)
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))
        ])

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[N, 8, H, W]`` -> flow residue ``[N, 2, H, W]``."""
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Coarse-to-fine optical flow from ``ref`` to ``supp`` (see the module docstring).

    Args:
        pretrained: Path or URI of SPyNet weights to load strictly on the CPU; None keeps
            the random (mmcv ConvModule) initialisation.

    Raises:
        ValueError: If ``pretrained`` is not a path, cannot be read, or does not fit.
    """

    def __init__(self, pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetBasicModule() for _ in range(NUM_LEVELS)])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Loads SPyNet weights from ``path`` strictly (``mean``/``std`` may be absent from it)."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"spynet pretrained must be a path or None, got {type(path).__name__}")
        try:
            ckpt = load_checkpoint_file(path)
            state = ckpt.get("state_dict", ckpt)
            if not isinstance(state, dict):
                raise CheckpointError(f"{os.fspath(path)}: 'state_dict' is a {type(state).__name__}, not a dict")
            if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
                state = {k.removeprefix("module."): v for k, v in state.items()}
            state = {"mean": self.mean, "std": self.std} | state
            if self.mean.is_meta:  # a config check builds on the meta device: check the file, copy nothing
                report = compare_state_dict(self, state)
                if not report.ok:
                    raise CheckpointError(f"checkpoint does not fit SPyNet: {report.summary()}")
            else:
                load_strict(self, state)
        except CheckpointError as err:
            raise ValueError(f"spynet pretrained {os.fspath(path)}: {err}") from None

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow ``[N, 2, H, W]`` (pixels, x then y) from ``ref`` to ``supp``, both ``[N, 3, H, W]`` in [0, 1]."""
        h, w = ref.shape[2:4]
        h_up, w_up = -(-h // 32) * 32, -(-w // 32) * 32
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self.compute_flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([flow[:, :1] * (float(w) / float(w_up)), flow[:, 1:] * (float(h) / float(h_up))], dim=1)

    def compute_flow(self, ref: Tensor, supp: Tensor) -> Tensor:
        """The pyramid on frames whose sides are multiples of 32."""
        n, _, h, w = ref.shape
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(NUM_LEVELS - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        refs, supps = refs[::-1], supps[::-1]

        flow = ref.new_zeros(n, 2, h // 32, w // 32)
        for level, module in enumerate(self.basic_module):
            if level == 0:
                flow_up = flow
            else:
                flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supps[level], flow_up.permute(0, 2, 3, 1), padding_mode="border")
            flow = flow_up + module(torch.cat([refs[level], warped, flow_up], 1))
        return flow

"""BasicVSR++: second-order grid propagation with flow-guided deformable alignment.

Paper: Chan et al., "BasicVSR++: Improving Video Super-Resolution with Enhanced Propagation
and Alignment", CVPR 2022. Zoo configs: ``basicvsr_plusplus_c64n7_8x1_600k_reds4``,
``basicvsr_plusplus_c64n7_4x2_300k_vimeo90k_bi`` / ``_bd`` and the NTIRE 2021 ones
(``basicvsr_plusplus_c128n25_600k_ntire_vsr`` / ``_decompress_track{1,2,3}``: mid_channels 128,
num_blocks 25, ``is_low_res_input=False`` for the decompression tracks).

As MMEditing 0.x's ``BasicVSRPlusPlus``:

* ``feat_extract`` gives per-frame features (LR input: ``ResidualBlocksWithInputConv(3, mid, 5)``;
  same-size input, ``is_low_res_input=False``: two stride-2 convs + LeakyReLU 0.1 first, and
  SPyNet sees the frames downscaled x1/4 with ``F.interpolate(..., scale_factor=0.25,
  mode="bicubic")``, so H and W must divide by 4);
* four propagation branches in the order backward_1, forward_1, backward_2, forward_2; each
  step aligns the previous output of its branch (and the one before: second order) with
  ``SecondOrderDeformableAlignment`` and adds ``backbone[branch]`` applied to
  [spatial features, the earlier branches' features of this frame, the aligned features]
  (so the branches take 2, 3, 4, 5 x mid channels);
* the alignment's offsets are ``max_residue_magnitude * tanh(residue)`` plus the flow (flipped
  to (dy, dx) and repeated over the 9 taps x 16 deform groups; the second-order flow is the
  first plus the second warped by the first), its mask a sigmoid; the offset convs start at
  zero (pure flow warping, mask 0.5);
* ``reconstruction`` (5 x mid -> mid, 5 blocks), two pixel-shuffle x2, LeakyReLU 0.1, and the
  bilinear (``align_corners=False``) x4 upsampled input added, or the input itself when it is
  not low-resolution;
* ``cpu_cache_length``: on CUDA, clips longer than this keep per-frame features on the CPU
  between uses (slower, much less GPU memory); it changes no value, but the output then
  comes back on the CPU.

Differences from mmedit: it asserts the (downscaled) LR size is >= 64 x 64, this port does
not (see ``basicvsr.py``); mmedit sets ``is_mirror_extended`` once and never clears it, so
after one mirrored clip every later clip reuses flipped backward flows, whereas this port
decides per clip (the zoo's configs feed all-mirrored or never-mirrored clips, where both
agree); mmedit's CPU cache moves tensors to the default CUDA device and fails on mirrored
clips, this port moves them back to the input's device and handles both.
"""

import os

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.basicvsr import ResidualBlocksWithInputConv, check_clip, is_mirror_extended
from trainers.archs.blocks import PixelShufflePack
from trainers.archs.deform_conv import ModulatedDeformConv2d, modulated_deform_conv2d
from trainers.archs.flow import flow_warp
from trainers.archs.spynet import SPyNet

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


class SecondOrderDeformableAlignment(ModulatedDeformConv2d):
    """Deformable conv whose offsets and mask come from ``conv_offset`` on [warped features, flows].

    Args:
        *args: ``ModulatedDeformConv2d``'s (in_channels = 2 x mid, out_channels = mid, kernel 3).
        max_residue_magnitude: Bound on the learnt offset residue (pixels), Eq. 6 of the paper.
        **kwargs: ``ModulatedDeformConv2d``'s (padding, deform_groups).
    """

    def __init__(self, *args, max_residue_magnitude: float = 10, **kwargs):
        self.max_residue_magnitude = max_residue_magnitude
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * self.out_channels + 4, self.out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(self.out_channels, self.out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(self.out_channels, self.out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(self.out_channels, 27 * self.deform_groups, 3, 1, 1),
        )
        self.init_offset()

    def init_offset(self) -> None:
        """Zero last offset conv: alignment starts as plain flow warping with mask 0.5."""
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(  # type: ignore[override]
            self, x: Tensor, extra_feat: Tensor, flow_1: Tensor, flow_2: Tensor) -> Tensor:
        """Aligns ``x`` ([feature n-1, feature n-2]) given the conditions and both flows ``[N, 2, H, W]``."""
        out = self.conv_offset(torch.cat([extra_feat, flow_1, flow_2], dim=1))
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        offset = self.max_residue_magnitude * torch.tanh(torch.cat((o1, o2), dim=1))
        offset_1, offset_2 = torch.chunk(offset, 2, dim=1)
        offset_1 = offset_1 + flow_1.flip(1).repeat(1, offset_1.size(1) // 2, 1, 1)
        offset_2 = offset_2 + flow_2.flip(1).repeat(1, offset_2.size(1) // 2, 1, 1)
        offset = torch.cat([offset_1, offset_2], dim=1)
        return modulated_deform_conv2d(x, offset, torch.sigmoid(mask), self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, self.groups, self.deform_groups)


class BasicVSRPlusPlus(nn.Module):
    """BasicVSR++ generator (see the module docstring).

    Args:
        mid_channels: Feature channels.
        num_blocks: Residual blocks per propagation branch.
        max_residue_magnitude: Bound on the deformable offsets' residue from the flow.
        is_low_res_input: x4 output (True) or output the size of the input (False).
        spynet_pretrained: Path or URI of SPyNet weights to start from (None: random).
        cpu_cache_length: On CUDA, clips with more frames keep features on the CPU.
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 7, max_residue_magnitude: float = 10,
                 is_low_res_input: bool = True, spynet_pretrained: str | os.PathLike | None = None,
                 cpu_cache_length: int = 100):
        super().__init__()
        self.mid_channels = mid_channels
        self.is_low_res_input = is_low_res_input
        self.cpu_cache_length = cpu_cache_length
        self.is_mirror_extended = False
        self.cpu_cache = False
        self.spynet = SPyNet(pretrained=spynet_pretrained)
        if is_low_res_input:
            self.feat_extract = ResidualBlocksWithInputConv(3, mid_channels, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, mid_channels, 3, 2, 1),
                nn.LeakyReLU(negative_slope=0.1, inplace=True),
                nn.Conv2d(mid_channels, mid_channels, 3, 2, 1),
                nn.LeakyReLU(negative_slope=0.1, inplace=True),
                ResidualBlocksWithInputConv(mid_channels, mid_channels, 5),
            )
        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, branch in enumerate(BRANCHES):
            self.deform_align[branch] = SecondOrderDeformableAlignment(
                2 * mid_channels, mid_channels, 3, padding=1, deform_groups=16,
                max_residue_magnitude=max_residue_magnitude)
            self.backbone[branch] = ResidualBlocksWithInputConv((2 + i) * mid_channels, mid_channels, num_blocks)
        self.reconstruction = ResidualBlocksWithInputConv(5 * mid_channels, mid_channels, 5)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(mid_channels, 64, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def check_if_mirror_extended(self, lqs: Tensor) -> None:
        """Sets ``is_mirror_extended`` for this clip (per clip; see the module docstring)."""
        self.is_mirror_extended = is_mirror_extended(lqs)

    def uses_cpu_cache(self, lqs: Tensor) -> bool:
        """Whether this clip's features wait on the CPU: CUDA input longer than ``cpu_cache_length``."""
        return lqs.size(1) > self.cpu_cache_length and lqs.is_cuda

    def _cached(self, t: Tensor) -> Tensor:
        """Where a kept feature lives: the CPU when caching, else where it was computed."""
        return t.cpu() if self.cpu_cache else t

    def _on(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(like.device) if self.cpu_cache else t

    def compute_flow(self, lqs: Tensor) -> tuple[Tensor | None, Tensor]:
        """``(flows_forward, flows_backward)`` ``[N, T-1, 2, h, w]`` on the LR frames (see BasicVSR)."""
        n, t, c, h, w = lqs.shape
        earlier = lqs[:, :-1].reshape(-1, c, h, w)
        later = lqs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(earlier, later).view(n, t - 1, 2, h, w)
        flows_forward = None if self.is_mirror_extended else self.spynet(later, earlier).view(n, t - 1, 2, h, w)
        if self.cpu_cache:
            flows_backward = flows_backward.cpu()
            flows_forward = None if flows_forward is None else flows_forward.cpu()
        return flows_forward, flows_backward

    def propagate(self, feats: dict[str, list[Tensor]], flows: Tensor, branch: str, device_like: Tensor) -> None:
        """Runs one branch over the clip, appending its per-frame features to ``feats[branch]``.

        ``flows[:, i]`` leads from frame i to i+1 for backward branches, i+1 to i for forward ones.
        The list ends in frame order for both directions.
        """
        n, t_flows, _, h, w = flows.shape
        frames = range(t_flows + 1)
        flow_idx = range(-1, t_flows)
        if branch.startswith("backward"):
            frames = frames[::-1]
            flow_idx = frames
        earlier = [k for k in feats if k not in ("spatial", branch)]  # dict order: the branches run before

        feat_prop = flows.new_zeros(n, self.mid_channels, h, w, device=device_like.device)
        for i, idx in enumerate(frames):
            feat_current = self._on(feats["spatial"][idx], device_like)
            if i > 0:
                flow_n1 = self._on(flows[:, flow_idx[i]], device_like)
                cond_n1 = flow_warp(feat_prop, flow_n1.permute(0, 2, 3, 1))
                feat_n2 = torch.zeros_like(feat_prop)
                flow_n2 = torch.zeros_like(flow_n1)
                cond_n2 = torch.zeros_like(cond_n1)
                if i > 1:  # second order: two steps back, warped by the composed flow
                    feat_n2 = self._on(feats[branch][-2], device_like)
                    flow_n2 = self._on(flows[:, flow_idx[i - 1]], device_like)
                    flow_n2 = flow_n1 + flow_warp(flow_n2, flow_n1.permute(0, 2, 3, 1))
                    cond_n2 = flow_warp(feat_n2, flow_n2.permute(0, 2, 3, 1))
                cond = torch.cat([cond_n1, feat_current, cond_n2], dim=1)
                feat_prop = torch.cat([feat_prop, feat_n2], dim=1)
                feat_prop = self.deform_align[branch](feat_prop, cond, flow_n1, flow_n2)
            feat = [feat_current] + [self._on(feats[k][idx], device_like) for k in earlier] + [feat_prop]
            feat_prop = feat_prop + self.backbone[branch](torch.cat(feat, dim=1))
            feats[branch].append(self._cached(feat_prop))
        if branch.startswith("backward"):
            feats[branch] = feats[branch][::-1]

    def upsample(self, lqs: Tensor, feats: dict[str, list[Tensor]]) -> Tensor:
        """All branches' features of each frame -> the output clip ``[N, T, 3, H', W']``."""
        outputs = []
        for i in range(lqs.size(1)):
            hr = torch.cat([self._on(feats[k][i], lqs) for k in ("spatial", *BRANCHES)], dim=1)
            hr = self.reconstruction(hr)
            hr = self.lrelu(self.upsample1(hr))
            hr = self.lrelu(self.upsample2(hr))
            hr = self.lrelu(self.conv_hr(hr))
            hr = self.conv_last(hr)
            hr = hr + (self.img_upsample(lqs[:, i]) if self.is_low_res_input else lqs[:, i])
            outputs.append(self._cached(hr))
        return torch.stack(outputs, dim=1)

    def forward(self, lqs: Tensor) -> Tensor:
        """``[N, T, 3, H, W]`` -> ``[N, T, 3, 4H, 4W]`` (``[N, T, 3, H, W]`` if not ``is_low_res_input``)."""
        check_clip("BasicVSRPlusPlus", lqs)
        n, t, c, h, w = lqs.shape
        self.cpu_cache = self.uses_cpu_cache(lqs)
        if self.is_low_res_input:
            lqs_downsample = lqs.clone()
        else:
            if h % 4 or w % 4:
                raise ValueError(f"BasicVSRPlusPlus with is_low_res_input=False needs H, W divisible by 4, got {h}x{w}")
            lqs_downsample = F.interpolate(lqs.reshape(-1, c, h, w), scale_factor=0.25, mode="bicubic").view(
                n, t, c, h // 4, w // 4)
        self.check_if_mirror_extended(lqs)

        feats: dict[str, list[Tensor]] = {}
        if self.cpu_cache:
            feats["spatial"] = [self.feat_extract(lqs[:, i]).cpu() for i in range(t)]
        else:
            spatial = self.feat_extract(lqs.reshape(-1, c, h, w))
            spatial = spatial.view(n, t, -1, *spatial.shape[2:])
            feats["spatial"] = [spatial[:, i] for i in range(t)]

        flows_forward, flows_backward = self.compute_flow(lqs_downsample)
        for branch in BRANCHES:
            feats[branch] = []
            if branch.startswith("backward"):
                flows = flows_backward
            else:
                flows = flows_forward if flows_forward is not None else flows_backward.flip(1)
            self.propagate(feats, flows, branch, device_like=lqs)
        return self.upsample(lqs, feats)

"""BasicVSR: bidirectional recurrent video super-resolution (x4).

Paper: Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution
and Beyond", CVPR 2021. Zoo configs: ``basicvsr_reds4``, ``basicvsr_vimeo90k_bi``,
``basicvsr_vimeo90k_bd``; its parts are reused by ``realbasicvsr`` and ``basicvsr_pp``.

As MMEditing 0.x's ``BasicVSRNet``:

* input ``[N, T, 3, H, W]`` in [0, 1] (SPyNet normalises internally), output ``[N, T, 3, 4H, 4W]``;
* a backward pass over time (last frame first) then a forward pass; each step warps the
  propagated features with SPyNet's flow (zeros outside), concatenates the LR frame *before*
  the features and runs ``ResidualBlocksWithInputConv`` (conv + LeakyReLU 0.1 + ReLU residual
  blocks); the forward step fuses both directions (1x1 ``fusion``), upsamples with two
  pixel-shuffle x2 stages, LeakyReLU 0.1 after fusion/upsamplers/``conv_hr``, and adds the
  bilinearly (``align_corners=False``) x4-upsampled LR frame;
* ``check_if_mirror_extended``: when T is even and the second half of the clip is the first
  half reversed (Vimeo-90K's ``MirrorSequence`` training clips), the forward flows are not
  computed but taken from the backward ones (``flows_backward[:, -i]``): half the SPyNet work,
  same result up to SPyNet's asymmetry. The test is exact equality, so it never triggers by chance;
* T = 1 works (no flow is computed, propagation starts from zeros).

What mmedit does and this port does not: ``forward`` asserts H, W >= 64. Nothing breaks below
that (SPyNet resizes up to a multiple of 32), flows are just poor, so the limit is left to the
video task (training crops are 64 LR pixels); the port's tests and goldens run at 16x16.
"""

import os

import torch
from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN
from trainers.archs.flow import flow_warp
from trainers.archs.spynet import SPyNet


class ResidualBlocksWithInputConv(nn.Module):
    """A conv to ``out_channels`` + LeakyReLU 0.1, then ``num_blocks`` ReLU residual blocks.

    Attribute layout as mmedit's (``main.0`` conv, ``main.2.<i>`` blocks), which is in the keys.

    Args:
        in_channels: Input channels of the first conv.
        out_channels: Channels of the residual blocks and the output.
        num_blocks: Number of ``ResidualBlockNoBN``.
    """

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Sequential(*[ResidualBlockNoBN(mid_channels=out_channels) for _ in range(num_blocks)]),
        )

    def forward(self, feat: Tensor) -> Tensor:
        """``[N, in_channels, H, W]`` -> ``[N, out_channels, H, W]``."""
        return self.main(feat)


def check_clip(name: str, lqs: Tensor) -> None:
    """ValueError unless ``lqs`` is a ``[N, T, 3, H, W]`` clip with T >= 1."""
    if lqs.dim() != 5 or lqs.shape[2] != 3 or lqs.shape[1] < 1:
        raise ValueError(f"{name} expects a clip [N, T, 3, H, W] with T >= 1, got shape {list(lqs.shape)}")


def is_mirror_extended(lqs: Tensor) -> bool:
    """Whether T is even and frame i equals frame T-1-i for every i (a mirrored clip)."""
    if lqs.size(1) % 2 != 0:
        return False
    first, second = torch.chunk(lqs, 2, dim=1)
    return torch.equal(first, second.flip(1))


class BasicVSRNet(nn.Module):
    """BasicVSR generator (see the module docstring).

    Args:
        mid_channels: Feature channels of the propagation branches.
        num_blocks: Residual blocks per propagation branch.
        spynet_pretrained: Path or URI of SPyNet weights to start from (None: random).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30,
                 spynet_pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.mid_channels = mid_channels
        self.is_mirror_extended = False
        self.spynet = SPyNet(pretrained=spynet_pretrained)
        self.backward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.fusion = nn.Conv2d(mid_channels * 2, mid_channels, 1, 1, 0, bias=True)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(mid_channels, 64, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def check_if_mirror_extended(self, lrs: Tensor) -> None:
        """Sets ``is_mirror_extended`` for this clip (mmedit's name and side effect)."""
        self.is_mirror_extended = is_mirror_extended(lrs)

    def compute_flow(self, lrs: Tensor) -> tuple[Tensor | None, Tensor]:
        """``(flows_forward, flows_backward)``, each ``[N, T-1, 2, H, W]``.

        ``flows_backward[:, i]`` is the flow from frame i to i+1 (to warp features propagated
        back from i+1), ``flows_forward[:, i]`` from frame i+1 to i; None for a mirrored clip.
        """
        n, t, c, h, w = lrs.shape
        earlier = lrs[:, :-1].reshape(-1, c, h, w)
        later = lrs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(earlier, later).view(n, t - 1, 2, h, w)
        flows_forward = None if self.is_mirror_extended else self.spynet(later, earlier).view(n, t - 1, 2, h, w)
        return flows_forward, flows_backward

    def forward(self, lrs: Tensor) -> Tensor:
        """``[N, T, 3, H, W]`` -> ``[N, T, 3, 4H, 4W]``."""
        check_clip("BasicVSRNet", lrs)
        n, t, _, h, w = lrs.shape
        self.check_if_mirror_extended(lrs)
        flows_forward, flows_backward = self.compute_flow(lrs)

        backward_feats = []
        feat_prop = lrs.new_zeros(n, self.mid_channels, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat_prop = flow_warp(feat_prop, flows_backward[:, i].permute(0, 2, 3, 1))
            feat_prop = self.backward_resblocks(torch.cat([lrs[:, i], feat_prop], dim=1))
            backward_feats.append(feat_prop)
        backward_feats = backward_feats[::-1]

        outputs = []
        feat_prop = torch.zeros_like(feat_prop)
        for i in range(t):
            lr_curr = lrs[:, i]
            if i > 0:
                flow = flows_forward[:, i - 1] if flows_forward is not None else flows_backward[:, -i]
                feat_prop = flow_warp(feat_prop, flow.permute(0, 2, 3, 1))
            feat_prop = self.forward_resblocks(torch.cat([lr_curr, feat_prop], dim=1))
            outputs.append(self.reconstruct(torch.cat([backward_feats[i], feat_prop], dim=1), lr_curr))
        return torch.stack(outputs, dim=1)

    def reconstruct(self, feats: Tensor, lr: Tensor) -> Tensor:
        """Both directions' features of one frame -> its x4 output (residual on bilinear x4)."""
        out = self.lrelu(self.fusion(feats))
        out = self.lrelu(self.upsample1(out))
        out = self.lrelu(self.upsample2(out))
        out = self.lrelu(self.conv_hr(out))
        return self.conv_last(out) + self.img_upsample(lr)

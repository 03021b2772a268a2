"""IconVSR: BasicVSR with information refill at keyframes and coupled propagation.

Paper: Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution and
Beyond", CVPR 2021. Zoo configs: ``iconvsr_reds4`` (``padding=2``), ``iconvsr_vimeo90k_bi`` and
``iconvsr_vimeo90k_bd`` (``padding=3``); all x4, ``mid_channels=64``, ``num_blocks=30``,
``keyframe_stride=5``. MMEditing 0.16.1's ``IconVSR``, with its attribute names.

What the reference does that one might not expect:

* Keyframes are frames ``0, s, 2s, ...`` (``s = keyframe_stride``) plus the last frame always. At a
  keyframe both propagation directions concatenate the warped hidden state with an EDVR-M feature
  of the ``2 * padding + 1`` frames centred there and fuse them with a 3x3 conv
  (``backward_fusion`` / ``forward_fusion``) *before* the residual blocks.
* The EDVR windows near the ends are not mirrored about the end frame: the clip is extended by
  frames ``[4, 3]`` in front and ``[-4, -5]`` behind for ``padding=2`` (``[6, 5, 4]`` /
  ``[-5, -6, -7]`` for 3), so the first window is frames 4, 3, 0, 1, 2. Hence a clip needs at
  least ``2 * padding + 1`` frames, and only ``padding`` 2 and 3 exist.
* Coupled propagation: the backward branch runs first (last frame to first, resblocks on
  ``[lr, feat]``); the forward branch then takes ``[lr, backward feature, forward feature]`` and
  upsamples each frame as it goes (two x2 pixel shuffles, LeakyReLU 0.1 after each and after
  ``conv_hr``) plus a bilinear x4 (``align_corners=False``) of the LR frame.
* The LR clip is reflect-padded on the bottom/right to multiples of 4 (EDVR's pyramid) and the
  output cropped back. SPyNet flows are computed on the padded frames.
* A clip whose second half is the first half reversed (even length) is "mirror-extended": the
  forward flows are then taken from the backward ones instead of a second SPyNet pass.
* ``mid_channels`` can only be 64: the EDVR extractor is built at its default width 64 and its
  output is concatenated with the hidden state into ``*_fusion`` convs of ``2 * mid_channels``
  inputs (mmedit accepts other values and fails at the first keyframe; this port refuses them).
* mmedit asserts LR height and width >= 64 (the size the zoo trains on); this port does not
  (SPyNet resizes to multiples of 32 itself), so tests and goldens can use tiny clips.
* Training recipe (not in the module): SPyNet and the EDVR extractor are frozen for the first
  5000 iterations (``fix_iter``, parameters whose names contain ``spynet`` or ``edvr``), and
  SPyNet alone gets lr x0.125.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.basicvsr import ResidualBlocksWithInputConv, check_clip, is_mirror_extended
from trainers.archs.blocks import PixelShufflePack
from trainers.archs.edvr_blocks import EDVRFeatureExtractor
from trainers.archs.flow import flow_warp
from trainers.archs.spynet import SPyNet

EDVR_CHANNELS = 64  # the extractor's width, fixed by mmedit (it is built with its defaults)
# Frames prepended / appended before the EDVR windows, per ``padding`` (mmedit's hard-coded lists).
_REFILL_PAD = {2: ([4, 3], [-4, -5]), 3: ([6, 5, 4], [-5, -6, -7])}


class IconVSR(nn.Module):
    """IconVSR generator (x4 only).

    Args:
        mid_channels: Hidden-state channels of both propagation branches.
        num_blocks: Residual blocks per branch.
        keyframe_stride: Distance between keyframes (the last frame is always one too).
        padding: Frames on each side of a keyframe in its EDVR window: 2 (REDS) or 3 (Vimeo-90K).
        spynet_pretrained: Local file with SPyNet weights, or None.
        edvr_pretrained: Local file with the EDVR feature extractor's weights, or None.
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30, keyframe_stride: int = 5, padding: int = 2,
                 spynet_pretrained: str | None = None, edvr_pretrained: str | None = None):
        super().__init__()
        if padding not in _REFILL_PAD:
            raise ValueError(f"padding must be 2 or 3 (the EDVR windows mmedit defines), got {padding}")
        if mid_channels != EDVR_CHANNELS:
            raise ValueError(f"mid_channels must be {EDVR_CHANNELS}, the width of the EDVR-M refill features "
                             f"(mmedit fails at the first keyframe otherwise), got {mid_channels}")
        if keyframe_stride < 1:
            raise ValueError(f"keyframe_stride must be >= 1, got {keyframe_stride}")
        self.mid_channels = mid_channels
        self.padding = padding
        self.keyframe_stride = keyframe_stride

        self.spynet = SPyNet(pretrained=spynet_pretrained)
        self.edvr = EDVRFeatureExtractor(num_frames=2 * padding + 1, center_frame_idx=padding,
                                         pretrained=edvr_pretrained)
        self.backward_fusion = nn.Conv2d(2 * mid_channels, mid_channels, 3, 1, 1, bias=True)
        self.forward_fusion = nn.Conv2d(2 * mid_channels, mid_channels, 3, 1, 1, bias=True)
        self.backward_resblocks = ResidualBlocksWithInputConv(mid_channels + 3, mid_channels, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(2 * mid_channels + 3, mid_channels, num_blocks)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(mid_channels, 64, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    @staticmethod
    def spatial_padding(lrs: Tensor) -> Tensor:
        """Reflect-pads ``[n, t, c, h, w]`` on the bottom and right to multiples of 4."""
        n, t, c, h, w = lrs.shape
        pad_h, pad_w = (4 - h % 4) % 4, (4 - w % 4) % 4
        padded = F.pad(lrs.reshape(-1, c, h, w), [0, pad_w, 0, pad_h], mode="reflect")
        return padded.view(n, t, c, h + pad_h, w + pad_w)

    def keyframe_indices(self, t: int) -> list[int]:
        """``0, s, 2s, ...`` below ``t``, plus ``t - 1`` if not already there."""
        idx = list(range(0, t, self.keyframe_stride))
        if idx[-1] != t - 1:
            idx.append(t - 1)
        return idx

    def compute_refill_features(self, lrs: Tensor, keyframe_idx: list[int]) -> dict[int, Tensor]:
        """EDVR feature of the window centred on each keyframe, the clip extended as mmedit does."""
        front, back = _REFILL_PAD[self.padding]
        lrs = torch.cat([lrs[:, front], lrs, lrs[:, back]], dim=1)
        window = 2 * self.padding + 1
        return {i: self.edvr(lrs[:, i:i + window].contiguous()) for i in keyframe_idx}

    def compute_flow(self, lrs: Tensor, mirror_extended: bool) -> tuple[Tensor | None, Tensor]:
        """SPyNet flows between neighbours, ``[n, t-1, 2, h, w]``.

        Returns:
            ``(flows_forward, flows_backward)``: frame ``i+1`` to ``i`` (used by forward-time
            propagation; None for a mirror-extended clip) and frame ``i`` to ``i+1``.
        """
        n, t, c, h, w = lrs.shape
        lrs_1 = lrs[:, :-1].reshape(-1, c, h, w)
        lrs_2 = lrs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(lrs_1, lrs_2).view(n, t - 1, 2, h, w)
        flows_forward = None if mirror_extended else self.spynet(lrs_2, lrs_1).view(n, t - 1, 2, h, w)
        return flows_forward, flows_backward

    def _check_input(self, lrs: Tensor) -> None:
        check_clip("IconVSR", lrs)
        if lrs.size(1) < 2 * self.padding + 1:
            raise ValueError(f"IconVSR with padding={self.padding} needs at least {2 * self.padding + 1} frames, "
                             f"got {lrs.size(1)}")
        if min(lrs.shape[-2:]) < 4:
            raise ValueError(f"IconVSR needs frames of at least 4x4 pixels, got {lrs.size(3)}x{lrs.size(4)}")

    def forward(self, lrs: Tensor) -> Tensor:
        """``[n, t, 3, h, w]`` LR clip -> ``[n, t, 3, 4h, 4w]`` SR clip."""
        self._check_input(lrs)
        n, t, _, h_in, w_in = lrs.shape
        mirror_extended = is_mirror_extended(lrs)
        lrs = self.spatial_padding(lrs)
        h, w = lrs.shape[-2:]
        keyframe_idx = self.keyframe_indices(t)
        flows_forward, flows_backward = self.compute_flow(lrs, mirror_extended)
        feats_refill = self.compute_refill_features(lrs, keyframe_idx)

        # backward-time propagation: last frame to first
        backward_feats = []
        feat_prop = lrs.new_zeros(n, self.mid_channels, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat_prop = flow_warp(feat_prop, flows_backward[:, i].permute(0, 2, 3, 1))
            if i in feats_refill:
                feat_prop = self.backward_fusion(torch.cat([feat_prop, feats_refill[i]], dim=1))
            feat_prop = self.backward_resblocks(torch.cat([lrs[:, i], feat_prop], dim=1))
            backward_feats.append(feat_prop)
        backward_feats = backward_feats[::-1]

        # forward-time propagation and upsampling: first frame to last
        outputs = []
        feat_prop = torch.zeros_like(feat_prop)
        for i in range(t):
            lr_curr = lrs[:, i]
            if i > 0:
                flow = flows_forward[:, i - 1] if flows_forward is not None else flows_backward[:, -i]
                feat_prop = flow_warp(feat_prop, flow.permute(0, 2, 3, 1))
            if i in feats_refill:
                feat_prop = self.forward_fusion(torch.cat([feat_prop, feats_refill[i]], dim=1))
            feat_prop = self.forward_resblocks(torch.cat([lr_curr, backward_feats[i], feat_prop], dim=1))
            out = self.lrelu(self.upsample1(feat_prop))
            out = self.lrelu(self.upsample2(out))
            out = self.lrelu(self.conv_hr(out))
            outputs.append(self.conv_last(out) + self.img_upsample(lr_curr))
        return torch.stack(outputs, dim=1)[:, :, :, :4 * h_in, :4 * w_in]

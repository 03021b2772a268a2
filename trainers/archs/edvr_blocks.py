"""EDVR's alignment and fusion blocks, shared by IconVSR's information refill and EDVR (not an architecture).

Paper: Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPRW 2019. These are MMEditing 0.16.1's ``edvr_net.py`` blocks and the ``EDVRFeatureExtractor`` of
its ``basicvsr_net.py`` (EDVR-M up to and including fusion, no reconstruction), with its attribute
names, so ``edvr.*`` keys of ``iconvsr_reds4`` and the PCD/TSA keys of the EDVR zoo load strictly.

What the reference does that one might not expect:

* :class:`ModulatedDCNPack` predicts offsets and masks from a *separate* feature (``extra_feat``),
  not from its own input; ``conv_offset`` starts at zero, so an untrained pack is a plain conv
  with every tap weighted by sigmoid(0) = 0.5. Its output channels are split in three equal
  chunks ``o1, o2, mask`` and the op receives ``cat(o1, o2)`` as offsets: the op reads them as
  interleaved (dy, dx) pairs per deformable group and kernel tap, so the chunk boundaries do not
  line up with y/x. This is kept as is because trained weights depend on it.
* PCD goes coarse to fine (L3 → L1). Offsets upsampled to the next level are multiplied by 2
  (pixel units scale with resolution); the L3 DCN output gets a LeakyReLU, L2's fused feature
  conv has one, L1's has none, and the cascading DCN after L1 has one again.
* All LeakyReLUs have slope 0.1 (EDVR's, unlike the 0.2 of the inpainting nets' ConvModules).
  Every ``nn.Upsample`` is bilinear with ``align_corners=False``.
* TSA's temporal attention is the sigmoid of a per-pixel dot product with the centre frame's
  embedding; its spatial attention ends in ``feat * sigmoid(attn) * 2 + attn_add``.
* The pyramid halves the resolution twice and TSA pools twice, so height and width must be
  multiples of 4 (IconVSR pads its input to that).
"""

import logging
import os
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from trainers.archs.blocks import ResidualBlockNoBN
from trainers.archs.deform_conv import ModulatedDeformConv2d, modulated_deform_conv2d
from trainers.checkpoint_io import CheckpointError, load_checkpoint_file, load_strict

logger = logging.getLogger(__name__)

LRELU_SLOPE = 0.1
OFFSET_WARN_ABS_MEAN = 50.0  # BasicSR's threshold for "alignment is diverging"


class ConvLReLU(nn.Module):
    """mmcv ``ConvModule`` as EDVR uses it: a biased conv named ``conv``, then LeakyReLU(0.1) or nothing.

    Init as mmcv's: Kaiming-normal (``fan_out``) with the gain of the activation that follows.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Zero padding.
        act: Follow the conv with LeakyReLU(0.1); False leaves the conv linear.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.activate = nn.LeakyReLU(LRELU_SLOPE, inplace=True) if act else None
        nn.init.kaiming_normal_(self.conv.weight, a=LRELU_SLOPE if act else 0.0, mode="fan_out",
                                nonlinearity="leaky_relu" if act else "relu")
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """conv, then the activation if any."""
        x = self.conv(x)
        return self.activate(x) if self.activate is not None else x


class ModulatedDCNPack(ModulatedDeformConv2d):
    """Modulated deformable conv (DCNv2) whose offsets and masks come from another feature map.

    Takes ``ModulatedDeformConv2d``'s arguments (``weight`` and ``bias`` are the deformable
    conv's own) and adds ``conv_offset``, a plain conv with the same kernel, stride and padding
    that maps ``extra_feat`` to ``3 * deform_groups * k * k`` channels (two offset chunks and a
    mask chunk), zero-initialised.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.conv_offset = nn.Conv2d(self.in_channels, self.deform_groups * 3 * taps, self.kernel_size,
                                     stride=_pair(self.stride), padding=_pair(self.padding), bias=True)
        self.init_offset()

    def init_offset(self) -> None:
        """Zero offsets and masks of sigmoid(0): the pack starts as a conv at half weight."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, extra_feat: Tensor) -> Tensor:
        """Deformable conv of ``x`` sampled where ``conv_offset(extra_feat)`` points.

        Logs a warning when the mean absolute offset exceeds 50 pixels (a sign that training
        diverges; BasicSR's check, not in mmedit 0.16.1). Reading it synchronises with the device.
        """
        o1, o2, mask = torch.chunk(self.conv_offset(extra_feat), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        abs_mean = offset.detach().abs().mean()
        if abs_mean > OFFSET_WARN_ABS_MEAN:
            logger.warning("deformable conv offset abs mean is %.1f, larger than %g", float(abs_mean),
                           OFFSET_WARN_ABS_MEAN)
        return modulated_deform_conv2d(x, offset, torch.sigmoid(mask), self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, self.groups, self.deform_groups)


class PCDAlignment(nn.Module):
    """Pyramid, Cascading and Deformable alignment of one neighbour frame's features to the reference's.

    Three pyramid levels (``l3`` at 1/4 size, ``l2`` at 1/2, ``l1`` full), each predicting
    offsets from the concatenated neighbour and reference features plus the upsampled offsets of
    the coarser level, then a cascading DCN that refines the L1 result against the reference.

    Args:
        mid_channels: Feature channels at every level.
        deform_groups: Deformable groups of every DCN.
    """

    def __init__(self, mid_channels: int = 64, deform_groups: int = 8):
        super().__init__()
        c = mid_channels
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in (3, 2, 1):  # registration order fixes the state-dict order: l3, l2, l1
            level = f"l{i}"
            self.offset_conv1[level] = ConvLReLU(2 * c, c, 3, padding=1)
            if i == 3:
                self.offset_conv2[level] = ConvLReLU(c, c, 3, padding=1)
            else:
                self.offset_conv2[level] = ConvLReLU(2 * c, c, 3, padding=1)
                self.offset_conv3[level] = ConvLReLU(c, c, 3, padding=1)
            self.dcn_pack[level] = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
            if i < 3:
                self.feat_conv[level] = ConvLReLU(2 * c, c, 3, padding=1, act=i == 2)
        self.cas_offset_conv1 = ConvLReLU(2 * c, c, 3, padding=1)
        self.cas_offset_conv2 = ConvLReLU(c, c, 3, padding=1)
        self.cas_dcnpack = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)

    def forward(self, neighbor_feats: list[Tensor], ref_feats: list[Tensor]) -> Tensor:
        """Aligns ``neighbor_feats`` to ``ref_feats``.

        Args:
            neighbor_feats: ``[L1, L2, L3]`` features of the neighbour frame, ``[n, c, h/2^k, w/2^k]``.
            ref_feats: The same levels of the reference (centre) frame.

        Returns:
            The aligned L1 feature ``[n, c, h, w]``.
        """
        if len(neighbor_feats) != 3 or len(ref_feats) != 3:
            raise ValueError(f"PCDAlignment takes 3 pyramid levels each, got {len(neighbor_feats)} neighbour "
                             f"and {len(ref_feats)} reference levels")
        up_offset = up_feat = None
        for i in (3, 2, 1):
            level = f"l{i}"
            offset = self.offset_conv1[level](torch.cat([neighbor_feats[i - 1], ref_feats[i - 1]], dim=1))
            if i == 3:
                offset = self.offset_conv2[level](offset)
            else:
                offset = self.offset_conv2[level](torch.cat([offset, up_offset], dim=1))
                offset = self.offset_conv3[level](offset)
            feat = self.dcn_pack[level](neighbor_feats[i - 1], offset)
            if i == 3:
                feat = self.lrelu(feat)
            else:
                feat = self.feat_conv[level](torch.cat([feat, up_feat], dim=1))
            if i > 1:
                up_offset = self.upsample(offset) * 2  # offsets are in pixels of the finer level
                up_feat = self.upsample(feat)
        offset = self.cas_offset_conv2(self.cas_offset_conv1(torch.cat([feat, ref_feats[0]], dim=1)))
        return self.lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal and Spatial Attention fusion of aligned frame features into one feature map.

    Args:
        mid_channels: Feature channels per frame.
        num_frames: Frames fused.
        center_frame_idx: Index of the reference frame whose embedding weighs the others.
    """

    def __init__(self, mid_channels: int = 64, num_frames: int = 5, center_frame_idx: int = 2):
        super().__init__()
        c, tc = mid_channels, num_frames * mid_channels
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(c, c, 3, padding=1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, padding=1)
        self.feat_fusion = ConvLReLU(tc, c, 1)
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.spatial_attn1 = ConvLReLU(tc, c, 1)
        self.spatial_attn2 = ConvLReLU(2 * c, c, 1)
        self.spatial_attn3 = ConvLReLU(c, c, 3, padding=1)
        self.spatial_attn4 = ConvLReLU(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, padding=1)
        self.spatial_attn_l1 = ConvLReLU(c, c, 1)
        self.spatial_attn_l2 = ConvLReLU(2 * c, c, 3, padding=1)
        self.spatial_attn_l3 = ConvLReLU(c, c, 3, padding=1)
        self.spatial_attn_add1 = ConvLReLU(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def _pooled(self, x: Tensor) -> Tensor:
        return torch.cat([self.max_pool(x), self.avg_pool(x)], dim=1)

    def forward(self, aligned_feat: Tensor) -> Tensor:
        """Fuses ``[n, t, c, h, w]`` aligned features into ``[n, c, h, w]``."""
        n, t, c, h, w = aligned_feat.shape
        embedding_ref = self.temporal_attn1(aligned_feat[:, self.center_frame_idx].clone())
        emb = self.temporal_attn2(aligned_feat.view(-1, c, h, w)).view(n, t, -1, h, w)
        corr = torch.stack([(emb[:, i] * embedding_ref).sum(1) for i in range(t)], dim=1)  # [n, t, h, w]
        corr_prob = torch.sigmoid(corr).unsqueeze(2).expand(n, t, c, h, w).contiguous().view(n, -1, h, w)
        aligned_feat = aligned_feat.view(n, -1, h, w) * corr_prob

        feat = self.feat_fusion(aligned_feat)
        attn = self.spatial_attn2(self._pooled(self.spatial_attn1(aligned_feat)))
        attn_level = self.spatial_attn_l2(self._pooled(self.spatial_attn_l1(attn)))
        attn_level = self.upsample(self.spatial_attn_l3(attn_level))
        attn = self.spatial_attn4(self.spatial_attn3(attn) + attn_level)
        attn = self.spatial_attn5(self.upsample(attn))
        attn_add = self.spatial_attn_add2(self.spatial_attn_add1(attn))
        return feat * torch.sigmoid(attn) * 2 + attn_add  # x2: sigmoid starts near 0.5


def load_pretrained_(module: nn.Module, path: str | os.PathLike, what: str) -> None:
    """Loads a local checkpoint into ``module`` strictly, the way mmcv's ``load_checkpoint`` reads it.

    mmcv takes the file's ``state_dict`` entry when there is one (else the whole dict) and strips
    a leading ``module.`` from every key; no other prefix is removed, so the file must hold exactly
    ``module``'s keys (mmedit's EDVR-M file for IconVSR is such an extract, not the EDVR-M zoo
    checkpoint with its ``generator.`` prefix and reconstruction layers).

    Args:
        module: The network to fill.
        path: Local file (read with ``torch.load(weights_only=True)``); URLs are refused.
        what: The argument's name, for error messages.

    Raises:
        ValueError: If the path is not local or the file cannot be read or does not fit.
    """
    text = os.fspath(path)
    scheme = urlparse(text).scheme
    if scheme not in ("", "file") and len(scheme) != 1:
        raise ValueError(f"{what} must be a local file path, got {text!r} (nothing is downloaded)")
    try:
        ckpt = load_checkpoint_file(text)
        state = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
        load_strict(module, {str(k).removeprefix("module."): v for k, v in state.items()})
    except CheckpointError as err:
        raise ValueError(f"{what} {text}: {err}") from None


class EDVRFeatureExtractor(nn.Module):
    """EDVR-M without reconstruction: per-frame features, PCD alignment to the centre frame, fusion.

    IconVSR's information refill uses it on a window of frames around each keyframe, and
    ``trainers.archs.edvr.EDVRNet`` is it plus the reconstruction head. Arguments
    as mmedit's (``out_channel`` and ``num_blocks_reconstruction`` are accepted and unused there too).

    Args:
        in_channels: Input image channels.
        out_channel: Unused (mmedit's signature).
        mid_channels: Feature channels.
        num_frames: Frames in the input window.
        deform_groups: Deformable groups of PCD's DCNs.
        num_blocks_extraction: Residual blocks of the per-frame feature extraction.
        num_blocks_reconstruction: Unused (mmedit's signature).
        center_frame_idx: The reference frame in the window.
        with_tsa: Fuse with TSA; otherwise a 1x1 conv over the concatenated frames.
        pretrained: Local file with this module's weights (see :func:`load_pretrained_`).
    """

    def __init__(self, in_channels: int = 3, out_channel: int = 3, mid_channels: int = 64, num_frames: int = 5,
                 deform_groups: int = 8, num_blocks_extraction: int = 5, num_blocks_reconstruction: int = 10,
                 center_frame_idx: int = 2, with_tsa: bool = True, pretrained: str | None = None):
        super().__init__()
        if not 0 <= center_frame_idx < num_frames:
            raise ValueError(f"center_frame_idx must lie in [0, {num_frames}), got {center_frame_idx}")
        self.in_channels = in_channels
        self.num_frames = num_frames
        self.center_frame_idx = center_frame_idx
        self.with_tsa = with_tsa
        c = mid_channels
        self.conv_first = nn.Conv2d(in_channels, c, 3, 1, 1)
        self.feature_extraction = nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_extraction)))
        self.feat_l2_conv1 = ConvLReLU(c, c, 3, 2, 1)
        self.feat_l2_conv2 = ConvLReLU(c, c, 3, 1, 1)
        self.feat_l3_conv1 = ConvLReLU(c, c, 3, 2, 1)
        self.feat_l3_conv2 = ConvLReLU(c, c, 3, 1, 1)
        self.pcd_alignment = PCDAlignment(mid_channels=c, deform_groups=deform_groups)
        if with_tsa:
            self.fusion = TSAFusion(mid_channels=c, num_frames=num_frames, center_frame_idx=center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frames * c, c, 1, 1)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)
        if pretrained is not None:
            load_pretrained_(self, pretrained, "edvr_pretrained")

    def check_window(self, x: Tensor) -> None:
        """ValueError unless ``x`` is ``[n, num_frames, in_channels, h, w]`` with h, w multiples of 4.

        The fusion is built for ``num_frames`` frames and the pyramid halves the size twice; the
        message names the class, so subclasses (``EDVRNet``) report under their own name.
        """
        name = type(self).__name__
        if x.dim() != 5:
            raise ValueError(f"{name} expects a window [N, T, C, H, W], got shape {list(x.shape)}")
        n, t, c, h, w = x.shape
        if t != self.num_frames:
            raise ValueError(f"{name} was built for windows of num_frames={self.num_frames} frames, got {t} "
                             f"(shape {list(x.shape)})")
        if c != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} channels per frame, got {c}")
        if h % 4 or w % 4:
            raise ValueError(f"{name} needs height and width that are multiples of 4, got {h}x{w}")

    def forward(self, x: Tensor) -> Tensor:
        """``[n, t, c, h, w]`` frames (h, w multiples of 4) -> fused ``[n, mid_channels, h, w]`` feature."""
        self.check_window(x)
        n, t, c, h, w = x.shape
        l1 = self.feature_extraction(self.lrelu(self.conv_first(x.reshape(-1, c, h, w))))
        l2 = self.feat_l2_conv2(self.feat_l2_conv1(l1))
        l3 = self.feat_l3_conv2(self.feat_l3_conv1(l2))
        levels = [l1.view(n, t, -1, h, w), l2.view(n, t, -1, h // 2, w // 2), l3.view(n, t, -1, h // 4, w // 4)]
        ref = [lv[:, self.center_frame_idx].clone() for lv in levels]
        aligned = torch.stack([self.pcd_alignment([lv[:, i].clone() for lv in levels], ref) for i in range(t)],
                              dim=1)
        if self.with_tsa:
            return self.fusion(aligned)
        return self.fusion(aligned.view(n, -1, h, w))

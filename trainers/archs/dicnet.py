"""DICNet: Ma et al., "Deep Face Super-Resolution with Iterative Collaboration between Attentive
Recovery and Landmark Estimation", CVPR 2020.

Zoo configs: ``dic_x8c48b6_g4_150k_CelebAHQ`` and ``dic_gan_x8c48b6_g4_500k_CelebAHQ`` (both
``DICNet(in_channels=3, out_channels=3, mid_channels=48)``: 6 projection blocks per feedback
block, 4 steps, a 256-wide feedback hourglass predicting 68 landmark heatmaps, x8).

Structure and names as MMEditing 0.16.1 (``sr_backbones/dic_net.py`` and
``extractors/feedback_hour_glass.py``): ``conv_first`` (conv + PReLU + PixelShuffle(2)), a
``first_block`` (feedback block without feedback input) for step 0, one shared ``block``
(feedback block with heatmap attention) for steps 1.., ``conv_last`` (x4 transposed conv) and
``hour_glass``. Each step's SR image feeds the hourglass, whose 68 heatmaps are reduced to 5
(eyes, nose, mouth, silhouette) to weight the next step's features.

What the reference does that one might not expect:

* the global residual is the input resized *bilinearly to a fixed 128 x 128* (not by the scale
  factor), so the network only accepts 16 x 16 inputs at x8; :meth:`DICNet.forward` says so in a
  ValueError instead of failing deep inside;
* the feedback block's hidden state is module state in the reference (``last_hidden``,
  ``need_reset``); here it is passed explicitly, which computes the same thing without making
  the module stateful across calls;
* the feedback block's ``forward`` returns its new hidden state *and* uses the previous one;
  at step 1 the previous one is step 0's ``first_block`` output;
* the hourglass's first step concatenates its features with themselves (no feedback yet);
* inputs and outputs are in the zoo's mean-subtracted space (RGB minus (0.509, 0.424, 0.378));
  the ``dic`` task converts, the network does not;
* ``forward`` returns two lists (SR image and 68 heatmaps per step), the last SR is the output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Landmark index ranges of the 68-point (iBUG 300-W) layout per attention map, in the
# reference's order: left eye, right eye, nose, mouth, face silhouette.
FIVE_PARTS_68 = ((36, 42), (42, 48), (27, 36), (48, 68), (0, 27))


def _prelu(init: float) -> nn.PReLU:
    return nn.PReLU(init=init)


class FeedbackBlock(nn.Module):
    """Iterative up/down projection units with dense connections (SRFBN's feedback block).

    Args:
        mid_channels: Feature channels.
        num_blocks: Number of up/down projection pairs.
        upscale_factor: Projection stride (kernel ``upscale_factor + 4``, padding 2).
        in_channels: Channels entering ``conv_first`` (``2 * mid_channels`` when the hidden
            state is concatenated, ``mid_channels`` for the first block).
        prelu_init: Initial PReLU slope.
    """

    def __init__(self, mid_channels: int, num_blocks: int, upscale_factor: int,
                 in_channels: int | None = None, prelu_init: float = 0.2):
        super().__init__()
        k, s, p = upscale_factor + 4, upscale_factor, 2
        self.num_blocks = num_blocks
        in_channels = 2 * mid_channels if in_channels is None else in_channels
        self.conv_first = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1), _prelu(prelu_init))
        self.up_blocks = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(mid_channels, mid_channels, k, s, p), _prelu(prelu_init))
            for _ in range(num_blocks))
        self.down_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(mid_channels, mid_channels, k, s, p), _prelu(prelu_init))
            for _ in range(num_blocks))
        self.lr_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(mid_channels * (i + 1), mid_channels, 1), _prelu(prelu_init))
            for i in range(1, num_blocks))
        self.hr_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(mid_channels * (i + 1), mid_channels, 1), _prelu(prelu_init))
            for i in range(1, num_blocks))
        self.conv_last = nn.Sequential(nn.Conv2d(num_blocks * mid_channels, mid_channels, 1),
                                       _prelu(prelu_init))

    def project(self, x: Tensor) -> Tensor:
        """The dense up/down projections of the fused input ``x`` -> the block's output."""
        lr_features, hr_features = [x], []
        for idx in range(self.num_blocks):
            lr = torch.cat(lr_features, 1)
            if idx > 0:
                lr = self.lr_blocks[idx - 1](lr)
            hr_features.append(self.up_blocks[idx](lr))
            hr = torch.cat(hr_features, 1)
            if idx > 0:
                hr = self.hr_blocks[idx - 1](hr)
            lr_features.append(self.down_blocks[idx](hr))
        return self.conv_last(torch.cat(lr_features[1:], 1))

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> Tensor:
        """``x`` (and the previous output ``hidden``, concatenated when given) -> new output."""
        if hidden is not None:
            x = torch.cat((x, hidden), 1)
        return self.project(self.conv_first(x))


class GroupResBlock(nn.Module):
    """Residual block of two grouped 3x3 convs (LeakyReLU 0.2 between), scaled residual."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, groups: int,
                 res_scale: float = 1.0):
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, 1, 1, groups=groups),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(mid_channels, out_channels, 3, 1, 1, groups=groups))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res(x) * self.res_scale


class FeatureHeatmapFusingBlock(nn.Module):
    """Per-part features (one group per heatmap) weighted by the softmax over heatmaps, summed.

    Args:
        in_channels: Feature channels (per part after the 1x1 expansion).
        num_heatmaps: Number of attention maps (5).
        num_blocks: Grouped residual blocks.
        mid_channels: Their inner width (default ``in_channels * num_heatmaps``).
    """

    def __init__(self, in_channels: int, num_heatmaps: int, num_blocks: int, mid_channels: int | None = None):
        super().__init__()
        self.num_heatmaps = num_heatmaps
        width = in_channels * num_heatmaps
        self.mid_channels = width if mid_channels is None else mid_channels
        self.conv_first = nn.Sequential(nn.Conv2d(in_channels, width, 1),
                                        nn.LeakyReLU(negative_slope=0.2, inplace=True))
        self.body = nn.Sequential(*[GroupResBlock(width, width, self.mid_channels, num_heatmaps)
                                    for _ in range(num_blocks)])

    def forward(self, feature: Tensor, heatmap: Tensor) -> Tensor:
        if heatmap.size(1) != self.num_heatmaps:
            raise ValueError(f"expected {self.num_heatmaps} attention heatmaps, got {heatmap.size(1)}")
        b, _, h, w = feature.shape
        feature = self.body(self.conv_first(feature)).view(b, self.num_heatmaps, -1, h, w)
        return (feature * F.softmax(heatmap, dim=1).unsqueeze(2)).sum(1)


class FeedbackBlockHeatmapAttention(FeedbackBlock):
    """Feedback block whose fused input is weighted by the landmark attention maps."""

    def __init__(self, mid_channels: int, num_blocks: int, upscale_factor: int, num_heatmaps: int,
                 num_fusion_blocks: int, prelu_init: float = 0.2):
        super().__init__(mid_channels, num_blocks, upscale_factor, prelu_init=prelu_init)
        self.fusion_block = FeatureHeatmapFusingBlock(mid_channels, num_heatmaps, num_fusion_blocks)

    def forward(self, x: Tensor, hidden: Tensor, heatmap: Tensor) -> Tensor:  # type: ignore[override]
        fused = self.conv_first(torch.cat((x, hidden), 1))
        return self.project(self.fusion_block(fused, heatmap))


class HourglassResBlock(nn.Module):
    """Bottleneck residual block of the hourglass (1x1 skip conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        half = out_channels // 2
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, half, 1), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1), nn.Conv2d(half, out_channels, 1))
        self.skip_layer = None if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.skip_layer is None else self.skip_layer(x)
        return skip + self.conv_block(x)


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` halvings (bilinear, align_corners=True, upsampling)."""

    def __init__(self, depth: int, mid_channels: int):
        super().__init__()
        self.up1 = HourglassResBlock(mid_channels, mid_channels)
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = HourglassResBlock(mid_channels, mid_channels)
        self.low2 = (HourglassResBlock(mid_channels, mid_channels) if depth == 1
                     else Hourglass(depth - 1, mid_channels))
        self.low3 = HourglassResBlock(mid_channels, mid_channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)


class FeedbackHourglass(nn.Module):
    """Landmark estimator: stem (/4), depth-4 hourglass over [features, feedback], heatmap head.

    Returns the ``num_keypoints`` heatmaps (1/4 of the input size) and the feedback features
    (the hourglass output's second half), which the next step concatenates with its stem.
    """

    def __init__(self, mid_channels: int, num_keypoints: int):
        super().__init__()
        if mid_channels % 4:
            raise ValueError(f"hg_mid_channels must be divisible by 4, got {mid_channels}")
        self.mid_channels, self.num_keypoints = mid_channels, num_keypoints
        c = mid_channels
        self.pre_conv_block = nn.Sequential(
            nn.Conv2d(3, c // 4, 7, 2, 3), nn.ReLU(inplace=True),
            HourglassResBlock(c // 4, c // 2), nn.MaxPool2d(2, 2),
            HourglassResBlock(c // 2, c // 2), HourglassResBlock(c // 2, c))
        self.first_conv = nn.Conv2d(2 * c, 2 * c, 1)
        self.hg = Hourglass(4, 2 * c)
        self.last = nn.Sequential(HourglassResBlock(c, c), nn.Conv2d(c, c, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, num_keypoints, 1))

    def forward(self, x: Tensor, last_hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        feature = self.pre_conv_block(x)
        hidden = feature if last_hidden is None else last_hidden
        feature = self.hg(self.first_conv(torch.cat((feature, hidden), 1)))
        return self.last(feature[:, : self.mid_channels]), feature[:, self.mid_channels:]


def reduce_to_five_heatmaps(heatmap: Tensor, detach: bool) -> Tensor:
    """68 landmark heatmaps -> 5 part maps (each map scaled by its max, floored at 0.05, then
    summed per part), as the reference's ``reduce_to_five_heatmaps``; 5 maps pass through
    scaled. (The reference also knows Helen's 194 points; the zoo uses 68.)"""
    peak = heatmap.amax(dim=(2, 3), keepdim=True).clamp_min(0.05)
    heatmap = heatmap / peak
    n = heatmap.size(1)
    if n == 68:
        heatmap = torch.stack([heatmap[:, a:b].sum(1) for a, b in FIVE_PARTS_68], 1)
    elif n != 5:
        raise ValueError(f"landmark heatmaps: 68 or 5 maps supported, got {n}")
    return heatmap.detach() if detach else heatmap


class DICNet(nn.Module):
    """DIC generator (arguments as mmedit 0.x's ``DICNet``).

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        mid_channels: Feature channels of the SR branch.
        num_blocks: Projection pairs per feedback block.
        hg_mid_channels: Hourglass width.
        hg_num_keypoints: Landmarks the hourglass predicts (68).
        num_steps: Iterations of SR + landmark estimation.
        upscale_factor: Projection stride of the feedback blocks (8).
        detach_attention: Detach the attention maps from the graph.
        prelu_init: Initial PReLU slope.
        num_heatmaps: Attention maps (5 parts).
        num_fusion_blocks: Grouped residual blocks in the fusion block.
    """

    LR_SIZE = 16  # the reference's fixed 128 px residual at x8

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, num_blocks: int = 6,
                 hg_mid_channels: int = 256, hg_num_keypoints: int = 68, num_steps: int = 4,
                 upscale_factor: int = 8, detach_attention: bool = False, prelu_init: float = 0.2,
                 num_heatmaps: int = 5, num_fusion_blocks: int = 7):
        super().__init__()
        self.num_steps = num_steps
        self.detach_attention = detach_attention
        self.conv_first = nn.Sequential(nn.Conv2d(in_channels, mid_channels * 4, 3, 1, 1),
                                        _prelu(prelu_init), nn.PixelShuffle(2))
        # The reference builds the first block with its default PReLU init (0.2) whatever
        # ``prelu_init`` says; PReLU weights are learned, so only an untrained net differs.
        self.first_block = FeedbackBlock(mid_channels, num_blocks, upscale_factor, in_channels=mid_channels)
        self.block = FeedbackBlockHeatmapAttention(mid_channels, num_blocks, upscale_factor, num_heatmaps,
                                                   num_fusion_blocks)
        self.hour_glass = FeedbackHourglass(hg_mid_channels, hg_num_keypoints)
        self.conv_last = nn.Sequential(nn.ConvTranspose2d(mid_channels, mid_channels, 8, 4, 2),
                                       _prelu(prelu_init), nn.Conv2d(mid_channels, out_channels, 3, 1, 1))

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``[B, C, 16, 16]`` (mean-subtracted) -> (SR images ``[B, C, 128, 128]``, heatmaps
        ``[B, 68, 32, 32]``), one of each per step."""
        if tuple(x.shape[-2:]) != (self.LR_SIZE, self.LR_SIZE):
            raise ValueError(f"DICNet takes {self.LR_SIZE}x{self.LR_SIZE} inputs (its residual is a fixed "
                             f"128x128 resize), got {x.shape[-2]}x{x.shape[-1]}")
        inter_res = F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
        x = self.conv_first(x)
        sr_outputs: list[Tensor] = []
        heatmap_outputs: list[Tensor] = []
        feature = hg_hidden = heatmap = None
        for step in range(self.num_steps):
            if step == 0:
                feature = self.first_block(x)
            else:
                attention = reduce_to_five_heatmaps(heatmap, self.detach_attention)
                feature = self.block(x, feature, attention)
            sr = inter_res + self.conv_last(feature)
            heatmap, hg_hidden = self.hour_glass(sr, hg_hidden)
            sr_outputs.append(sr)
            heatmap_outputs.append(heatmap)
        return sr_outputs, heatmap_outputs

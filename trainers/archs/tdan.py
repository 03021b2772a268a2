"""TDAN: sliding-window video super-resolution (x4) with deformable (DCNv1) frame alignment.

Paper: Tian et al., "TDAN: Temporally-Deformable Alignment Network for Video Super-Resolution",
CVPR 2020. Zoo configs: ``tdan_vimeo90k_bix4_lr1e-4_400k`` / ``tdan_vimeo90k_bix4_ft_lr5e-5_400k``
(bicubic) and ``tdan_vimeo90k_bdx4_lr1e-4_400k`` / ``tdan_vimeo90k_bdx4_ft_lr5e-5_800k``
(Gaussian blur + downsampling); all four are the same network.

As MMEditing 0.16.1's ``TDANNet``, with its return convention:
``forward(lrs)`` takes a window ``[N, 5, 3, H, W]`` and returns a **tuple**
``(output, aligned_lrs)``: the super-resolved centre frame ``[N, out_channels, 4H, 4W]`` and the
five LR frames aligned to the centre one ``[N, 5, 3, H, W]``. The training loss uses both: the
pixel loss on ``output`` plus a loss between ``aligned_lrs`` and the centre LR frame repeated
five times (mmedit's ``TDAN`` restorer); at test time only ``output`` is used. What one might
not expect:

* The data convention is the zoo's, not [0, 1]: frames are ``x / 255 - 0.5`` (RGB), for input
  and target alike, so the output is in [-0.5, 0.5] too; mmedit adds 0.5 before computing
  metrics. The network itself does no normalisation.
* Five frames exactly, centre frame ``t // 2`` = 2: ``reconstruct`` starts with a conv over the
  five aligned frames concatenated (``5 * in_channels`` inputs), and ``to_rgb`` makes
  3-channel aligned frames, so ``in_channels`` must be 3.
* The centre frame is not aligned: its raw LR frame stands in ``aligned_lrs`` (so its
  auxiliary loss term is 0 but it counts in the mean). Every neighbour: ``feat_aggregate`` (a
  conv over ``[centre, neighbour]`` features, then two offset-from-input DCNv1 layers, no
  activations anywhere) gives a feature from which ``align_1`` predicts the offsets for
  deforming the neighbour's feature; ``align_2`` deforms once more with offsets from its own
  input; ``to_rgb`` maps to an aligned LR image. All DCNs have 8 deformable groups, no bias.
* ``feat_extract.0`` and ``reconstruct.0`` are mmcv ConvModules with **ReLU** (not LeakyReLU),
  the residual blocks are ReLU too, the two pixel shuffles have no activation after them, and
  the last conv has no bias. There is no skip connection from the input to the output.
* Every ``conv_offset`` starts at zero (mmcv), so an untrained alignment is a plain conv.
"""

import torch
from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN
from trainers.archs.conv_module import ConvNormAct
from trainers.archs.deform_conv import DeformConv2d, DeformConv2dPack, deform_conv2d

NUM_FRAMES = 5  # fixed by reconstruct.0's input channels
DEFORM_GROUPS = 8
RGB = 3  # to_rgb's output channels


class AugmentedDeformConv2dPack(DeformConv2d):
    """DCNv1 layer whose offsets come from another feature (mmedit's ``AugmentedDeformConv2dPack``).

    Takes :class:`~trainers.archs.deform_conv.DeformConv2d`'s arguments and adds ``conv_offset``
    (same kernel, stride and padding; ``2 * deform_groups * kh * kw`` outputs; zero init) applied to
    ``extra_feat``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(self.in_channels, self.deform_groups * 2 * self.kernel_size[0]
                                     * self.kernel_size[1], self.kernel_size, stride=self.stride,
                                     padding=self.padding, bias=True)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, extra_feat: Tensor) -> Tensor:  # type: ignore[override]
        """Deformable conv of ``x`` at the offsets ``conv_offset(extra_feat)``."""
        return deform_conv2d(x, self.conv_offset(extra_feat), self.weight, self.stride, self.padding,
                             self.dilation, self.groups, self.deform_groups)


class TDANNet(nn.Module):
    """TDAN generator (see the module docstring).

    Args:
        in_channels: Channels of the input frames (3: the aligned frames are RGB).
        mid_channels: Feature channels (a multiple of 8, the deformable groups).
        out_channels: Channels of the output frame.
        num_blocks_before_align: Residual blocks of the per-frame feature extraction.
        num_blocks_after_align: Residual blocks of the reconstruction.
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, out_channels: int = 3,
                 num_blocks_before_align: int = 5, num_blocks_after_align: int = 10):
        super().__init__()
        if in_channels != RGB:
            raise ValueError(f"TDANNet's aligned frames have {RGB} channels (to_rgb), so in_channels must be "
                             f"{RGB}, got {in_channels}")
        if mid_channels % DEFORM_GROUPS:
            raise ValueError(f"mid_channels must be a multiple of {DEFORM_GROUPS} (deformable groups), "
                             f"got {mid_channels}")
        c = mid_channels
        self.feat_extract = nn.Sequential(
            ConvNormAct(in_channels, c, 3, padding=1),
            nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_before_align))),
        )
        self.feat_aggregate = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1, bias=True),
            DeformConv2dPack(c, c, 3, padding=1, deform_groups=DEFORM_GROUPS),
            DeformConv2dPack(c, c, 3, padding=1, deform_groups=DEFORM_GROUPS),
        )
        self.align_1 = AugmentedDeformConv2dPack(c, c, 3, padding=1, deform_groups=DEFORM_GROUPS)
        self.align_2 = DeformConv2dPack(c, c, 3, padding=1, deform_groups=DEFORM_GROUPS)
        self.to_rgb = nn.Conv2d(c, RGB, 3, padding=1, bias=True)
        self.reconstruct = nn.Sequential(
            ConvNormAct(in_channels * NUM_FRAMES, c, 3, padding=1),
            nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_after_align))),
            PixelShufflePack(c, c, 2, upsample_kernel=3),
            PixelShufflePack(c, c, 2, upsample_kernel=3),
            nn.Conv2d(c, out_channels, 3, 1, 1, bias=False),
        )

    def forward(self, lrs: Tensor) -> tuple[Tensor, Tensor]:
        """Super-resolves the centre frame of a 5-frame window.

        Args:
            lrs: ``[N, 5, 3, H, W]``, frames as ``x / 255 - 0.5`` (the zoo's convention).

        Returns:
            ``(output, aligned_lrs)``: the centre frame ``[N, out_channels, 4H, 4W]`` (same value
            convention) and the frames aligned to the centre one ``[N, 5, 3, H, W]`` (index 2 is the
            input's centre frame itself), for the auxiliary loss against the centre frame.

        Raises:
            ValueError: If ``lrs`` is not a 5-frame, 3-channel window (one line).
        """
        if lrs.dim() != 5 or lrs.shape[1] != NUM_FRAMES or lrs.shape[2] != RGB:
            raise ValueError(f"TDANNet takes windows of {NUM_FRAMES} frames [N, {NUM_FRAMES}, {RGB}, H, W], "
                             f"got shape {list(lrs.shape)}")
        n, t, c, h, w = lrs.shape
        centre = t // 2
        feats = self.feat_extract(lrs.reshape(-1, c, h, w)).view(n, t, -1, h, w)
        feat_centre = feats[:, centre].contiguous()
        aligned = []
        for i in range(t):
            if i == centre:
                aligned.append(lrs[:, centre])
                continue
            feat_neighbour = feats[:, i].contiguous()
            feat_agg = self.feat_aggregate(torch.cat([feat_centre, feat_neighbour], dim=1))
            aligned.append(self.to_rgb(self.align_2(self.align_1(feat_neighbour, feat_agg))))
        aligned_lrs = torch.cat(aligned, dim=1)
        return self.reconstruct(aligned_lrs), aligned_lrs.view(n, t, c, h, w)

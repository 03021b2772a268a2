"""RRDBNet: the ESRGAN generator of Wang et al., "ESRGAN: Enhanced Super-Resolution
Generative Adversarial Networks", ECCVW 2018; also the generator of Real-ESRNet and
Real-ESRGAN (Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution
with Pure Synthetic Data", ICCVW 2021).

Zoo configs: ``esrgan_psnr_x4c64b23g32_1x16_1000k_div2k`` (the PSNR-oriented
pre-training), ``esrgan_x4c64b23g32_1x16_400k_div2k``,
``realesrnet_c64b23g32_12x4_lr2e-4_1000k_df2k_ost`` and
``realesrgan_c64b23g32_12x4_lr1e-4_400k_df2k_ost`` (all x4, 64 channels,
23 RRDBs, growth 32: 16,697,987 parameters).

Structure as in MMEditing 0.x: ``conv_first``, a trunk ``body`` of RRDBs (each
three residual dense blocks ``rdb1..3`` with five convs ``conv1..5``), ``conv_body``
and a trunk-level residual add, then two nearest-neighbour x2 stages
(``conv_up1``, ``conv_up2``), ``conv_hr`` and ``conv_last``. LeakyReLU(0.2)
throughout, no BN, no global image skip. The x4 upsampler is fixed; x2 and x1
models (Real-ESRGAN's) first pixel-unshuffle the input by 4 // scale, so
``conv_first`` sees ``in_channels * (4 // scale) ** 2`` channels and the input's
height and width must be divisible by 4 // scale.

Initialisation follows MMEditing 0.x: every conv gets Kaiming init scaled by 0.1
(ESRGAN, sec. 3.3), which with the 0.2 residual scaling keeps the deep trunk stable.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.blocks import scaled_kaiming_init_

_SCALES = (1, 2, 4)


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; the last maps back to ``mid_channels``, residual x0.2.

    Conv ``i`` (1-based) sees the block input concatenated with the ``i - 1``
    previous growth outputs, so its input has ``mid + (i - 1) * growth`` channels.

    Args:
        mid_channels: Block input and output channels.
        growth_channels: Channels each of ``conv1..conv4`` adds to the concatenation.
    """

    def __init__(self, mid_channels: int = 64, growth_channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(mid_channels, growth_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(mid_channels + growth_channels, growth_channels, 3, 1, 1)
        self.conv3 = nn.Conv2d(mid_channels + 2 * growth_channels, growth_channels, 3, 1, 1)
        self.conv4 = nn.Conv2d(mid_channels + 3 * growth_channels, growth_channels, 3, 1, 1)
        self.conv5 = nn.Conv2d(mid_channels + 4 * growth_channels, mid_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        scaled_kaiming_init_(self, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + 0.2 * conv5(cat(x, x1..x4))``."""
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks in a chain, residual x0.2.

    Args:
        mid_channels: Block input and output channels.
        growth_channels: Growth channels of each dense block.
    """

    def __init__(self, mid_channels: int, growth_channels: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(mid_channels, growth_channels)
        self.rdb2 = ResidualDenseBlock(mid_channels, growth_channels)
        self.rdb3 = ResidualDenseBlock(mid_channels, growth_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """RRDB trunk with a trunk-level residual and a nearest-upsample + conv x4 head.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        mid_channels: Feature channels.
        num_blocks: Number of RRDBs in the trunk.
        growth_channels: Growth channels of the dense blocks.
        upscale_factor: Output scale: 4, or 2 / 1 via pixel-unshuffle of the input.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        mid_channels: int = 64,
        num_blocks: int = 23,
        growth_channels: int = 32,
        upscale_factor: int = 4,
    ):
        super().__init__()
        if upscale_factor not in _SCALES:
            raise ValueError(f"RRDBNet supports scales 1, 2 and 4, got {upscale_factor}")
        self.upscale_factor = upscale_factor
        self.unshuffle = 4 // upscale_factor
        self.conv_first = nn.Conv2d(in_channels * self.unshuffle**2, mid_channels, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(mid_channels, growth_channels) for _ in range(num_blocks)])
        self.conv_body = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_hr = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(mid_channels, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        for m in (self.conv_first, self.conv_body, self.conv_up1, self.conv_up2, self.conv_hr, self.conv_last):
            scaled_kaiming_init_(m, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Maps an LR batch ``[B, C, h, w]`` to ``[B, C_out, h*s, w*s]``.

        For scales 1 and 2, ``h`` and ``w`` must be divisible by ``4 // s``.
        """
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

"""MSRResNet: the modified SRResNet of Wang et al., "ESRGAN", ECCVW 2018.

SRResNet itself is from Ledig et al., "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", CVPR 2017; the modified version drops BN,
uses LeakyReLU(0.1) and learns a residual over the bilinearly upsampled input.

Zoo configs: ``msrresnet_x4c64b16_1x16_300k_div2k`` (and it is the generator of
``srgan_x4c64b16_1x16_1000k_div2k``).

Input and output are RGB in [0, 1]. Initialisation follows MMEditing 0.x: the
trunk blocks and ``conv_first``/``conv_hr``/``conv_last`` get Kaiming init scaled
by 0.1, so the untrained network starts close to bilinear upsampling.
"""

from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN, scaled_kaiming_init_


class MSRResNet(nn.Module):
    """Residual trunk without BN, pixel-shuffle upsampling, global bilinear skip.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels; must equal ``in_channels`` for the skip add.
        mid_channels: Feature channels.
        num_blocks: Number of residual blocks in the trunk.
        upscale_factor: Output scale: 2, 3 or 4.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        mid_channels: int = 64,
        num_blocks: int = 16,
        upscale_factor: int = 4,
    ):
        super().__init__()
        if upscale_factor not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports scales 2, 3 and 4, got {upscale_factor}")
        self.upscale_factor = upscale_factor
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, 1, 1)
        self.trunk_net = nn.Sequential(*[ResidualBlockNoBN(mid_channels) for _ in range(num_blocks)])
        if upscale_factor == 4:
            self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
            self.upsample2 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        else:
            self.upsample1 = PixelShufflePack(mid_channels, mid_channels, upscale_factor, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(mid_channels, out_channels, 3, 1, 1)
        self.img_upsampler = nn.Upsample(scale_factor=upscale_factor, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        for m in (self.conv_first, self.conv_hr, self.conv_last):
            scaled_kaiming_init_(m, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Maps an LR batch ``[B, C, h, w]`` to ``[B, C_out, h*s, w*s]``."""
        feat = self.trunk_net(self.lrelu(self.conv_first(x)))
        feat = self.upsample1(feat)
        if self.upscale_factor == 4:
            feat = self.upsample2(feat)
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out + self.img_upsampler(x)

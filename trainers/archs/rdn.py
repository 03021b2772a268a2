"""RDN: Zhang et al., "Residual Dense Network for Image Super-Resolution", CVPR 2018.

Zoo configs: ``rdn_x2c64b16_g1_1000k_div2k``, ``rdn_x3c64b16_g1_1000k_div2k``,
``rdn_x4c64b16_g1_1000k_div2k`` (64 channels, 16 blocks, 8 layers, growth 64).

Structure as in MMEditing 0.x: two shallow-feature convs (``sfe1``, ``sfe2``),
residual dense blocks whose outputs are all concatenated and fused by ``gff``
(1x1 then 3x3 conv), a global residual add of ``sfe1`` (not ``sfe2``), then a
plain ``nn.Sequential`` upsampler (conv + PixelShuffle per stage, so x4 has keys
``upscale.0`` and ``upscale.2``) and the ``output`` conv. No input normalisation:
the input is RGB in [0, 1] as is. PyTorch default init (the zoo adds none).
"""

import torch
from torch import Tensor, nn


class DenseLayer(nn.Module):
    """Conv-ReLU whose output is concatenated to its input (dense connectivity).

    Args:
        in_channels: Channels of the running concatenation.
        out_channels: Channels this layer adds (the growth rate).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``cat([x, relu(conv(x))])`` along channels."""
        return torch.cat([x, self.relu(self.conv(x))], 1)


class RDB(nn.Module):
    """Residual dense block: dense layers, 1x1 local feature fusion (``lff``), local residual.

    Args:
        in_channels: Block input and output channels.
        channel_growth: Channels each dense layer adds.
        num_layers: Number of dense layers.
    """

    def __init__(self, in_channels: int, channel_growth: int, num_layers: int):
        super().__init__()
        self.layers = nn.Sequential(
            *[DenseLayer(in_channels + channel_growth * i, channel_growth) for i in range(num_layers)]
        )
        self.lff = nn.Conv2d(in_channels + channel_growth * num_layers, in_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + lff(layers(x))``."""
        return x + self.lff(self.layers(x))


def _make_upscale(mid_channels: int, upscale_factor: int) -> nn.Sequential:
    """Conv + PixelShuffle stages: two x2 stages for x4, one stage for x2 or x3."""
    if upscale_factor not in (2, 3, 4):
        raise ValueError(f"RDN supports scales 2, 3 and 4, got {upscale_factor}")
    stage_scales = [2, 2] if upscale_factor == 4 else [upscale_factor]
    modules: list[nn.Module] = []
    for s in stage_scales:
        modules += [nn.Conv2d(mid_channels, mid_channels * s * s, kernel_size=3, padding=1), nn.PixelShuffle(s)]
    return nn.Sequential(*modules)


class RDN(nn.Module):
    """Residual Dense Network for single-image SR.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        mid_channels: Feature channels between blocks.
        num_blocks: Number of residual dense blocks.
        upscale_factor: Output scale: 2, 3 or 4.
        num_layers: Dense layers per block.
        channel_growth: Channels each dense layer adds.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        mid_channels: int = 64,
        num_blocks: int = 16,
        upscale_factor: int = 4,
        num_layers: int = 8,
        channel_growth: int = 64,
    ):
        super().__init__()
        self.upscale_factor = upscale_factor
        self.sfe1 = nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1)
        self.sfe2 = nn.Conv2d(mid_channels, mid_channels, kernel_size=3, padding=1)
        self.rdbs = nn.ModuleList([RDB(mid_channels, channel_growth, num_layers) for _ in range(num_blocks)])
        self.gff = nn.Sequential(
            nn.Conv2d(mid_channels * num_blocks, mid_channels, kernel_size=1),
            nn.Conv2d(mid_channels, mid_channels, kernel_size=3, padding=1),
        )
        self.upscale = _make_upscale(mid_channels, upscale_factor)
        self.output = nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Maps an LR batch ``[B, C, h, w]`` to ``[B, C_out, h*s, w*s]``."""
        sfe1 = self.sfe1(x)
        feat = self.sfe2(sfe1)
        block_outputs = []
        for rdb in self.rdbs:
            feat = rdb(feat)
            block_outputs.append(feat)
        feat = self.gff(torch.cat(block_outputs, 1)) + sfe1
        return self.output(self.upscale(feat))

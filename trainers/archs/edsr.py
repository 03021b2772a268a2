"""EDSR: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017.

Zoo configs: ``edsr_x2c64b16_1x16_300k_div2k``, ``edsr_x3c64b16_1x16_300k_div2k``,
``edsr_x4c64b16_1x16_300k_div2k`` (the 64-channel, 16-block "baseline" EDSR).

The input is RGB in [0, 1]. ``forward`` subtracts the DIV2K mean (and divides by
``rgb_std``) before the first conv and undoes it at the end, so the network
itself models a zero-centred signal; a caller must not normalise again.
Mean and std are non-persistent buffers: they follow ``.to(device)`` but are not
in the state dict, exactly like the zoo checkpoints, which do not store them.
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN


class UpsampleModule(nn.Sequential):
    """Pixel-shuffle upsampler: one x2 stage per factor of two, or a single x3 stage.

    Args:
        scale: Upsampling factor, a power of two or 3.
        mid_channels: Feature channels, kept through every stage.

    Raises:
        ValueError: For any other scale.
    """

    def __init__(self, scale: int, mid_channels: int):
        if scale >= 2 and scale & (scale - 1) == 0:
            stages = [PixelShufflePack(mid_channels, mid_channels, 2, 3) for _ in range(int(math.log2(scale)))]
        elif scale == 3:
            stages = [PixelShufflePack(mid_channels, mid_channels, 3, 3)]
        else:
            raise ValueError(f"EDSR supports scales 2^n and 3, got {scale}")
        super().__init__(*stages)


class EDSR(nn.Module):
    """EDSR: residual trunk without BN, a long skip, and a pixel-shuffle upsampler.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        mid_channels: Feature channels in the trunk.
        num_blocks: Number of residual blocks in the trunk.
        upscale_factor: Output scale, a power of two or 3.
        res_scale: Residual scaling inside each block (1 for the baseline, 0.1 for EDSR-large).
        rgb_mean: Per-channel mean subtracted from the [0, 1] input.
        rgb_std: Per-channel std dividing the centred input.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        mid_channels: int = 64,
        num_blocks: int = 16,
        upscale_factor: int = 4,
        res_scale: float = 1,
        rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
        rgb_std: Sequence[float] = (1.0, 1.0, 1.0),
    ):
        super().__init__()
        self.upscale_factor = upscale_factor
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(rgb_std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(mid_channels, res_scale) for _ in range(num_blocks)])
        self.conv_after_body = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.upsample = UpsampleModule(upscale_factor, mid_channels)
        self.conv_last = nn.Conv2d(mid_channels, out_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Maps an LR batch in [0, 1], ``[B, C, h, w]``, to ``[B, C_out, h*s, w*s]`` in roughly [0, 1]."""
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        feat = self.conv_first((x - mean) / std)
        res = self.conv_after_body(self.body(feat)) + feat
        out = self.conv_last(self.upsample(res))
        return out * std + mean

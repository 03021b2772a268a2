"""SRCNN: Dong et al., "Learning a Deep Convolutional Network for Image Super-Resolution", ECCV 2014.

Zoo configs: ``srcnn_x4k915_1x16_1000k_div2k`` (channels 3-64-32-3, kernels 9-1-5).

The network works at HR resolution: the LR input is bicubically upsampled inside
``forward`` (``nn.Upsample``, ``align_corners=False``, as in MMEditing 0.x), then
three convs (patch extraction, non-linear mapping, reconstruction) refine it.
Input and output are RGB in [0, 1]; the output is not clamped.
"""

from collections.abc import Sequence

from torch import Tensor, nn


class SRCNN(nn.Module):
    """Three-layer SR network on a bicubically upsampled input.

    Args:
        channels: Channel counts ``(in, hidden1, hidden2, out)``.
        kernel_sizes: Kernel size of each of the three convs; padding keeps the size.
        upscale_factor: Scale of the internal bicubic upsampling.
    """

    def __init__(
        self,
        channels: Sequence[int] = (3, 64, 32, 3),
        kernel_sizes: Sequence[int] = (9, 1, 5),
        upscale_factor: int = 4,
    ):
        super().__init__()
        if len(channels) != 4 or len(kernel_sizes) != 3:
            raise ValueError(
                f"SRCNN needs 4 channel counts and 3 kernel sizes, got {tuple(channels)} and {tuple(kernel_sizes)}"
            )
        self.upscale_factor = upscale_factor
        self.img_upsampler = nn.Upsample(scale_factor=upscale_factor, mode="bicubic", align_corners=False)
        self.conv1 = nn.Conv2d(channels[0], channels[1], kernel_sizes[0], padding=kernel_sizes[0] // 2)
        self.conv2 = nn.Conv2d(channels[1], channels[2], kernel_sizes[1], padding=kernel_sizes[1] // 2)
        self.conv3 = nn.Conv2d(channels[2], channels[3], kernel_sizes[2], padding=kernel_sizes[2] // 2)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """Maps an LR batch ``[B, C, h, w]`` to ``[B, C_out, h*s, w*s]``."""
        x = self.img_upsampler(x)
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)

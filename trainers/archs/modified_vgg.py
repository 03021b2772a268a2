"""ModifiedVGG: the VGG-style discriminator of Ledig et al., "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network" (SRGAN), CVPR 2017, in the
128 px form that Wang et al., "ESRGAN", ECCVW 2018, trains against.

Zoo configs: the discriminator of ``srgan_x4c64b16_1x16_1000k_div2k`` and of
``esrgan_x4c64b23g32_1x16_400k_div2k`` (``in_channels=3, mid_channels=64``:
14,499,401 parameters).

Structure as in MMEditing 0.x: ``conv0_0`` (3x3, bias, no BN), then ``conv0_1`` and
four stages ``conv{i}_0`` (3x3, widens) / ``conv{i}_1`` (4x4 stride 2, halves the size),
each bias-free and followed by its ``bn{i}_{j}``; LeakyReLU(0.2) after every layer
but the last. Five stride-2 convs take a 128 x 128 input to 4 x 4, which is what
``linear1`` (``mid_channels * 8 * 4 * 4 -> 100``) is sized for, so any other input
size is refused. ``linear2`` gives one unbounded logit per image (the GAN loss
applies the sigmoid). PyTorch default init, as the zoo uses.
"""

from torch import Tensor, nn

INPUT_SIZE = 128

# The conv/BN pairs after conv0_0, in forward order: "{stage}_{0: widen, 1: stride 2}".
_CONV_BN_PAIRS = ("0_1", "1_0", "1_1", "2_0", "2_1", "3_0", "3_1", "4_0", "4_1")


class ModifiedVGG(nn.Module):
    """VGG-style image discriminator for 128 x 128 inputs.

    Args:
        in_channels: Input image channels.
        mid_channels: Width of the first stage; later stages use 2x, 4x, 8x and 8x.
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64):
        super().__init__()
        widths = [mid_channels * m for m in (1, 2, 4, 8, 8)]
        self.conv0_0 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=True)
        self._add_conv_bn("0_1", widths[0], widths[0], kernel_size=4, stride=2)
        for stage in range(1, 5):
            self._add_conv_bn(f"{stage}_0", widths[stage - 1], widths[stage], kernel_size=3, stride=1)
            self._add_conv_bn(f"{stage}_1", widths[stage], widths[stage], kernel_size=4, stride=2)
        self.linear1 = nn.Linear(widths[-1] * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _add_conv_bn(self, suffix: str, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        """Registers ``conv<suffix>`` (bias-free: the BN shift replaces it) and ``bn<suffix>``."""
        padding = 1  # keeps the size for 3x3, halves it exactly for 4x4 stride 2
        setattr(self, f"conv{suffix}", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False))
        setattr(self, f"bn{suffix}", nn.BatchNorm2d(out_channels, affine=True))

    def forward(self, x: Tensor) -> Tensor:
        """Maps a batch ``[B, C, 128, 128]`` to one real/fake logit per image, ``[B, 1]``.

        Raises:
            ValueError: If the input is not 128 x 128 (``linear1`` is sized for it).
        """
        if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"ModifiedVGG needs {INPUT_SIZE}x{INPUT_SIZE} inputs, got {list(x.shape)}")
        feat = self.lrelu(self.conv0_0(x))
        for suffix in _CONV_BN_PAIRS:
            conv, bn = getattr(self, f"conv{suffix}"), getattr(self, f"bn{suffix}")
            feat = self.lrelu(bn(conv(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)

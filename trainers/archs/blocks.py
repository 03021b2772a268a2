"""Building blocks shared by several architectures (not an architecture itself).

Attribute names (``conv1``, ``conv2``, ``upsample_conv``) follow MMEditing 0.x
because they end up in state-dict keys, and zoo checkpoints must load strictly.
The initialisation helpers reproduce the zoo's training-time init so that a
from-scratch run starts where the zoo's runs started.
"""

from torch import Tensor, nn
from torch.nn import functional as F


def scaled_kaiming_init_(module: nn.Module, scale: float = 1.0) -> None:
    """Kaiming-normal (fan_in, ReLU gain) init of every conv/linear, weights times ``scale``.

    Residual networks train more stably when the residual branches start small
    (ESRGAN, sec. 3.3), so the zoo scales the init of residual convs by 0.1.
    Biases start at zero.

    Args:
        module: Module whose Conv2d/Linear submodules (itself included) are initialised.
        scale: Multiplier applied to the weights after Kaiming init.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", nonlinearity="relu")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualBlockNoBN(nn.Module):
    """Conv-ReLU-Conv residual block without batch norm (EDSR, SRResNet-style trunks).

    BN is dropped because it removes the range flexibility SR networks need
    (EDSR paper, sec. 3.1). With ``res_scale == 1`` the convs get the scaled
    (x0.1) Kaiming init, as in MMEditing; otherwise PyTorch's default init is kept,
    matching the original EDSR recipe for its large res_scale=0.1 models.

    Args:
        mid_channels: Feature channels in and out.
        res_scale: Multiplier on the residual branch before the skip add.
    """

    def __init__(self, mid_channels: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        if res_scale == 1.0:
            scaled_kaiming_init_(self, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + res_scale * conv2(relu(conv1(x)))``."""
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class PixelShufflePack(nn.Module):
    """Conv to ``out_channels * scale**2`` channels followed by pixel shuffle.

    Sub-pixel convolution (ESPCN) upsamples in feature space, which is cheaper
    and sharper than interpolating first.

    Args:
        in_channels: Input feature channels.
        out_channels: Channels after the shuffle.
        scale_factor: Spatial upsampling factor.
        upsample_kernel: Kernel size of the expanding conv.
    """

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, upsample_kernel: int):
        super().__init__()
        self.scale_factor = scale_factor
        self.upsample_conv = nn.Conv2d(
            in_channels,
            out_channels * scale_factor * scale_factor,
            upsample_kernel,
            padding=(upsample_kernel - 1) // 2,
        )
        scaled_kaiming_init_(self, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Returns the feature map upsampled by ``scale_factor``."""
        return F.pixel_shuffle(self.upsample_conv(x), self.scale_factor)

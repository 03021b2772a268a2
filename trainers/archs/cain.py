"""CAIN: frame interpolation by channel attention over space-to-depth features (2 frames in, 1 out).

Paper: Choi et al., "Channel Attention Is All You Need for Video Frame Interpolation", AAAI 2020.
Zoo config: ``cain_b5_g1b32_vimeo90k_triplet`` (Vimeo-90K triplet, im1 + im3 -> im2).

As MMEditing 0.x's ``CAINNet``:

* input ``[N, 2, 3, H, W]`` (the two frames around the missing one) in [0, 1] (the zoo pipeline's
  ``RescaleToZeroOne``; there is no [-1, 1] scaling anywhere), output ``[N, 3, H, W]``,
  not clamped (the zoo clamps to [0, 1] only at test time);
* each frame loses its own per-channel spatial mean; the output gets the average of the two
  means back, added after the crop below;
* ``padding_flag=True`` (what the zoo's test does; training passes False) pads both frames to the
  next multiple of ``2 ** padding`` (128 with the default 7, not ``2 ** depth``), centred (the odd
  pixel goes right / down), by reflection, or by edge replication when the larger half-pad
  (right or down) is not smaller than the frame (reflection cannot reach that far); the output
  is cropped back to H x W. Without it, H and W must be multiples of ``2 ** depth``;
* space-to-depth: ``pixel_unshuffle`` by ``2 ** depth`` turns each frame into
  ``3 * 4 ** depth`` channels (192 for depth 3), the two are concatenated, ``conv_first``
  (``kernel_size`` with zero padding 1, so only 3 keeps the size) fuses them, ``body`` runs ``num_block_groups``
  residual groups, the body's input is added back, ``conv_last`` (zero padding 1) and
  ``pixel_shuffle`` return to full resolution;
* a residual group is ``num_block_layers`` residual channel-attention blocks (reflection-padded
  conv, LeakyReLU 0.2, reflection-padded conv, squeeze-excitation with ``reduction``) then a
  reflection-padded conv, with a skip around the whole group; there is no final activation;
* ``norm`` ``'in'`` is ``InstanceNorm2d`` *with running statistics* (so eval mode uses the
  running averages, not each image's), ``'bn'`` is ``BatchNorm2d``; the zoo uses none;
* init is PyTorch's default for every layer (mmedit adds none).

What mmedit does and this port does not: its forward subtracts the means in place on views of the
caller's tensor, so the input batch comes back changed; here the input is left untouched (the
outputs are the same). mmedit's ``act`` argument (an activation *module*, default
``LeakyReLU(0.2)``) is not taken: a YAML config cannot name a module, and the zoo uses the default,
which is built in here.
"""

import torch.nn.functional as F
from torch import Tensor, nn


def _centred_padding(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding to the next multiples of ``multiple``; the odd pixel goes right / down."""
    pad_h, pad_w = -h % multiple, -w % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


class ConvNormWithReflectionPad(nn.Module):
    """Reflection pad by ``kernel_size // 2``, conv (with bias), optional norm.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        norm: None, ``'in'`` (InstanceNorm2d tracking running statistics) or ``'bn'``
            (case-insensitive).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str | None = None):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, bias=True)
        if norm is None:
            self.norm = None
        elif norm.lower() == "in":
            self.norm = nn.InstanceNorm2d(out_channels, track_running_stats=True)
        elif norm.lower() == "bn":
            self.norm = nn.BatchNorm2d(out_channels)
        else:
            raise ValueError(f"CAIN norm must be None, 'in' or 'bn', got {norm!r}")

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, out, H, W]``."""
        x = self.conv(self.reflection_pad(x))
        return x if self.norm is None else self.norm(x)


class ChannelAttentionLayer(nn.Module):
    """Squeeze-excitation: global mean -> 1x1 conv down by ``reduction`` -> ReLU -> 1x1 up -> sigmoid gate.

    Args:
        mid_channels: Channels of the gated features.
        reduction: Channel reduction of the bottleneck.
    """

    def __init__(self, mid_channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.channel_attention = nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels // reduction, 1, padding=0, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels // reduction, mid_channels, 1, padding=0, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Gates each channel of ``x`` by a weight computed from all channels' means."""
        return x * self.channel_attention(self.avg_pool(x))


class ResidualChannelAttention(nn.Module):
    """``x + CA(conv(lrelu(conv(x))))`` with reflection-padded convs (attribute ``body.0`` .. ``body.3``).

    Args:
        mid_channels: Feature channels.
        kernel_size: Conv kernel size.
        reduction: Channel-attention reduction.
        norm: Norm after each conv (see :class:`ConvNormWithReflectionPad`).
    """

    def __init__(self, mid_channels: int, kernel_size: int = 3, reduction: int = 16, norm: str | None = None):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormWithReflectionPad(mid_channels, mid_channels, kernel_size, norm=norm),
            nn.LeakyReLU(0.2, inplace=True),
            ConvNormWithReflectionPad(mid_channels, mid_channels, kernel_size, norm=norm),
            ChannelAttentionLayer(mid_channels, reduction),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Same shape in and out."""
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``num_block_layers`` :class:`ResidualChannelAttention` blocks and a conv, with a skip around them.

    Args:
        num_block_layers: Blocks in the group.
        mid_channels: Feature channels.
        kernel_size: Conv kernel size.
        reduction: Channel-attention reduction.
        norm: Norm after each conv.
    """

    def __init__(self, num_block_layers: int, mid_channels: int, kernel_size: int, reduction: int,
                 norm: str | None = None):
        super().__init__()
        self.body = nn.Sequential(*[
            ResidualChannelAttention(mid_channels, kernel_size, reduction, norm=norm)
            for _ in range(num_block_layers)
        ])
        self.conv_after_body = ConvNormWithReflectionPad(mid_channels, mid_channels, kernel_size, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        """Same shape in and out."""
        return x + self.conv_after_body(self.body(x))


class CAINNet(nn.Module):
    """CAIN generator (see the module docstring).

    Args:
        in_channels: Channels of each frame (3).
        kernel_size: Kernel size of the body convs (``conv_first`` / ``conv_last`` pad by 1 regardless).
        num_block_groups: Residual groups in the body.
        num_block_layers: Residual channel-attention blocks per group.
        depth: Space-to-depth levels; features are at 1 / ``2 ** depth`` resolution with
            ``in_channels * 4 ** depth`` channels.
        reduction: Channel-attention reduction.
        norm: None, ``'in'`` or ``'bn'`` after each body conv.
        padding: With ``padding_flag``, frames are padded to a multiple of ``2 ** padding``.
    """

    def __init__(self, in_channels: int = 3, kernel_size: int = 3, num_block_groups: int = 5,
                 num_block_layers: int = 12, depth: int = 3, reduction: int = 16, norm: str | None = None,
                 padding: int = 7):
        super().__init__()
        if padding < depth:
            raise ValueError(f"CAIN padding ({padding}) must be >= depth ({depth}): padded frames must stay "
                             f"divisible by 2 ** depth")
        mid_channels = in_channels * 4 ** depth
        self.in_channels = in_channels
        self.scale = 2 ** depth
        self.padding = padding
        self.conv_first = nn.Conv2d(mid_channels * 2, mid_channels, kernel_size, 1, 1)
        self.body = nn.Sequential(*[
            ResidualGroup(num_block_layers, mid_channels, kernel_size, reduction, norm=norm)
            for _ in range(num_block_groups)
        ])
        self.conv_last = nn.Conv2d(mid_channels, mid_channels, kernel_size, 1, 1)

    def forward(self, imgs: Tensor, padding_flag: bool = False) -> Tensor:
        """Synthesises the frame between ``imgs[:, 0]`` and ``imgs[:, 1]``.

        Args:
            imgs: ``[N, 2, C, H, W]`` in [0, 1].
            padding_flag: Pad to a multiple of ``2 ** padding`` and crop back (the zoo's test
                mode); otherwise H and W must be multiples of ``2 ** depth``.

        Returns:
            ``[N, C, H, W]``, not clamped.
        """
        if imgs.dim() != 5 or imgs.shape[1] != 2 or imgs.shape[2] != self.in_channels:
            raise ValueError(f"CAINNet expects 2 frames [N, 2, {self.in_channels}, H, W], "
                             f"got shape {list(imgs.shape)}")
        h, w = imgs.shape[-2:]
        if not padding_flag and (h % self.scale or w % self.scale):
            raise ValueError(f"CAINNet needs H and W divisible by {self.scale} without padding_flag, got {h}x{w}")
        mean = imgs.mean(3, keepdim=True).mean(4, keepdim=True)  # [N, 2, C, 1, 1]: each frame's channel means
        x = (imgs - mean).flatten(0, 1)  # both frames through the same pad / unshuffle
        if padding_flag:
            left, right, top, bottom = _centred_padding(h, w, 2 ** self.padding)
            mode = "replicate" if bottom >= h or right >= w else "reflect"
            x = F.pad(x, (left, right, top, bottom), mode=mode)
        x = F.pixel_unshuffle(x, self.scale)
        x = x.unflatten(0, (-1, 2)).flatten(1, 2)  # [N, 2 * mid, h, w]: frame 0's channels first
        x = self.conv_first(x)
        x = self.conv_last(self.body(x) + x)
        out = F.pixel_shuffle(x, self.scale)
        if padding_flag:
            out = out[..., top:top + h, left:left + w]
        return out + mean.mean(1)

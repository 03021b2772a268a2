"""FLAVR: flow-free frame interpolation with a 3D-convolution U-Net (4 frames in, 1 out).

Paper: Kalluri et al., "FLAVR: Flow-Agnostic Video Representations for Fast Frame
Interpolation", WACV 2023 (arXiv 2012.08512). Zoo config: ``flavr_in4out1_g8b4_vimeo90k_septuplet``
(Vimeo-90K septuplet, im1, im3, im5, im7 -> im4).

As MMEditing 0.x's ``FLAVRNet``:

* input ``[N, T, 3, H, W]`` with T = ``num_input_frames``, in [0, 1] (the zoo's
  ``RescaleToZeroOne``); output ``[N, 3, H, W]`` when ``num_output_frames`` is 1, else
  ``[N, num_output_frames, 3, H, W]``; not clamped (the zoo clamps at test time). H and W must
  be multiples of 8 (three stride-2 stages, undone by three x2 transposed convs; mmedit fails
  in a ``torch.cat`` otherwise); the network pads nothing itself;
* each sample loses its per-channel mean over all frames and pixels, which is added back to
  every output frame;
* encoder: a ResNet-18-style 3D network (full 3x3x3 convs, not R(2+1)D): a stem conv
  (3x7x7, stride 1x2x2, ReLU), then four stages of ``encoder_layers_list`` basic blocks with
  widths ``mid_channels_list`` reversed (64, 128, 256, 512), spatial strides 1, 2, 2, 1 and
  temporal stride 1 everywhere, so time is never downsampled; each block is conv-ReLU-conv,
  then a feature gate (``SEGating``: global 3D mean -> 1x1x1 conv with bias -> sigmoid, times
  the features), a 1x1x1 strided projection on the skip where the shape changes, add, ReLU;
  encoder convs have no bias (``bias=False``);
* decoder: 3x3x3 conv (with bias) on the deepest features, then transposed convs
  (3x4x4, stride 1x2x2) or, with ``up_mode='trilinear'``, trilinear x2 upsampling and a
  1x1x1 conv; every decoder conv is followed by a feature gate, and LeakyReLU 0.2 comes after
  the gate; skips are concatenated (``join_type='concat'``) or added (``'add'``) with encoder
  stages 3, 2, 1 and the stem;
* the T time slices are stacked on channels (frame-major), fused by a 1x1 conv (no bias) +
  LeakyReLU 0.2 (``feature_fuse``), and a reflection-padded 7x7 conv (``conv_last``) gives
  3 channels per output frame;
* init: every encoder Conv3d (the gates' too) Kaiming-normal ``fan_out`` for ReLU with zero
  bias; ``feature_fuse`` Kaiming-normal ``fan_out`` for LeakyReLU 0.2; PyTorch's defaults elsewhere.

What mmedit accepts and this port does not: ``norm_cfg`` other than None. mmedit builds the
norm layers, but no norm type runs: ``feature_fuse`` is a 2D conv and the rest 3D, so
``BN3d`` fails in ``feature_fuse`` and ``BN`` in the encoder. Here it is a ValueError at
construction. ``join_type`` and ``up_mode`` must be one of the two values mmedit documents
(mmedit silently treats any other value as ``'add'`` / ``'trilinear'``).
"""

import torch
from torch import Tensor, nn

DOWNSCALE = 8  # stem and encoder stages 2 and 3 halve H and W


class ConvAct(nn.Module):
    """A conv (attribute ``conv``, as mmcv's ``ConvModule``) and an optional activation without weights."""

    def __init__(self, conv: nn.Module, act: nn.Module | None = None):
        super().__init__()
        self.conv = conv
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        """The conv, then the activation if any."""
        x = self.conv(x)
        return x if self.act is None else self.act(x)


class SEGating(nn.Module):
    """Feature gate: ``x * sigmoid(conv1x1x1(mean of x over time and space))``.

    Args:
        in_channels: Channels of the gated features.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.attn_layer = nn.Sequential(nn.Conv3d(in_channels, in_channels, kernel_size=1, stride=1, bias=True),
                                        nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        """Same shape in and out."""
        return x * self.attn_layer(self.pool(x))


class BasicBlock(nn.Module):
    """3D ResNet basic block with a feature gate before the skip addition.

    Args:
        in_channels: Input channels.
        mid_channels: Output channels of both convs.
        stride: Stride of the first conv (int or (t, h, w)).
        bias: Conv biases.
        downsample: Projection of the skip (1x1x1 strided conv) where the shape changes, else None.
    """

    expansion = 1

    def __init__(self, in_channels: int, mid_channels: int, stride: int | tuple[int, int, int] = 1,
                 bias: bool = False, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = ConvAct(nn.Conv3d(in_channels, mid_channels, 3, stride=stride, padding=1, bias=bias),
                             nn.ReLU(inplace=True))
        self.conv2 = ConvAct(nn.Conv3d(mid_channels, mid_channels, 3, stride=1, padding=1, bias=bias))
        self.fg = SEGating(mid_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, T, H, W]`` -> ``[N, mid, T, H / s, W / s]``."""
        out = self.fg(self.conv2(self.conv1(x)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Encoder(nn.Module):
    """Stem and four stages of :class:`BasicBlock`; returns the stem's and every stage's output.

    Args:
        layers: Blocks per stage.
        mid_channels_list: Stage widths, shallowest first (the stem has the first).
        bias: Conv biases.
    """

    def __init__(self, layers: list[int], mid_channels_list: list[int], bias: bool):
        super().__init__()
        self.in_channels = mid_channels_list[0]
        self.stem_layer = ConvAct(
            nn.Conv3d(3, mid_channels_list[0], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=bias),
            nn.ReLU(inplace=False))
        spatial_strides = (1, 2, 2, 1)
        for i, (width, blocks, stride) in enumerate(zip(mid_channels_list, layers, spatial_strides)):
            setattr(self, f"layer{i + 1}", self._make_layer(width, blocks, stride, bias))
        for m in self.modules():  # after every conv exists, so the gates' convs are included
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _make_layer(self, width: int, blocks: int, spatial_stride: int, bias: bool) -> nn.Sequential:
        stride = (1, spatial_stride, spatial_stride)  # time keeps its length
        downsample = None
        if spatial_stride != 1 or self.in_channels != width:
            downsample = ConvAct(nn.Conv3d(self.in_channels, width, 1, stride=stride, bias=False))
        layers = [BasicBlock(self.in_channels, width, stride=stride, bias=bias, downsample=downsample)]
        self.in_channels = width
        layers += [BasicBlock(width, width, bias=bias) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``[N, 3, T, H, W]`` -> stem (1/2), stage 1 (1/2), 2 (1/4), 3 (1/8), 4 (1/8)."""
        x0 = self.stem_layer(x)
        x1 = self.layer1(x0)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return x0, x1, x2, x3, x4


class Conv3dGated(nn.Module):
    """A 3D conv (with bias) and a feature gate, as ``conv.0`` / ``conv.1``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=True),
                                  SEGating(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """Same T, H, W in and out."""
        return self.conv(x)


class UpConv3dGated(nn.Module):
    """x2 spatial upsampling and a feature gate, as ``upconv.<i>``.

    ``'transpose'``: a 3x4x4 transposed conv, stride 1x2x2, padding 1 (``upconv.0``), gate
    ``upconv.1``. ``'trilinear'``: trilinear x(1, 2, 2) upsampling (``align_corners=False``),
    a 1x1x1 conv (``upconv.1``), gate ``upconv.2``.
    """

    def __init__(self, in_channels: int, out_channels: int, up_mode: str = "transpose"):
        super().__init__()
        if up_mode == "transpose":
            layers = [nn.ConvTranspose3d(in_channels, out_channels, (3, 4, 4), stride=(1, 2, 2), padding=1)]
        else:
            layers = [nn.Upsample(mode="trilinear", scale_factor=(1, 2, 2), align_corners=False),
                      nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=1)]
        self.upconv = nn.Sequential(*layers, SEGating(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, T, H, W]`` -> ``[N, out, T, 2H, 2W]``."""
        return self.upconv(x)


class Decoder(nn.Module):
    """U-Net decoder over :class:`Encoder`'s outputs (deepest first in ``mid_channels_list``).

    Args:
        join_type: ``'concat'`` or ``'add'`` for the skips.
        up_mode: ``'transpose'`` or ``'trilinear'``.
        mid_channels_list: Decoder widths, deepest first (the encoder's reversed).
    """

    def __init__(self, join_type: str, up_mode: str, mid_channels_list: list[int]):
        super().__init__()
        growth = 2 if join_type == "concat" else 1
        self.join_type = join_type
        self.lrelu = nn.LeakyReLU(0.2, True)
        c0, c1, c2, c3 = mid_channels_list
        self.layer0 = Conv3dGated(c0, c1)
        self.layer1 = UpConv3dGated(c1 * growth, c2, up_mode)
        self.layer2 = UpConv3dGated(c2 * growth, c3, up_mode)
        self.layer3 = Conv3dGated(c3 * growth, c3)
        self.layer4 = UpConv3dGated(c3 * growth, c3, up_mode)

    def _join(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([x, skip], dim=1) if self.join_type == "concat" else x + skip

    def forward(self, xs: tuple[Tensor, ...]) -> Tensor:
        """Encoder outputs -> ``[N, c3 * T, H, W]``: the T full-resolution slices stacked frame-major."""
        x = self._join(self.lrelu(self.layer0(xs[4])), xs[3])
        x = self._join(self.lrelu(self.layer1(x)), xs[2])
        x = self._join(self.lrelu(self.layer2(x)), xs[1])
        x = self._join(self.lrelu(self.layer3(x)), xs[0])
        x = self.lrelu(self.layer4(x))
        return torch.cat(torch.unbind(x, 2), 1)


class FLAVRNet(nn.Module):
    """FLAVR generator (see the module docstring).

    Args:
        num_input_frames: Frames in (T); ``feature_fuse`` is built for exactly this many.
        num_output_frames: Frames synthesised.
        mid_channels_list: Decoder widths, deepest first; the encoder uses them reversed.
        encoder_layers_list: Basic blocks in each of the four encoder stages.
        bias: Biases in the encoder convs (the decoder's always have one).
        norm_cfg: Must be None (see the module docstring).
        join_type: ``'concat'`` or ``'add'``.
        up_mode: ``'transpose'`` or ``'trilinear'``.
    """

    def __init__(self, num_input_frames: int, num_output_frames: int,
                 mid_channels_list: list[int] = (512, 256, 128, 64),
                 encoder_layers_list: list[int] = (2, 2, 2, 2), bias: bool = False, norm_cfg: dict | None = None,
                 join_type: str = "concat", up_mode: str = "transpose"):
        super().__init__()
        if norm_cfg is not None:
            raise ValueError(f"FLAVRNet norm_cfg must be None (mmedit's FLAVR cannot run with a norm layer), "
                             f"got {norm_cfg!r}")
        if join_type not in ("concat", "add"):
            raise ValueError(f"FLAVRNet join_type must be 'concat' or 'add', got {join_type!r}")
        if up_mode not in ("transpose", "trilinear"):
            raise ValueError(f"FLAVRNet up_mode must be 'transpose' or 'trilinear', got {up_mode!r}")
        if len(mid_channels_list) != 4 or len(encoder_layers_list) != 4:
            raise ValueError(f"FLAVRNet needs 4 mid_channels_list and 4 encoder_layers_list entries, got "
                             f"{list(mid_channels_list)} and {list(encoder_layers_list)}")
        mid_channels_list = list(mid_channels_list)
        self.num_input_frames = num_input_frames
        self.num_output_frames = num_output_frames
        self.encoder = Encoder(list(encoder_layers_list), mid_channels_list[::-1], bias)
        self.decoder = Decoder(join_type, up_mode, mid_channels_list)
        width = mid_channels_list[3]
        self.feature_fuse = ConvAct(nn.Conv2d(width * num_input_frames, width, 1, stride=1, bias=False),
                                    nn.LeakyReLU(0.2, inplace=True))
        nn.init.kaiming_normal_(self.feature_fuse.conv.weight, a=0.2, mode="fan_out", nonlinearity="leaky_relu")
        self.conv_last = nn.Sequential(nn.ReflectionPad2d(3),
                                       nn.Conv2d(width, 3 * num_output_frames, kernel_size=7, stride=1, padding=0))

    def forward(self, images: Tensor) -> Tensor:
        """Synthesises the frame(s) in the middle of ``images``.

        Args:
            images: ``[N, num_input_frames, 3, H, W]`` in [0, 1], H and W multiples of 8.

        Returns:
            ``[N, 3, H, W]`` for one output frame, else ``[N, num_output_frames, 3, H, W]``; not clamped.
        """
        t = self.num_input_frames
        if images.dim() != 5 or images.shape[1] != t or images.shape[2] != 3:
            raise ValueError(f"FLAVRNet expects {t} RGB frames [N, {t}, 3, H, W], got shape {list(images.shape)}")
        h, w = images.shape[-2:]
        if h % DOWNSCALE or w % DOWNSCALE:
            raise ValueError(f"FLAVRNet needs H and W divisible by {DOWNSCALE}, got {h}x{w}")
        x = images.permute(0, 2, 1, 3, 4)  # [N, 3, T, H, W]
        mean = x.mean((2, 3, 4), keepdim=True)
        out = self.conv_last(self.feature_fuse(self.decoder(self.encoder(x - mean))))
        out = out.view(out.shape[0], self.num_output_frames, 3, h, w) + mean.view(-1, 1, 3, 1, 1)
        return out.squeeze(1)

"""Building blocks of the matting encoders and decoders (not an architecture itself).

MMEditing builds its matting networks from mmcv's ``ConvModule`` (conv, then optional
norm, then optional activation) and from compositions of it. The zoo checkpoints name
their weights after those modules' attributes (``<m>.conv.weight``, ``<m>.bn.weight``,
``<m>.depthwise_conv.conv.weight``), so the blocks here keep the attribute names, the
layer order and the bias rule (a conv followed by a norm has no bias) while being plain
``nn.Module`` code. Used by ``dim`` (the optional ASPP after VGG16) and ``indexnet``.
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


class ConvNormAct(nn.Module):
    """Conv, then BatchNorm, then activation, each optional but the conv (mmcv ``ConvModule``).

    The state-dict names are ``conv.*`` and ``bn.*``, as ``ConvModule`` with a BN norm
    config writes them. Like ``ConvModule``'s ``bias='auto'``, the conv gets a bias only
    when no norm follows (the BN shift would make it redundant).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Zero padding on every side.
        dilation: Conv dilation.
        groups: Conv groups (``in_channels`` for a depthwise conv).
        norm: Whether a ``BatchNorm2d`` follows the conv.
        act: ``"relu"``, ``"relu6"`` or ``None`` (no activation).
        bias: Force the conv bias on or off; ``None`` means "only without norm".
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        norm: bool = True,
        act: str | None = "relu",
        bias: bool | None = None,
    ):
        super().__init__()
        bias = not norm if bias is None else bias
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = _ACTIVATIONS[act](inplace=True) if act else None

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``act(bn(conv(x)))`` with the configured parts."""
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class DepthwiseSeparableConv(nn.Module):
    """Depthwise conv block then a 1x1 pointwise conv block (MobileNet's factorised conv).

    Both halves are :class:`ConvNormAct`, named ``depthwise_conv`` and ``pointwise_conv``
    as in MMEditing's ``DepthwiseSeparableConvModule``; each has its own norm and activation.

    Args:
        in_channels: Input channels (also the depthwise conv's width).
        out_channels: Output channels of the pointwise conv.
        kernel_size: Depthwise kernel size.
        stride: Depthwise stride.
        padding: Depthwise zero padding.
        dilation: Depthwise dilation.
        norm: Whether both convs are followed by BN.
        dw_act: Activation after the depthwise conv.
        pw_act: Activation after the pointwise conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        norm: bool = True,
        dw_act: str | None = "relu",
        pw_act: str | None = "relu",
    ):
        super().__init__()
        self.depthwise_conv = ConvNormAct(
            in_channels, in_channels, kernel_size, stride, padding, dilation, groups=in_channels, norm=norm, act=dw_act
        )
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1, norm=norm, act=pw_act)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``pointwise_conv(depthwise_conv(x))``."""
        return self.pointwise_conv(self.depthwise_conv(x))


class _ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average, 1x1 conv block, bilinear back to the input size.

    A ``Sequential`` (``0``: pooling, ``1``: conv block) so its weights are ``<i>.1.conv.*``
    as in MMEditing's ``ASPPPooling``.
    """

    def __init__(self, in_channels: int, out_channels: int, act: str):
        super().__init__(nn.AdaptiveAvgPool2d(1), ConvNormAct(in_channels, out_channels, 1, act=act))

    def forward(self, x: Tensor) -> Tensor:
        """Pools ``x`` to 1x1, projects it and spreads it back over ``x``'s size."""
        size = x.shape[-2:]
        out = super().forward(x)
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, Chen et al., "Rethinking Atrous Convolution for
    Semantic Image Segmentation" (DeepLabV3), 2017, in MMEditing's layout.

    Five parallel branches on the same input (``convs.0``: 1x1; ``convs.1-3``: 3x3 with
    the given dilations, padding = dilation so the size is kept; ``convs.4``: image
    pooling), concatenated and projected by a 1x1 block (``project.0``) followed by
    ``Dropout(0.5)`` (``project.1``). Every conv is followed by BN and the activation.
    The dilated branches see context at several scales without losing resolution.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of the projection.
        mid_channels: Output channels of each branch.
        dilations: Dilations of the three 3x3 branches.
        act: Activation after every BN (``"relu"`` or ``"relu6"``).
        separable_conv: Use depthwise-separable 3x3 branches (both halves with BN + act).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        mid_channels: int = 256,
        dilations: Sequence[int] = (12, 24, 36),
        act: str = "relu",
        separable_conv: bool = False,
    ):
        super().__init__()
        branches: list[nn.Module] = [ConvNormAct(in_channels, mid_channels, 1, act=act)]
        for d in dilations:
            if separable_conv:
                branches.append(
                    DepthwiseSeparableConv(in_channels, mid_channels, 3, padding=d, dilation=d, dw_act=act, pw_act=act)
                )
            else:
                branches.append(ConvNormAct(in_channels, mid_channels, 3, padding=d, dilation=d, act=act))
        branches.append(_ImagePooling(in_channels, mid_channels, act))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            ConvNormAct(mid_channels * len(branches), out_channels, 1, act=act), nn.Dropout(0.5)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Concatenates the branch outputs along channels and projects them."""
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


def xavier_normal_init_(module: nn.Module) -> None:
    """Xavier-normal (gain 1) conv weights, zero conv biases, BN scale 1 and shift 0.

    This is what MMEditing's matting encoders, ``PlainDecoder`` and ``PlainRefiner`` do in
    ``init_weights`` when no pretrained file is given (mmcv ``xavier_init``, ``constant_init``).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def fan_out_normal_init_(module: nn.Module) -> None:
    """Conv weights ``N(0, 2 / (out_channels * k^2))``, zero biases (He init on the fan-out).

    ``IndexNetDecoder.init_weights`` in MMEditing (and the IndexNet authors' code) uses it
    for every decoder conv; ``k`` is the first kernel dimension.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            std = math.sqrt(2.0 / (m.out_channels * m.kernel_size[0] ** 2))
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_pad_input_channels(weight: Tensor, in_channels: int) -> Tensor:
    """Widens a first-layer conv weight ``[O, C, k, k]`` to ``in_channels`` with zero filters.

    Matting encoders take RGB plus the trimap; ImageNet weights only have RGB. Zero
    filters for the extra channels make the pretrained network initially ignore the
    trimap, so training starts from the exact ImageNet features. This is how the IndexNet
    authors' code widens MobileNetV2 and how the public DIM ports widen torchvision's VGG16.

    Raises:
        ValueError: If ``in_channels`` is smaller than the weight's input channels.
    """
    extra = in_channels - weight.shape[1]
    if extra < 0:
        raise ValueError(f"cannot narrow a {weight.shape[1]}-channel first conv to {in_channels} channels")
    pad = weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])
    return torch.cat([weight, pad], dim=1)

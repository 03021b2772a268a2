"""Modulated deformable convolution (DCNv2) in plain torch, with mmcv 1.7.2's semantics.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019. BasicVSR++,
IconVSR, EDVR and TDAN align frames with it (mmcv's ``ModulatedDeformConv2d`` /
``DeformConv2d``, whose attribute names the zoo checkpoints use).

Why plain torch: mmcv's compiled ops cannot be built against the pinned torch, and
torchvision's CPU wheel for the local torch does not load its C ops. Where a working
``torchvision.ops.deform_conv2d`` exists (the CUDA image), :func:`modulated_deform_conv2d`
hands over to it; :func:`deform_conv_backend` says which one runs, for the run log.

The definition (mmcv's CUDA kernel, torchvision's op): output pixel ``(i, j)``, kernel tap
``k = ki * kw + kj`` of deformable group ``g`` samples its input channels at

    y = i * stride_h - pad_h + ki * dil_h + offset[b, g*2K + 2k,     i, j]
    x = j * stride_w - pad_w + kj * dil_w + offset[b, g*2K + 2k + 1, i, j]

(offset channels per group are ``dy0, dx0, dy1, dx1, ...``), bilinearly, where a corner
outside the image counts as zero (so a point with ``y <= -1``, ``y >= H``, ``x <= -1`` or
``x >= W`` gives 0), multiplies by ``mask[b, g*K + k, i, j]`` and convolves the result with
``weight`` as a plain (grouped) convolution would. Deformable groups split the input channels
into contiguous blocks, as conv groups do, independently of them.

How the sampling is done here: all taps at once with one ``grid_sample`` call (bilinear,
zero padding, ``align_corners=False``, which is exactly the rule above once pixel
coordinates are mapped to ``(2 * x + 1) / W - 1``) on the input viewed as
``[B * deform_groups, C / deform_groups, H, W]`` with a grid of ``K * H_out`` rows; its fused
backward gives the input and offset gradients. The sampled columns, times the mask, are a
``[B, C * K, H_out * W_out]`` im2col tensor, and one (batched over conv groups) matmul with
``weight`` finishes the convolution. No python loop over taps or pixels. The backward is
written out (an autograd Function, first order only like mmcv's): autograd's own
allocated about twice the large temporaries, and on CPU those page faults cost ~10%. On one CPU core,
forward + backward at BasicVSR++'s shape (64 channels, 64x64, 16 deform groups) costs about
4-5x a ``conv2d`` of the same shape (``restoray bench deform``): the fused ``grid_sample``
backward (its scatter into the input gradient) and the three GEMMs are most of it.
:func:`deform_conv2d` is mmcv's DCNv1 (TDAN): the same with a mask of ones and no bias;
:class:`DeformConv2d` / :class:`DeformConv2dPack` are mmcv's layers around it.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

__all__ = [
    "DeformConv2d",
    "DeformConv2dPack",
    "ModulatedDeformConv2d",
    "ModulatedDeformConv2dPack",
    "deform_conv2d",
    "deform_conv_backend",
    "modulated_deform_conv2d",
]

BACKENDS = ("torch", "torchvision")


def _output_hw(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _check(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, groups: int, deform_groups: int, out_hw):
    if input.dim() != 4:
        raise ValueError(f"input must be 4D [B, C, H, W], got {input.dim()}D")
    b, c = input.shape[:2]
    o, cpg, kh, kw = weight.shape
    k = kh * kw
    if c % groups or o % groups or cpg * groups != c:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c} input channels in {groups} groups")
    if c % deform_groups:
        raise ValueError(f"{c} input channels do not split into {deform_groups} deform_groups")
    if min(out_hw) < 1:
        raise ValueError(f"input {tuple(input.shape[2:])} is too small for the kernel (output {out_hw})")
    if tuple(offset.shape) != (b, 2 * deform_groups * k, *out_hw):
        raise ValueError(f"offset must be {(b, 2 * deform_groups * k, *out_hw)}, got {tuple(offset.shape)}")
    if tuple(mask.shape) != (b, deform_groups * k, *out_hw):
        raise ValueError(f"mask must be {(b, deform_groups * k, *out_hw)}, got {tuple(mask.shape)}")


def _sampling_grid(offset: Tensor, h: int, w: int, k_hw, stride, padding, dilation, dg: int) -> Tensor:
    """``grid_sample`` grid ``[B * dg, K * H_out, W_out, (x, y)]`` of every tap's sampling point."""
    b, _, ho, wo = offset.shape
    kh, kw = k_hw
    k = kh * kw
    opt = dict(device=offset.device, dtype=offset.dtype)
    ki = torch.arange(kh, **opt).repeat_interleave(kw)
    kj = torch.arange(kw, **opt).repeat(kh)
    base_y = (ki * dilation[0] - padding[0]).view(k, 1, 1) + (torch.arange(ho, **opt) * stride[0]).view(1, ho, 1)
    base_x = (kj * dilation[1] - padding[1]).view(k, 1, 1) + (torch.arange(wo, **opt) * stride[1]).view(1, 1, wo)
    off = offset.view(b * dg, k, 2, ho, wo)
    grid = torch.empty(b * dg, k, ho, wo, 2, **opt)
    # pixel -> grid_sample coordinate (align_corners=False): (2 * p + 1) / size - 1
    torch.add(off[:, :, 1], base_x, out=grid[..., 0]).mul_(2.0 / w).add_(1.0 / w - 1.0)
    torch.add(off[:, :, 0], base_y, out=grid[..., 1]).mul_(2.0 / h).add_(1.0 / h - 1.0)
    return grid.view(b * dg, k * ho, wo, 2)


class _ModulatedDeformConv2dFunction(torch.autograd.Function):
    """The plain-torch op with a hand-written backward (fewer large temporaries than autograd's).

    Runs in the inputs' dtype with autocast off, as mmcv's kernel does (the caller casts to the
    offset's dtype first).
    """

    @staticmethod
    def forward(ctx, input, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
        b, c, h, w = input.shape
        o, cpg, kh, kw = weight.shape
        k, (ho, wo) = kh * kw, offset.shape[2:]
        with torch.autocast(input.device.type, enabled=False):
            grid = _sampling_grid(offset, h, w, (kh, kw), stride, padding, dilation, dg)
            sampled = torch.grid_sampler_2d(input.reshape(b * dg, c // dg, h, w), grid, 0, 0, False)
            cols = sampled.view(b, dg, c // dg, k, ho * wo) * mask.view(b, dg, 1, k, ho * wo)
            out = input.new_empty(b, o, ho, wo)  # written through a view: the output must not be one
            out_g = out.view(b, groups, o // groups, ho * wo)
            torch.matmul(weight.reshape(groups, o // groups, cpg * k), cols.view(b, groups, cpg * k, -1), out=out_g)
            if bias is not None:
                out_g += bias.view(groups, o // groups, 1)
        ctx.save_for_backward(input, grid, sampled, mask, weight)
        ctx.geometry = (groups, dg, bias is not None)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, grid, sampled, mask, weight = ctx.saved_tensors
        groups, dg, has_bias = ctx.geometry
        need = ctx.needs_input_grad
        b, c, h, w = input.shape
        o, cpg, kh, kw = weight.shape
        k, (ho, wo) = kh * kw, grad_out.shape[2:]
        g = grad_out.reshape(b, groups, o // groups, ho * wo)
        wm = weight.reshape(groups, o // groups, cpg * k)
        s5, m5 = sampled.view(b, dg, c // dg, k, ho * wo), mask.view(b, dg, 1, k, ho * wo)
        cols = s5 * m5  # recomputed rather than kept from the forward: one large buffer less
        grad_w = grad_b = grad_mask = grad_in = grad_off = None
        if need[3]:
            grad_w = torch.matmul(g, cols.view(b, groups, cpg * k, -1).transpose(-1, -2)).sum(0).view_as(weight)
        if has_bias and need[4]:
            grad_b = grad_out.sum((0, 2, 3))
        grad_cols = torch.matmul(wm.transpose(-1, -2), g).view_as(s5)
        if need[2]:
            grad_mask = torch.mul(grad_cols, s5, out=cols).sum(2).view_as(mask)
        if need[0] or need[1]:
            grad_sampled = grad_cols.mul_(m5).view_as(sampled)
            gi, gg = torch.ops.aten.grid_sampler_2d_backward(
                grad_sampled, input.reshape(b * dg, c // dg, h, w), grid, 0, 0, False, [need[0], need[1]]
            )
            grad_in = gi.view_as(input) if need[0] else None
            if need[1]:  # grid (x, y) in grid_sample units -> offset (dy, dx) in pixels
                gg = gg.view(b * dg, k, ho, wo, 2)
                grad_off = torch.empty(b * dg, k, 2, ho, wo, dtype=gg.dtype, device=gg.device)
                torch.mul(gg[..., 1], 2.0 / h, out=grad_off[:, :, 0])
                torch.mul(gg[..., 0], 2.0 / w, out=grad_off[:, :, 1])
                grad_off = grad_off.view(b, -1, ho, wo)
        return grad_in, grad_off, grad_mask, grad_w, grad_b, None, None, None, None, None


@functools.cache
def deform_conv_backend() -> str:
    """Which implementation :func:`modulated_deform_conv2d` uses: ``"torchvision"`` or ``"torch"``.

    ``"torchvision"`` only when ``torchvision.ops.deform_conv2d`` imports and a tiny call
    runs (its C ops must load); checked once per process.
    """
    try:
        from torchvision.ops import deform_conv2d as tv_deform_conv2d

        x = torch.zeros(1, 1, 3, 3)
        tv_deform_conv2d(x, torch.zeros(1, 18, 1, 1), torch.zeros(1, 1, 3, 3), mask=torch.ones(1, 9, 1, 1))
    except Exception:  # noqa: BLE001  (any failure to import or to run means: not usable)
        return "torch"
    return "torchvision"


def modulated_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    deform_groups: int = 1,
    backend: str | None = None,
) -> Tensor:
    """mmcv's ``modulated_deform_conv2d`` (same arguments and order), differentiable in all tensors.

    Args:
        input: ``[B, C, H, W]``.
        offset: ``[B, deform_groups * 2 * kh * kw, H_out, W_out]``, per group ``dy0, dx0, dy1, dx1, ...``
            over the taps in row-major order, in pixels.
        mask: ``[B, deform_groups * kh * kw, H_out, W_out]``, used as given (callers apply the sigmoid).
        weight: ``[C_out, C / groups, kh, kw]``.
        bias: ``[C_out]`` or None (mmcv's modules pass None when built with ``bias=False``).
        stride, padding, dilation: int or pair, as ``conv2d``.
        groups: convolution groups.
        deform_groups: groups of input channels sharing one offset and mask field.
        backend: None for :func:`deform_conv_backend`'s choice, or force ``"torch"`` / ``"torchvision"``.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    backend = backend or deform_conv_backend()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if input.dim() == 4:
        out_hw = tuple(
            _output_hw(input.shape[2 + d], weight.shape[2 + d], stride[d], padding[d], dilation[d]) for d in range(2)
        )
    else:
        out_hw = (0, 0)
    _check(input, offset, mask, weight, groups, deform_groups, out_hw)
    # As mmcv: the offset's dtype decides (AMP makes it half while the weights stay float).
    input = input.type_as(offset)
    weight, mask = weight.type_as(input), mask.type_as(input)
    bias = None if bias is None else bias.type_as(input)
    if backend == "torchvision":
        from torchvision.ops import deform_conv2d as tv_deform_conv2d

        # Same offset layout and mask meaning as mmcv; groups come from the weight's shape.
        return tv_deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)
    return _ModulatedDeformConv2dFunction.apply(
        input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups
    )


def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, stride=1, padding=0, dilation=1, groups: int = 1,
                  deform_groups: int = 1) -> Tensor:
    """mmcv's DCNv1 ``deform_conv2d`` (TDAN): the modulated op with the mask all ones, and no bias."""
    b, _, ho, wo = offset.shape
    mask = offset.new_ones(b, offset.shape[1] // 2, ho, wo)
    return modulated_deform_conv2d(input, offset, mask, weight, None, stride, padding, dilation, groups, deform_groups)


class ModulatedDeformConv2d(nn.Module):
    """mmcv's ``ModulatedDeformConv2d``: a conv layer whose ``forward(x, offset, mask)`` takes the fields.

    Attributes, init (uniform in ``±1/sqrt(C_in * kh * kw)``, zero bias) and ``forward`` as mmcv
    1.7.2's, so subclasses written against mmcv (EDVR's ``ModulatedDCNPack``, BasicVSR++'s
    ``SecondOrderDeformableAlignment``) port unchanged and their checkpoints load strictly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must divide by groups "
                             f"{groups}")
        if in_channels % deform_groups:
            raise ValueError(f"in_channels {in_channels} must divide by deform_groups {deform_groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.transposed = False  # mmcv keeps these two for nn.Conv2d look-alike code
        self.output_padding = (0,)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.init_weights()

    def init_weights(self) -> None:
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return modulated_deform_conv2d(
            x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            self.deform_groups,
        )


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """mmcv's ``ModulatedDeformConv2dPack`` (``DCNv2``): offsets and mask predicted from the input itself.

    ``conv_offset`` (same geometry as the layer, ``deform_groups * 3 * kh * kw`` outputs, zero
    init, so it starts as a plain conv with mask 0.5) yields ``o1, o2, mask`` by ``chunk(3)``;
    the offset is ``cat(o1, o2)`` (so the ``dy, dx`` interleaving runs across the two chunks)
    and the mask is ``sigmoid(mask)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(
            self.in_channels,
            self.deform_groups * 3 * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if hasattr(self, "conv_offset"):
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        o1, o2, mask = torch.chunk(self.conv_offset(x), 3, dim=1)
        return modulated_deform_conv2d(
            x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask), self.weight, self.bias, self.stride, self.padding,
            self.dilation, self.groups, self.deform_groups,
        )


class DeformConv2d(nn.Module):
    """mmcv's DCNv1 layer ``DeformConv2d``: ``forward(x, offset)``, a weight and no bias.

    Attributes and init as mmcv 1.7.2's (``weight`` only, Kaiming-uniform with ReLU gain;
    ``bias=True`` is refused as mmcv refuses it), so TDAN's checkpoints load strictly. As mmcv,
    ``forward`` zero-pads an input smaller than the kernel (bottom/right) and crops the output back.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        if bias:
            raise ValueError("DeformConv2d has no bias (mmcv's DCNv1 refuses bias=True)")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must divide by groups "
                             f"{groups}")
        if in_channels % deform_groups:
            raise ValueError(f"in_channels {in_channels} must divide by deform_groups {deform_groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.transposed = False
        self.output_padding = (0,)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        pad_h = max(self.kernel_size[0] - x.size(2), 0) if x.dim() == 4 else 0
        pad_w = max(self.kernel_size[1] - x.size(3), 0) if x.dim() == 4 else 0
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h))
            offset = nn.functional.pad(offset, (0, pad_w, 0, pad_h))
        out = deform_conv2d(x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups,
                            self.deform_groups)
        if pad_h or pad_w:
            out = out[:, :, : out.size(2) - pad_h, : out.size(3) - pad_w].contiguous()
        return out


class DeformConv2dPack(DeformConv2d):
    """mmcv's ``DeformConv2dPack`` (``DCN``): DCNv1 whose offsets are predicted from its own input.

    ``conv_offset`` has the layer's geometry (dilation included) and ``2 * deform_groups * kh * kw``
    outputs, read directly as the ``dy, dx`` offsets; zero-initialised, so the layer starts as a
    plain conv without bias.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(
            self.in_channels,
            self.deform_groups * 2 * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.init_offset()

    def init_offset(self) -> None:
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return deform_conv2d(x, self.conv_offset(x), self.weight, self.stride, self.padding, self.dilation,
                             self.groups, self.deform_groups)

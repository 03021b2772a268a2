"""StyleGAN2 building blocks shared by ``glean`` (its latent bank) and ``stylegan2_disc``, in plain
torch: the reference uses mmcv's compiled ``upfirdn2d`` and ``fused_bias_leakyrelu`` on GPU.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020, in the layout of
mmgen / MMEditing 0.x (``mmedit.models.components.stylegan2.modules``), so the published mmgen
StyleGAN2 checkpoints and the GLEAN zoo files load strictly:

* equalized learning rate keeps the raw parameter as ``weight_orig`` (N(0, 1) at init) and scales
  it by ``gain * lr_mul / sqrt(fan_in)`` at every forward, as mmgen's forward pre-hook does;
* biases of convs followed by an activation live in the activation (``activate.bias``,
  ``<i>.bias`` of a ``ConvDownLayer``): "fused bias leaky ReLU" is ``leaky_relu(x + b, 0.2) * sqrt 2``;
* FIR filters (``[1, 3, 3, 1]`` outer product, normalised) are buffers named ``kernel``, part of
  the checkpoint;
* the channel table is fixed (512 up to 32 px, then ``256 * channel_multiplier`` halving);
  ``width_divisor`` (a restoray extension, 1 = the zoo) divides it for tiny tests.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

SQRT2 = math.sqrt(2.0)


def channel_table(channel_multiplier: int = 2, width_divisor: int = 1) -> dict[int, int]:
    """StyleGAN2's feature channels per resolution (config-f), divided by ``width_divisor``."""
    if width_divisor < 1 or 512 % width_divisor:
        raise ValueError(f"width_divisor must be a positive divisor of 512, got {width_divisor}")
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {res: max(1, c // width_divisor) for res, c in base.items()}


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Zero-insertion upsampling by ``up``, padding ``pad`` (before, after; negative crops) on both
    axes, correlation with the flipped ``kernel`` (i.e. true convolution), then keeping every
    ``down``-th sample: the definition of mmcv's ``upfirdn2d``."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    weight = torch.flip(kernel, (0, 1)).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def fused_bias_leakyrelu(x: Tensor, bias: Tensor, negative_slope: float = 0.2, scale: float = SQRT2) -> Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``, the bias broadcast over dim 1."""
    shape = [-1 if i == 1 else 1 for i in range(x.ndim)]
    return F.leaky_relu(x + bias.reshape(shape), negative_slope) * scale


class FusedBiasLeakyReLU(nn.Module):
    """The bias of the preceding (bias-free) conv or linear layer, then the scaled leaky ReLU."""

    def __init__(self, num_channels: int, negative_slope: float = 0.2, scale: float = SQRT2):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, x: Tensor) -> Tensor:
        return fused_bias_leakyrelu(x, self.bias, self.negative_slope, self.scale)


def make_kernel(taps: list[int] | tuple[int, ...]) -> Tensor:
    """Separable 1-D taps -> normalised 2-D FIR kernel (made on the CPU whatever the default device:
    on the meta device the arithmetic would pull in torch's decompositions, seconds of imports)."""
    k = torch.tensor(taps, dtype=torch.float32, device="cpu")
    k = k[None, :] * k[:, None] if k.ndim == 1 else k
    return k / k.sum()


def pixel_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """``x`` divided by its RMS over dim 1 (the mapping network's input normalisation)."""
    norm = torch.linalg.norm(x, ord=2, dim=1, keepdim=True) / math.sqrt(x.shape[1])
    return x / (norm + eps)


class PixelNorm(nn.Module):
    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return pixel_norm(x, self.eps)


class EqualizedLinear(nn.Module):
    """Bias-free linear layer with equalized learning rate (``weight_orig`` N(0, 1/lr_mul) at init)."""

    def __init__(self, in_features: int, out_features: int, gain: float = 1.0, lr_mul: float = 1.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_orig = nn.Parameter(nn.init.normal_(torch.empty(out_features, in_features), 0.0, 1.0 / lr_mul))
        self.scale = gain * lr_mul / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_orig * self.scale)


class EqualLinearActModule(nn.Module):
    """Equalized linear layer, its own ``bias`` (scaled by ``lr_mul`` too), optional fused activation.

    Args:
        in_features, out_features: Layer sizes.
        lr_mul: Learning-rate multiplier of weight and bias (0.01 in the mapping network).
        bias_init: Initial bias (1 for style modulations: styles start at one).
        fused_act: Whether a fused bias leaky ReLU follows.
    """

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 fused_act: bool = False):
        super().__init__()
        self.linear = EqualizedLinear(in_features, out_features, gain=1.0, lr_mul=lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.lr_mul, self.fused_act = lr_mul, fused_act

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x.reshape(x.shape[0], -1) if x.ndim >= 3 else x)
        if self.fused_act:
            return fused_bias_leakyrelu(x, self.bias * self.lr_mul)
        return x + self.bias * self.lr_mul


class EqualizedConv2d(nn.Module):
    """Bias-free conv with equalized learning rate (gain 1): mmcv ``ConvModule``'s ``conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight_orig * self.scale, stride=self.stride, padding=self.padding)


class EqualizedLRConvModule(nn.Module):
    """Holds the conv as ``conv``, as mmcv's ``ConvModule`` (no norm, no activation here)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Blur(nn.Module):
    """FIR low-pass with padding ``pad``; the kernel is scaled by ``upsample_factor ** 2`` after a
    zero-insertion upsampling (to keep the mean)."""

    def __init__(self, taps, pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor ** 2)
        self.pad = tuple(pad)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class UpsampleUpFIRDn(nn.Module):
    """x2 FIR upsampling of the RGB skip in ``ModulatedToRGB``."""

    def __init__(self, taps, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Style-modulated (and optionally demodulated) conv, one weight per sample via grouped convs.

    Upsampling is a stride-2 transposed conv followed by the FIR blur; downsampling blurs first.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_channels: int,
                 demodulate: bool = True, upsample: bool = False, downsample: bool = False,
                 blur_kernel=(1, 3, 3, 1), eps: float = 1e-8):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample, self.downsample, self.eps = demodulate, upsample, downsample, eps
        self.weight_orig = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.style_modulation = EqualLinearActModule(style_channels, in_channels, bias_init=1.0)
        factor = 2
        if upsample:
            p = len(blur_kernel) - factor - (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        if downsample:
            p = len(blur_kernel) - factor + (kernel_size - 1)
            self.blur = Blur(blur_kernel, ((p + 1) // 2, p // 2))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        n, c, h, w = x.shape
        k, o = self.kernel_size, self.out_channels
        s = self.style_modulation(style).view(n, 1, c, 1, 1)
        weight = self.weight_orig * self.scale * s
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps).view(n, o, 1, 1, 1)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, o, k, k)
            x = F.conv_transpose2d(x.reshape(1, n * c, h, w), weight, stride=2, groups=n)
            return self.blur(x.reshape(n, o, *x.shape[-2:]))
        weight = weight.reshape(n * o, c, k, k)
        if self.downsample:
            x = self.blur(x)
            x = F.conv2d(x.reshape(1, n * c, *x.shape[-2:]), weight, stride=2, groups=n)
        else:
            x = F.conv2d(x.reshape(1, n * c, h, w), weight, padding=self.padding, groups=n)
        return x.reshape(n, o, *x.shape[-2:])


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` (one map per sample, broadcast over channels)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, *x.shape[2:]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4x4 start of the synthesis network, repeated over the batch."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, x: Tensor) -> Tensor:
        return self.input.repeat(x.shape[0], 1, 1, 1)


class ModulatedStyleConv(nn.Module):
    """Modulated conv, noise, fused bias leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_channels: int,
                 upsample: bool = False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_channels,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise_injector = NoiseInjection()
        self.activate = FusedBiasLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise_injector(self.conv(x, style), noise))


class ModulatedToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus the upsampled RGB skip."""

    def __init__(self, in_channels: int, style_channels: int, upsample: bool = True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = UpsampleUpFIRDn(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_channels, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConvDownLayer(nn.Sequential):
    """[FIR blur +] equalized conv (stride 2 when downsampling) [+ fused bias leaky ReLU]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 blur_kernel=(1, 3, 3, 1), activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = len(blur_kernel) - 2 + (kernel_size - 1)
            layers.append(Blur(blur_kernel, ((p + 1) // 2, p // 2)))
            layers.append(EqualizedLRConvModule(in_channels, out_channels, kernel_size, stride=2))
        else:
            layers.append(EqualizedLRConvModule(in_channels, out_channels, kernel_size, padding=kernel_size // 2))
        if activate:
            layers.append(FusedBiasLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Discriminator residual block: two convs (the second downsamples) and a 1x1 downsampling skip,
    summed and divided by sqrt 2."""

    def __init__(self, in_channels: int, out_channels: int, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvDownLayer(in_channels, in_channels, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvDownLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvDownLayer(in_channels, out_channels, 1, downsample=True, blur_kernel=blur_kernel,
                                  activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class ModMBStddevLayer(nn.Module):
    """Minibatch standard deviation: one extra channel, the std over groups of ``group_size``
    samples averaged over channels and pixels (groups of min(N, group_size))."""

    def __init__(self, group_size: int = 4, channel_groups: int = 1, eps: float = 1e-8):
        super().__init__()
        self.group_size, self.channel_groups, self.eps = group_size, channel_groups, eps

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if n > self.group_size and n % self.group_size:
            raise ValueError(f"batch size {n} must be <= or a multiple of the minibatch-stddev group size "
                             f"{self.group_size}")
        g = min(n, self.group_size)
        y = x.reshape(g, -1, self.channel_groups, c // self.channel_groups, h, w)
        y = torch.sqrt(torch.var(y, dim=0, unbiased=False) + self.eps)
        y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class StyleGANv2Generator(nn.Module):
    """The StyleGAN2 synthesis network with its mapping network: GLEAN's latent bank.

    GLEAN drives ``constant_input``, ``conv1``, ``to_rgb1``, ``convs`` and ``to_rgbs`` itself with
    its encoder's latents and the fixed ``injected_noise_<i>`` buffers; ``forward`` here is the
    plain generator (single style, no truncation or mixing), for sampling a bank file.

    Args: as mmgen's ``StyleGANv2Generator`` (``pretrained``/``bgr2rgb`` are not taken: the bank
        is loaded by :func:`load_stylegan2_bank`), plus ``width_divisor``.
    """

    def __init__(self, out_size: int, style_channels: int, num_mlps: int = 8, channel_multiplier: int = 2,
                 blur_kernel=(1, 3, 3, 1), lr_mlp: float = 0.01, width_divisor: int = 1):
        super().__init__()
        log_size = int(math.log2(out_size))
        if out_size < 8 or 2 ** log_size != out_size or out_size > 1024:
            raise ValueError(f"out_size must be a power of two in [8, 1024], got {out_size}")
        self.out_size, self.style_channels, self.log_size = out_size, style_channels, log_size
        self.style_mapping = nn.Sequential(
            PixelNorm(), *[EqualLinearActModule(style_channels, style_channels, lr_mul=lr_mlp, fused_act=True)
                           for _ in range(num_mlps)])
        self.channels = channel_table(channel_multiplier, width_divisor)
        ch = self.channels
        self.constant_input = ConstantInput(ch[4])
        self.conv1 = ModulatedStyleConv(ch[4], ch[4], 3, style_channels, blur_kernel=blur_kernel)
        self.to_rgb1 = ModulatedToRGB(ch[4], style_channels, upsample=False)
        self.convs, self.upsamples, self.to_rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = ch[4]
        for i in range(3, log_size + 1):
            cout = ch[2 ** i]
            self.convs.append(ModulatedStyleConv(cin, cout, 3, style_channels, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(ModulatedStyleConv(cout, cout, 3, style_channels, blur_kernel=blur_kernel))
            self.to_rgbs.append(ModulatedToRGB(cout, style_channels, upsample=True, blur_kernel=blur_kernel))
            cin = cout
        self.num_latents = log_size * 2 - 2
        self.num_injected_noises = self.num_latents - 1
        for i in range(self.num_injected_noises):
            res = 2 ** ((i + 5) // 2)
            self.register_buffer(f"injected_noise_{i}", torch.randn(1, 1, res, res))

    def injected_noise(self) -> list[Tensor]:
        """The fixed per-layer noise maps (mmgen's ``randomize_noise=False``), coarse to fine."""
        return [getattr(self, f"injected_noise_{i}") for i in range(self.num_injected_noises)]

    def forward(self, styles: Tensor) -> Tensor:
        """Image for z-codes ``styles`` [N, style_channels], with the fixed noise."""
        latent = self.style_mapping(styles).unsqueeze(1).repeat(1, self.num_latents, 1)
        noise = self.injected_noise()
        out = self.conv1(self.constant_input(latent), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1
            out = self.convs[2 * j](out, latent[:, i], noise[i])
            out = self.convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip

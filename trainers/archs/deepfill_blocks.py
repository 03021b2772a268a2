"""Building blocks of the DeepFill v1 / v2 inpainting networks (not an architecture itself).

DeepFill v1 (Yu et al., "Generative Image Inpainting with Contextual Attention", CVPR 2018)
and v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019) share one
coarse-to-fine generator layout; v2 swaps every plain conv for a gated conv. The pieces here
are the ones both versions (and their discriminators) are assembled from:

* :class:`ConvAct` / :class:`GatedConv`: a conv with explicit (reflect) padding and an
  activation; the gated form computes features and a soft gate from one doubled conv;
* :class:`DeepFillEncoder`, :class:`DilationNeck`, :class:`DeepFillDecoder`: the
  6-conv encoder (down x4), 4 dilated convs, 7-conv decoder (up x4);
* :class:`ContextualAttention` and :class:`ContextualAttentionNeck`: fill hole features
  by copying the best-matching background patches;
* :class:`CoarseStage`, :class:`RefineStage`, :class:`DeepFillEncoderDecoder`: the two
  stages and the full generator;
* :class:`MultiLayerDiscriminator`: the stack of 5x5 stride-2 convs (optionally spectrally
  normalised, optionally with a final linear layer) both versions' critics are made of.

Attribute names (``enc1.conv``, ``dilation_convs``, ``contextual_attention.fuse_kernel``,
``fc.linear`` ...) follow MMEditing 0.x because they become state-dict keys, and the zoo
checkpoints must load strictly. Explicit padding layers hold no parameters, so they do not
appear in the keys; the fixed ``fuse_kernel`` of contextual attention does (it is a
persistent buffer in the zoo's checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ConvType = Literal["conv", "gated_conv"]

# Per-layer output widths of the three encoders, before ``channel_factor``.
ENCODER_CHANNELS = {
    "stage1": (32, 64, 64, 128, 128, 128),
    "stage2_conv": (32, 32, 64, 64, 128, 128),
    "stage2_attention": (32, 32, 64, 128, 128, 128),
}
_ENCODER_KERNELS = (5, 3, 3, 3, 3, 3)
_ENCODER_STRIDES = (1, 2, 1, 2, 1, 1)  # two stride-2 convs: features at 1/4 resolution
DECODER_CHANNELS = (128, 128, 64, 64, 32, 16, 3)
_DECODER_UPSAMPLE_AFTER = (1, 3)  # nearest x2 after dec2 and dec4 undoes the encoder's /4
_DILATIONS = (2, 4, 8, 16)


def scaled_channels(channels: tuple[int, ...], channel_factor: float) -> list[int]:
    """Widths times ``channel_factor``, truncated to int as the zoo does (0.75 * 16 -> 12)."""
    return [int(c * channel_factor) for c in channels]


class ConvAct(nn.Module):
    """Conv2d with explicit padding, then an optional activation.

    Padding modes other than ``zeros``/``circular`` (DeepFill uses ``reflect``) are applied
    with ``F.pad`` before an unpadded conv, as mmcv's ``ConvModule`` does with its padding
    layer; reflecting keeps the image statistics at the border instead of injecting the
    zeros that, in [-1, 1] images, mean mid-grey.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Pixels padded on every side.
        dilation: Conv dilation.
        padding_mode: ``zeros``, ``circular`` (handled by the conv) or ``reflect``/``replicate``.
        act: Activation applied after the conv, or None.
        spectral_norm: Wrap the conv in ``torch.nn.utils.spectral_norm`` (keys become
            ``weight_orig`` / ``weight_u`` / ``weight_v``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        padding_mode: str = "zeros",
        act: nn.Module | None = None,
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.explicit_pad = padding_mode not in ("zeros", "circular")
        self.padding = padding
        self.padding_mode = padding_mode
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0 if self.explicit_pad else padding,
            dilation=dilation,
            padding_mode="zeros" if self.explicit_pad else padding_mode,
        )
        self.conv = nn.utils.spectral_norm(conv) if spectral_norm else conv
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        """Pads (if explicit), convolves, activates."""
        if self.explicit_pad and self.padding > 0:
            x = F.pad(x, [self.padding] * 4, mode=self.padding_mode)
        x = self.conv(x)
        return x if self.act is None else self.act(x)


class GatedConv(nn.Module):
    """Gated convolution (DeepFill v2): ``feat_act(f) * sigmoid(g)`` with ``[f, g] = conv(x)``.

    The learned soft gate lets every layer decide per pixel and channel how much of a
    feature to pass on, which is what free-form holes need (a plain conv treats hole and
    valid pixels alike). One conv with doubled output width computes both halves, so the
    state-dict key is ``conv.conv.weight`` of shape ``[2 * out_channels, ...]``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (the inner conv has twice as many).
        kernel_size: Square kernel size.
        feat_act: Apply ELU to the feature half (off only for the decoder's last layer).
        **conv_kwargs: ``stride``, ``padding``, ``dilation``, ``padding_mode`` of :class:`ConvAct`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, feat_act: bool = True, **conv_kwargs):
        super().__init__()
        self.conv = ConvAct(in_channels, out_channels * 2, kernel_size, act=None, **conv_kwargs)
        self.feat_act = nn.ELU() if feat_act else None
        self.gate_act = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        """Returns the gated features, ``[B, out_channels, H', W']``."""
        feat, gate = torch.chunk(self.conv(x), 2, dim=1)
        if self.feat_act is not None:
            feat = self.feat_act(feat)
        return feat * self.gate_act(gate)


def conv_block(
    conv_type: ConvType, in_channels: int, out_channels: int, kernel_size: int, with_act: bool = True, **conv_kwargs
) -> nn.Module:
    """A DeepFill layer: ELU conv (v1, ``conv``) or gated conv (v2, ``gated_conv``).

    ``with_act=False`` drops the (feature) activation; the gate of a gated conv stays.
    """
    if conv_type == "conv":
        return ConvAct(in_channels, out_channels, kernel_size, act=nn.ELU() if with_act else None, **conv_kwargs)
    if conv_type == "gated_conv":
        return GatedConv(in_channels, out_channels, kernel_size, feat_act=with_act, **conv_kwargs)
    raise ValueError(f"conv_type must be 'conv' or 'gated_conv', got {conv_type!r}")


class DeepFillEncoder(nn.Module):
    """Six convs ``enc1..enc6`` (5x5 then 3x3; strides 1,2,1,2,1,1): image to 1/4-size features.

    Args:
        in_channels: Input channels (5: masked image, ones, mask).
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        encoder_type: Width profile, a key of ``ENCODER_CHANNELS``: the coarse stage's
            encoder, or the refine stage's conv / attention branch.
        channel_factor: Multiplier on the widths.
        padding_mode: Padding of every conv.
    """

    def __init__(
        self,
        in_channels: int = 5,
        conv_type: ConvType = "conv",
        encoder_type: str = "stage1",
        channel_factor: float = 1.0,
        padding_mode: str = "reflect",
    ):
        super().__init__()
        widths = scaled_channels(ENCODER_CHANNELS[encoder_type], channel_factor)
        self.out_channels = widths[-1]
        for i, (width, k, stride) in enumerate(zip(widths, _ENCODER_KERNELS, _ENCODER_STRIDES)):
            layer = conv_block(
                conv_type, in_channels, width, k, stride=stride, padding=(k - 1) // 2, padding_mode=padding_mode
            )
            self.add_module(f"enc{i + 1}", layer)
            in_channels = width

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, C', ceil(H/4), ceil(W/4)]``."""
        for i in range(len(_ENCODER_KERNELS)):
            x = getattr(self, f"enc{i + 1}")(x)
        return x


class DilationNeck(nn.Module):
    """Four 3x3 convs with dilation 2, 4, 8, 16 (``dilation_convs.0..3``), size-preserving.

    The growing dilation gives each 1/4-size feature a receptive field covering most of a
    256 px image, so the hole's centre sees the background (Iizuka et al., Global&Local).
    With reflect padding each feature side must exceed 16 (the largest pad).

    Args:
        in_channels: Channels in and out.
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        padding_mode: Padding of every conv.
    """

    def __init__(self, in_channels: int = 128, conv_type: ConvType = "conv", padding_mode: str = "reflect"):
        super().__init__()
        self.dilation_convs = nn.Sequential(
            *(
                conv_block(
                    conv_type, in_channels, in_channels, 3, padding=d, dilation=d, padding_mode=padding_mode
                )
                for d in _DILATIONS
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        """Same shape in and out."""
        return self.dilation_convs(x)


class DeepFillDecoder(nn.Module):
    """Seven 3x3 convs ``dec1..dec7`` with nearest x2 upsampling after dec2 and dec4.

    The last conv has no (feature) activation and 3 output channels whatever the width
    factor; the output activation bounds the image to [-1, 1]: ``clip`` (clamp, v1) or
    ``tanh`` (v2).

    Args:
        in_channels: Input feature channels.
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        out_act: ``clip`` or ``tanh``.
        channel_factor: Multiplier on the widths of dec1..dec6.
        padding_mode: Padding of every conv.
    """

    def __init__(
        self,
        in_channels: int,
        conv_type: ConvType = "conv",
        out_act: Literal["clip", "tanh"] = "clip",
        channel_factor: float = 1.0,
        padding_mode: str = "reflect",
    ):
        super().__init__()
        if out_act not in ("clip", "tanh"):
            raise ValueError(f"out_act must be 'clip' or 'tanh', got {out_act!r}")
        self.out_act = out_act
        widths = scaled_channels(DECODER_CHANNELS, channel_factor)
        widths[-1] = 3  # an RGB image whatever the width factor
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            layer = conv_block(
                conv_type, in_channels, width, 3, with_act=not last, padding=1, padding_mode=padding_mode
            )
            self.add_module(f"dec{i + 1}", layer)
            in_channels = width

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, h, w]`` -> ``[B, 3, 4h, 4w]`` in [-1, 1]."""
        for i in range(len(DECODER_CHANNELS)):
            x = getattr(self, f"dec{i + 1}")(x)
            if i in _DECODER_UPSAMPLE_AFTER:
                x = F.interpolate(x, scale_factor=2)  # nearest
        return torch.clamp(x, -1.0, 1.0) if self.out_act == "clip" else torch.tanh(x)


class ContextualAttention(nn.Module):
    """Contextual attention: rebuild hole features from background patches (DeepFill v1, sec. 4).

    Convolutions are poor at borrowing texture from far away; this layer matches every
    location's 3x3 neighbourhood against all background patches and copies a softmax-weighted
    blend of them. Steps (MMEditing 0.x's ``ContextualAttentionModule``, default arguments):

    1. *raw patches*: 4x4 patches of the full-resolution ``context`` at stride 2 (padding 1),
       the content to be copied;
    2. ``x`` and ``context`` are nearest-downsampled by ``scale`` (0.5) to save compute;
       3x3 patches of the small context (stride 1, padding 1, so one per location) are
       L2-normalised (norm floored at 1e-4) and used as conv filters over the small ``x``:
       the cosine-like score of every (context patch, query location) pair;
    3. *fuse*: the score map, as a 2-D array (query location x patch index, both flattened
       row-major), is convolved with a 3x3 identity kernel, then again with both indices
       flattened column-major: a query whose neighbours match the neighbours of the same
       patch scores higher, which favours copying coherent regions over isolated pixels;
    4. *mask*: context patches with any hole pixel (mask nearest-downsampled the same way,
       3x3 neighbourhood, zero padding) get ``-inf``, so they receive zero attention;
    5. softmax over patches of ``softmax_scale`` (10) times the score;
    6. *copy*: transposed conv of the attention with the raw 4x4 patches (stride 2) pastes
       the weighted patches back at full resolution; dividing by the overlap count (each
       output pixel is covered by up to 4 patches) makes it an average.

    Every background patch is masked only if the whole context is hole; then the softmax
    is 0/0 and the output NaN, as in the reference (the zoo's masks never do this).
    ``fuse_kernel`` (the identity) is a persistent buffer because the zoo's checkpoints hold it.

    Args:
        unfold_raw_kernel_size: Size of the copied raw patches.
        unfold_raw_stride: Their stride (= 1 / ``scale``, so patch and query grids align).
        unfold_raw_padding: Their padding.
        unfold_corr_kernel_size: Size of the matched patches at the reduced scale.
        unfold_corr_stride: Their stride.
        unfold_corr_dilation: Their dilation.
        unfold_corr_padding: Their padding.
        scale: Downsampling factor for matching.
        fuse_kernel_size: Size of the identity kernel for fusing (1 disables fusing).
        softmax_scale: Temperature of the attention softmax (higher: closer to argmax).
    """

    def __init__(
        self,
        unfold_raw_kernel_size: int = 4,
        unfold_raw_stride: int = 2,
        unfold_raw_padding: int = 1,
        unfold_corr_kernel_size: int = 3,
        unfold_corr_stride: int = 1,
        unfold_corr_dilation: int = 1,
        unfold_corr_padding: int = 1,
        scale: float = 0.5,
        fuse_kernel_size: int = 3,
        softmax_scale: float = 10.0,
    ):
        super().__init__()
        self.raw = dict(kernel_size=unfold_raw_kernel_size, stride=unfold_raw_stride, padding=unfold_raw_padding)
        self.corr = dict(
            kernel_size=unfold_corr_kernel_size,
            stride=unfold_corr_stride,
            padding=unfold_corr_padding,
            dilation=unfold_corr_dilation,
        )
        self.scale = scale
        self.softmax_scale = softmax_scale
        self.with_fuse = fuse_kernel_size > 1
        if self.with_fuse:
            if fuse_kernel_size % 2 != 1:
                raise ValueError(f"fuse_kernel_size must be odd, got {fuse_kernel_size}")
            eye = torch.eye(fuse_kernel_size).view(1, 1, fuse_kernel_size, fuse_kernel_size)
            self.register_buffer("fuse_kernel", eye)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Fills ``x`` from ``context`` (DeepFill passes the same features as both).

        Args:
            x: Query features ``[B, C, H, W]``.
            context: Features to copy from, ``[B, C, H, W]``.
            mask: ``[B, 1, H, W]``, 1 in the hole (its patches are never copied), or None.

        Returns:
            ``(output, attention)``: the copied features ``[B, C, H, W]`` and the attention
            ``[B, h_p, w_p, h, w]`` (patch grid, then query grid, at the reduced scale;
            mmedit's "offset"), which sums to 1 over the patch grid.
        """
        raw_patches = _patches(context, **self.raw)  # [B, L, C, 4, 4]
        x = F.interpolate(x, scale_factor=self.scale)
        context = F.interpolate(context, scale_factor=self.scale)
        patches = _patches(context, **self.corr, normalize=True)  # [B, L, C, 3, 3]
        h_p, w_p = _unfolded_size(context.shape[-2:], **self.corr)

        score = self._match(x, patches)  # [B, L, h, w]
        if self.with_fuse:
            score = self._fuse(score, h_p, w_p)
        if mask is not None:
            score = score + self._hole_patch_penalty(mask)
        attention = F.softmax(score * self.softmax_scale, dim=1)

        output = self._paste(attention, raw_patches) / self._overlap(attention)
        b, _, h, w = attention.shape
        return output, attention.view(b, h_p, w_p, h, w)

    def _match(self, x: Tensor, patches: Tensor) -> Tensor:
        """Correlates each sample's queries with its own patches: one grouped conv over the batch."""
        b, _, h, w = x.shape
        filters = patches.reshape(-1, *patches.shape[2:])
        c = self.corr
        score = F.conv2d(
            x.reshape(1, -1, h, w), filters, stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=b
        )
        return score.view(b, -1, *score.shape[-2:])

    def _fuse(self, score: Tensor, h_p: int, w_p: int) -> Tensor:
        """Identity-kernel smoothing along diagonals of (query, patch), row- then column-major.

        The query grid must equal the patch grid (true for the default stride-1, padding-1
        3x3 matching), since the two index pairs are transposed together.
        """
        b, _, h, w = score.shape
        # (query row-major, patch row-major) as one 2-D map
        m = score.permute(0, 2, 3, 1).reshape(b, 1, h * w, h_p * w_p)
        m = F.conv2d(m, self.fuse_kernel, padding=self.fuse_kernel.shape[-1] // 2)
        # the same with both indices column-major
        m = m.view(b, h, w, h_p, w_p).permute(0, 2, 1, 4, 3).reshape(b, 1, w * h, w_p * h_p)
        m = F.conv2d(m, self.fuse_kernel, padding=self.fuse_kernel.shape[-1] // 2)
        m = m.view(b, w, h, w_p, h_p).permute(0, 4, 3, 2, 1)  # -> (b, patch row, patch col, query row, query col)
        return m.reshape(b, h_p * w_p, h, w)

    def _hole_patch_penalty(self, mask: Tensor) -> Tensor:
        """``[B, L, 1, 1]``: ``-inf`` for context patches touching the hole, 0 elsewhere."""
        mask = F.interpolate(mask, scale_factor=self.scale)
        touched = F.unfold(mask, **self.corr).sum(dim=1) > 0  # [B, L]
        penalty = torch.zeros(touched.shape, dtype=mask.dtype, device=mask.device)
        penalty[touched] = -math.inf
        return penalty[:, :, None, None]

    def _paste(self, attention: Tensor, raw_patches: Tensor) -> Tensor:
        """Transposed conv: every query location pastes its weighted 4x4 raw patches."""
        b, _, h, w = attention.shape
        filters = raw_patches.reshape(-1, *raw_patches.shape[2:])
        out = F.conv_transpose2d(
            attention.reshape(1, -1, h, w), filters, stride=self.raw["stride"], padding=self.raw["padding"], groups=b
        )
        return out.view(b, -1, *out.shape[-2:])

    def _overlap(self, attention: Tensor) -> Tensor:
        """How many pasted patches cover each output pixel (1 where none, to avoid 0/0)."""
        h, w = attention.shape[-2:]
        k = self.raw["kernel_size"]
        ones = attention.new_ones(1, 1, h, w)
        overlap = F.conv_transpose2d(
            ones, attention.new_ones(1, 1, k, k), stride=self.raw["stride"], padding=self.raw["padding"]
        )
        return overlap.masked_fill(overlap == 0, 1.0)


def _unfolded_size(size, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> tuple[int, int]:
    """Grid of patch positions ``F.unfold`` produces for a ``size = (H, W)`` input."""
    return tuple((s + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1 for s in size)


def _patches(
    img: Tensor, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, normalize: bool = False
) -> Tensor:
    """All ``kernel_size`` patches of ``img``, ``[B, L, C, k, k]`` (L in row-major order).

    ``normalize`` divides each patch by its L2 norm over all channels and pixels, floored at
    1e-4 so that flat (all-zero) patches stay finite.
    """
    cols = F.unfold(img, kernel_size, stride=stride, padding=padding, dilation=dilation)  # [B, C*k*k, L]
    if normalize:
        norm = cols.pow(2).sum(dim=1, keepdim=True).sqrt()
        cols = cols / torch.clamp(norm, min=1e-4)
    b, _, n = cols.shape
    return cols.permute(0, 2, 1).reshape(b, n, img.shape[1], kernel_size, kernel_size)


class ContextualAttentionNeck(nn.Module):
    """Contextual attention on the features themselves, then two 3x3 convs (``conv1``, ``conv2``).

    Args:
        in_channels: Channels in and out.
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        padding_mode: Padding of the convs.
        softmax_scale: Temperature of the attention softmax.
    """

    def __init__(
        self, in_channels: int, conv_type: ConvType = "conv", padding_mode: str = "reflect", softmax_scale: float = 10.0
    ):
        super().__init__()
        self.contextual_attention = ContextualAttention(softmax_scale=softmax_scale)
        self.conv1 = conv_block(conv_type, in_channels, in_channels, 3, padding=1, padding_mode=padding_mode)
        self.conv2 = conv_block(conv_type, in_channels, in_channels, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the refined features and the attention (see :class:`ContextualAttention`)."""
        x, attention = self.contextual_attention(x, x, mask)
        return self.conv2(self.conv1(x)), attention


class CoarseStage(nn.Module):
    """Stage 1: encoder, dilated convs, decoder (the Global&Local generator layout).

    Args:
        in_channels: Input channels (5).
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        channel_factor: Width multiplier of encoder, neck and decoder.
        out_act: The decoder's output activation, ``clip`` or ``tanh``.
        padding_mode: Padding of every conv.
    """

    def __init__(
        self,
        in_channels: int = 5,
        conv_type: ConvType = "conv",
        channel_factor: float = 1.0,
        out_act: Literal["clip", "tanh"] = "clip",
        padding_mode: str = "reflect",
    ):
        super().__init__()
        self.encoder = DeepFillEncoder(in_channels, conv_type, "stage1", channel_factor, padding_mode)
        width = self.encoder.out_channels
        self.decoder = DeepFillDecoder(width, conv_type, out_act, channel_factor, padding_mode)
        self.dilation_neck = DilationNeck(width, conv_type, padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 5, H, W]`` -> coarse image ``[B, 3, H, W]``."""
        return self.decoder(self.dilation_neck(self.encoder(x)))


class RefineStage(nn.Module):
    """Stage 2: a dilated-conv branch and a contextual-attention branch, fused by one decoder.

    Args:
        in_channels: Input channels (5: coarse composite, ones, mask).
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        channel_factor: Width multiplier of both encoders and the necks.
        decoder_channel_factor: Width multiplier of the decoder (the v2 zoo config leaves
            it at 1 while the rest uses 0.75; its input is the two branches concatenated).
        out_act: The decoder's output activation, ``clip`` or ``tanh``.
        padding_mode: Padding of every conv.
        softmax_scale: Temperature of the attention softmax.
    """

    def __init__(
        self,
        in_channels: int = 5,
        conv_type: ConvType = "conv",
        channel_factor: float = 1.0,
        decoder_channel_factor: float = 1.0,
        out_act: Literal["clip", "tanh"] = "clip",
        padding_mode: str = "reflect",
        softmax_scale: float = 10.0,
    ):
        super().__init__()
        self.encoder_attention = DeepFillEncoder(
            in_channels, conv_type, "stage2_attention", channel_factor, padding_mode
        )
        self.encoder_conv = DeepFillEncoder(in_channels, conv_type, "stage2_conv", channel_factor, padding_mode)
        width = self.encoder_conv.out_channels
        self.contextual_attention_neck = ContextualAttentionNeck(width, conv_type, padding_mode, softmax_scale)
        self.dilation_neck = DilationNeck(width, conv_type, padding_mode)
        self.decoder = DeepFillDecoder(2 * width, conv_type, out_act, decoder_channel_factor, padding_mode)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the refined image ``[B, 3, H, W]`` and the attention of the attention branch."""
        conv_x = self.dilation_neck(self.encoder_conv(x))
        attention_x = self.encoder_attention(x)
        small_mask = F.interpolate(mask, size=attention_x.shape[-2:])  # nearest
        attention_x, attention = self.contextual_attention_neck(attention_x, small_mask)
        return self.decoder(torch.cat([conv_x, attention_x], dim=1)), attention


class DeepFillEncoderDecoder(nn.Module):
    """The two-stage DeepFill generator: coarse result, composite, refined result.

    ``x`` is ``[masked_img (3), ones (1), mask (1)]`` with images in [-1, 1] and mask 1 in
    the hole. Stage 1 predicts a coarse image; its hole is pasted into the masked image
    (``coarse * mask + masked_img * (1 - mask)``, not detached, so stage 2's losses train
    stage 1 too), and that composite with the same ones and mask channels is stage 2's input.

    Conv weights start N(0, 0.02) with zero bias (the zoo's ``init_weights``).

    Args:
        conv_type: ``conv`` (v1) or ``gated_conv`` (v2).
        in_channels: Input channels; the first 3 are the masked image, the last the mask.
        channel_factor: Width multiplier of everything but the refine decoder.
        stage2_decoder_channel_factor: Width multiplier of the refine decoder.
        out_act: Output activation of both decoders, ``clip`` or ``tanh``.
        padding_mode: Padding of every conv.
        softmax_scale: Temperature of the contextual-attention softmax.
        return_offset: Also return the contextual attention.
    """

    def __init__(
        self,
        conv_type: ConvType,
        in_channels: int = 5,
        channel_factor: float = 1.0,
        stage2_decoder_channel_factor: float = 1.0,
        out_act: Literal["clip", "tanh"] = "clip",
        padding_mode: str = "reflect",
        softmax_scale: float = 10.0,
        return_offset: bool = False,
    ):
        super().__init__()
        self.return_offset = return_offset
        self.stage1 = CoarseStage(in_channels, conv_type, channel_factor, out_act, padding_mode)
        self.stage2 = RefineStage(
            in_channels, conv_type, channel_factor, stage2_decoder_channel_factor, out_act, padding_mode, softmax_scale
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Returns ``(stage1_res, stage2_res)``, each ``[B, 3, H, W]`` in [-1, 1], and with
        ``return_offset`` the attention ``[B, H/8, W/8, H/8, W/8]`` as a third item.

        H and W must be multiples of 8 (two stride-2 convs, then matching at half that size)
        and H/4, W/4 larger than 16 with reflect padding (the widest dilation).
        """
        masked_img, mask = x[:, :3], x[:, -1:]
        stage1_res = self.stage1(x)
        stage1_img = stage1_res * mask + masked_img * (1.0 - mask)
        stage2_res, attention = self.stage2(torch.cat([stage1_img, x[:, 3:]], dim=1), mask)
        if self.return_offset:
            return stage1_res, stage2_res, attention
        return stage1_res, stage2_res


class MultiLayerDiscriminator(nn.Module):
    """``num_convs`` 5x5 stride-2 convs (``conv1..``), optionally a linear layer ``fc``.

    Widths are ``min(64 * 2**i, max_channels)``. Every conv but the last is followed by
    ``act``; the last gets ``out_act`` when there is no ``fc`` (the v2 PatchGAN: a feature
    map of per-region scores) and ``act`` otherwise, in which case the flattened map goes
    through ``fc`` and then ``out_act`` (v1: one score per image). No normalisation layers
    (DeepFill's configs use none).

    Args:
        in_channels: Input channels.
        max_channels: Width cap.
        num_convs: Number of stride-2 convs.
        fc_in_channels: Flattened size of the last conv's output (width x H/2**n x W/2**n),
            which fixes the input size; None for no linear layer.
        fc_out_channels: Outputs of the linear layer.
        kernel_size: Conv kernel size (padding ``kernel_size // 2``, zeros).
        act: Factory of the activation after the convs (e.g. ``nn.ELU``).
        out_act: Factory of the activation at the end, or None.
        with_spectral_norm: Spectral normalisation (one power iteration per training
            forward) of every conv and of ``fc``.
    """

    def __init__(
        self,
        in_channels: int,
        max_channels: int,
        num_convs: int = 5,
        fc_in_channels: int | None = None,
        fc_out_channels: int = 1024,
        kernel_size: int = 5,
        act: Callable[[], nn.Module] = nn.ELU,
        out_act: Callable[[], nn.Module] | None = None,
        with_spectral_norm: bool = False,
    ):
        super().__init__()
        self.num_convs = num_convs
        self.fc_in_channels = fc_in_channels
        width = in_channels
        for i in range(num_convs):
            out_width = min(64 * 2**i, max_channels)
            last_conv_is_output = i == num_convs - 1 and fc_in_channels is None
            layer = ConvAct(
                width,
                out_width,
                kernel_size,
                stride=2,
                padding=kernel_size // 2,
                act=_make(out_act) if last_conv_is_output else act(),
                spectral_norm=with_spectral_norm,
            )
            self.add_module(f"conv{i + 1}", layer)
            width = out_width
        if fc_in_channels is not None:
            self.fc = LinearAct(fc_in_channels, fc_out_channels, _make(out_act), with_spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, fc_out_channels]`` with ``fc``, else ``[B, C', H/2**n, W/2**n]``.

        Raises:
            ValueError: If the conv output does not flatten to ``fc_in_channels``.
        """
        for i in range(self.num_convs):
            x = getattr(self, f"conv{i + 1}")(x)
        if self.fc_in_channels is None:
            return x
        if x[0].numel() != self.fc_in_channels:
            raise ValueError(
                f"the linear layer takes {self.fc_in_channels} features per image, the convs gave "
                f"{list(x.shape[1:])} = {x[0].numel()}; the input size does not fit this discriminator"
            )
        return self.fc(x.reshape(x.shape[0], -1))


def _make(factory: Callable[[], nn.Module] | None) -> nn.Module | None:
    """``factory()``, or None without one."""
    return None if factory is None else factory()


class LinearAct(nn.Module):
    """Linear layer (``linear``, optionally spectrally normalised), then an optional activation."""

    def __init__(self, in_features: int, out_features: int, act: nn.Module | None, spectral_norm: bool = False):
        super().__init__()
        linear = nn.Linear(in_features, out_features)
        self.linear = nn.utils.spectral_norm(linear) if spectral_norm else linear
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_features]`` -> ``[B, out_features]``."""
        x = self.linear(x)
        return x if self.act is None else self.act(x)

"""IndexNet matting: Lu et al., "Indices Matter: Learning to Index for Deep Image Matting", ICCV 2019.

Zoo configs: the backbone (checkpoint prefix ``backbone.``) of
``indexnet_mobv2_1x16_78k_comp1k`` and ``indexnet_dimaug_mobv2_1x16_78k_comp1k``
(5,953,515 parameters, 39,530 BN buffer elements). MMEditing builds it as
``SimpleEncoderDecoder(IndexNetEncoder(in_channels=4, freeze_bn=True), IndexNetDecoder)``;
module and attribute names here are the same, so the zoo weights load strictly once
``backbone.`` is removed.

Network. ``encoder.layers`` is MobileNetV2 (a 3x3 conv block to 32 channels, then seven
stages of inverted residuals, widths 16-24-32-64-96-160-320) with every stride set to 1:
downsampling is done by learned index blocks instead. After layers 0, 2, 3, 4 and 6 (the
ones that downsample in MobileNetV2; 0, 2, 3, 4 with ``out_stride=16``, where the last
two stages are dilated instead) an index block (``encoder.index_layers``) predicts from
the features an encoder index map (softmax-normalised, weights the features before a
2x2 average pool x 4, i.e. a learned weighted 2x2 sum) and a decoder index map (sigmoid,
used by the decoder to place the upsampled features). ``encoder.dconv`` is a depthwise-
separable ASPP (320 -> 160, dilations 2/4/8, or 6/12/18 at stride 16; ReLU6; Dropout(0.5)
after the projection) or, with ``aspp=False``, a 1x1 conv block. The decoder
(``decoder.decoder_layers``) goes back up through the seven shortcuts: nearest-upsample
to the shortcut's size, multiply by the decoder index map where there is one,
concatenate the shortcut, 5x5 conv + BN + ReLU6. ``decoder.pred``: 5x5 conv + BN + ReLU6
to one channel, then a 5x5 bias-free conv. Inverted residuals pad their *input* before
the 1x1 expansion (not between expansion and depthwise conv), so their borders are not
zero after the expansion's BN; this is kept. H and W must be multiples of 32.

What MMEditing's ``IndexNet`` mattor does around this network (a task must do the same):

* Input: ``torch.cat([merged, trimap], 1)``: ``merged`` read as uint8 BGR, / 255
  (float32), to RGB, normalised with ImageNet mean (0.485, 0.456, 0.406) / std
  (0.229, 0.224, 0.225); ``trimap`` one channel, {0, 128, 255} / 255, not normalised.
* Output: the network output *is* ``pred_alpha``: no sigmoid, no clamp in training (the
  last op is a conv, values are unbounded); losses see it raw.
* Losses on the unknown region (``trimap == 128/255``): Charbonnier(pred_alpha, alpha)
  x 0.5 and Charbonnier composition loss x 1.5 (``pred_alpha * fg + (1 - pred_alpha) *
  bg`` against the un-normalised merged image, mask repeated over 3 channels), both
  ``sample_wise=True`` (mean per sample over its masked pixels, then over the batch),
  ``eps = 1e-12``. No refiner (``train_refiner`` is False).
* Optimiser: Adam lr 1e-2; parameters whose name contains ``encoder.layers`` (the
  MobileNetV2 part, its BN affine parameters included; not the index blocks or ASPP)
  get lr x 0.01. Step decay x 0.1 at 52k and 67.6k of 78k iterations, batch 16.
* Test (batch 1): ``indexnet_mobv2``: after the scaling above, the trimap is resized with
  nearest and the image with bicubic (cv2) *down* to ``(h - h % 32, w - w % 32)``; the
  prediction is resized back to the original size with bicubic (cv2 ``INTER_CUBIC``).
  ``indexnet_dimaug``: instead reflect-padded at the bottom/right to multiples of 32 and
  cropped back (as DIM). Then clip to [0, 1], 0 where the original trimap is 0, 1 where
  it is 255, ``round(alpha * 255)`` as uint8 for the metrics.
* ``freeze_bn=True`` (the zoo's setting) in MMEditing puts the BNs of ``encoder.layers``
  in eval mode once, at construction. It neither stops their gradients nor survives
  ``model.train()``, and mmcv's ``IterBasedRunner`` calls ``model.train()`` before every
  training iteration, so the zoo model was trained with those BNs in training mode
  (batch statistics, running averages updated, affine parameters learned at lr x 0.01).
  The same was reported for the IndexNet authors' code (poppinace/indexnet_matting
  issue #35). ``freeze_bn``
  here reproduces MMEditing exactly; ``keep_bn_frozen=True`` is restoray's addition for
  a real freeze (eval mode kept through ``.train()``, BN affine parameters get
  ``requires_grad=False``), which the zoo numbers were *not* obtained with.
* Initialisation: the zoo loads ``open-mmlab://mmedit/mobilenet_v2`` into the encoder
  (see :func:`from_torchvision_mobilenet_v2`); without a file, MMEditing's init (done
  here on construction) is Xavier-normal convs and BN (1, 0) in the encoder, and
  ``N(0, 2 / (out_channels * k^2))`` convs with zero bias in the decoder.

Not ported: ``width_mult`` (MMEditing's decoder widths are fixed, so only 1 builds a
working network there) and ``norm_cfg`` (BN only, as the zoo).
"""

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.matting_blocks import (
    ASPP,
    ConvNormAct,
    DepthwiseSeparableConv,
    fan_out_normal_init_,
    xavier_normal_init_,
    zero_pad_input_channels,
)

# MobileNetV2 stages: (expand ratio, input channels, output channels, blocks, stride, dilation).
_MOBILENET_V2_STAGES = (
    (1, 32, 16, 1, 1, 1),
    (6, 16, 24, 2, 2, 1),
    (6, 24, 32, 3, 2, 1),
    (6, 32, 64, 4, 2, 1),
    (6, 64, 96, 3, 1, 1),
    (6, 96, 160, 3, 2, 1),
    (6, 160, 320, 1, 1, 1),
)
_DECODER_WIDTHS = (96, 64, 32, 24, 16, 32, 32)
INDEX_MODES = ("holistic", "o2o", "m2o")


def _index_conv(in_channels: int, out_channels: int, groups: int, use_context: bool, use_nonlinear: bool,
                expansion: int) -> nn.Module:
    """The stride-2 conv(s) an index block predicts its index maps with.

    ``use_context`` widens the kernel from 2x2 to 4x4 (padding 1) so each index sees its
    neighbourhood; ``use_nonlinear`` makes it conv-BN-ReLU6 followed by a bias-free 1x1 conv.
    """
    kernel_size, padding = (4, 1) if use_context else (2, 0)
    if not use_nonlinear:
        return ConvNormAct(in_channels, out_channels, kernel_size, 2, padding, groups=groups, norm=False, act=None,
                           bias=False)
    hidden = in_channels * expansion
    return nn.Sequential(
        ConvNormAct(in_channels, hidden, kernel_size, 2, padding, groups=groups, act="relu6"),
        ConvNormAct(hidden, out_channels, 1, groups=groups, norm=False, act=None, bias=False),
    )


class HolisticIndexBlock(nn.Module):
    """One index map shared by all channels: 4 logits per 2x2 cell, pixel-shuffled.

    Returns ``(encoder index, decoder index)``: ``softmax(sigmoid(logits))`` over the 4
    positions and ``sigmoid(logits)``, each shuffled to ``[B, 1, H, W]``.
    """

    def __init__(self, in_channels: int, use_context: bool, use_nonlinear: bool):
        super().__init__()
        self.index_block = _index_conv(in_channels, 4, 1, use_context, use_nonlinear, expansion=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Index maps at the input's resolution (one channel, broadcast over features)."""
        y = torch.sigmoid(self.index_block(x))
        z = torch.softmax(y, dim=1)
        return F.pixel_shuffle(z, 2), F.pixel_shuffle(y, 2)


class DepthwiseIndexBlock(nn.Module):
    """One index map per channel: four stride-2 convs, one per position of the 2x2 cell.

    ``mode="o2o"`` makes each conv depthwise (a channel's index depends on that channel
    only); ``"m2o"`` (the zoo's) makes them full convs (it depends on all channels).
    Returns ``(encoder index, decoder index)`` as :class:`HolisticIndexBlock`, per channel.
    """

    def __init__(self, in_channels: int, use_context: bool, use_nonlinear: bool, mode: str):
        super().__init__()
        groups = in_channels if mode == "o2o" else 1
        self.index_blocks = nn.ModuleList(
            _index_conv(in_channels, in_channels, groups, use_context, use_nonlinear, expansion=1) for _ in range(4)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Index maps ``[B, C, H, W]``; the four positions are normalised jointly per channel."""
        n, c = x.shape[:2]
        logits = torch.stack([block(x) for block in self.index_blocks], dim=2)  # [B, C, 4, H/2, W/2]
        y = torch.sigmoid(logits)
        z = torch.softmax(y, dim=2)
        h, w = logits.shape[-2:]
        return F.pixel_shuffle(z.reshape(n, c * 4, h, w), 2), F.pixel_shuffle(y.reshape(n, c * 4, h, w), 2)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expansion conv-BN-ReLU6,] 3x3 depthwise conv-BN-ReLU6, 1x1 conv-BN.

    The 3x3 conv has no padding of its own: the block's input is zero-padded for it
    before the expansion conv, as in MMEditing (and the IndexNet authors' code).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        dilation: Depthwise dilation (the padding follows it).
        expand_ratio: Hidden width / ``in_channels``; 1 means no expansion conv.
        use_res_connect: Add the input to the output (blocks after a stage's first).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, expand_ratio: int,
                 use_res_connect: bool = False):
        super().__init__()
        self.use_res_connect = use_res_connect
        self.dilation = dilation
        if expand_ratio == 1:
            self.conv = DepthwiseSeparableConv(in_channels, out_channels, 3, dilation=dilation, dw_act="relu6",
                                               pw_act=None)
        else:
            hidden = round(in_channels * expand_ratio)
            self.conv = nn.Sequential(
                ConvNormAct(in_channels, hidden, 1, act="relu6"),
                DepthwiseSeparableConv(hidden, out_channels, 3, dilation=dilation, dw_act="relu6", pw_act=None),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Pads ``x`` for the dilated 3x3 conv, runs the block, adds ``x`` if residual."""
        span = 3 + 2 * (self.dilation - 1)
        before, after = (span - 1) // 2, span // 2
        out = self.conv(F.pad(x, (before, after, before, after)))
        return out + x if self.use_res_connect else out


def _make_stage(in_channels: int, out_channels: int, num_blocks: int, dilation: int, first_dilation: int,
                expand_ratio: int) -> nn.Sequential:
    """A stage of inverted residuals; all strides are 1 (index blocks downsample)."""
    blocks = [InvertedResidual(in_channels, out_channels, first_dilation, expand_ratio)]
    blocks += [InvertedResidual(out_channels, out_channels, dilation, expand_ratio, use_res_connect=True)
               for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class IndexNetEncoder(nn.Module):
    """MobileNetV2 with index blocks in place of strides, and an ASPP on top (MMEditing's ``IndexNetEncoder``).

    Args:
        in_channels: Input channels (RGB + trimap: 4).
        out_stride: 32, or 16 (the last two stages dilated by 2 instead of downsampling).
        index_mode: ``"holistic"``, ``"o2o"`` or ``"m2o"``.
        aspp: Depthwise-separable ASPP on top, otherwise a 1x1 conv block.
        freeze_bn: Put ``layers``' BNs in eval mode at construction (MMEditing's semantics).
        keep_bn_frozen: Keep them in eval mode through ``.train()`` and stop their gradients.
        use_nonlinear: Index blocks conv-BN-ReLU6 + 1x1 conv instead of one linear conv.
        use_context: Index blocks with 4x4 instead of 2x2 kernels.
    """

    out_channels = 160

    def __init__(self, in_channels: int, out_stride: int, index_mode: str, aspp: bool, freeze_bn: bool,
                 keep_bn_frozen: bool, use_nonlinear: bool, use_context: bool):
        super().__init__()
        stages = [list(s) for s in _MOBILENET_V2_STAGES]
        self.downsampled_layers = [0, 2, 3, 4, 6] if out_stride == 32 else [0, 2, 3, 4]
        if out_stride == 16:
            stages[5][5] = stages[6][5] = 2
        self.layers = nn.ModuleList([ConvNormAct(in_channels, 32, 3, padding=1, act="relu6")])
        for expand, c_in, c_out, n, stride, dilation in stages:
            first = max(dilation // 2, 1) if stride == 2 else dilation
            self.layers.append(_make_stage(c_in, c_out, n, dilation, first, expand))
        self.keep_bn_frozen = keep_bn_frozen
        if freeze_bn:
            self._freeze_layer_bns(stop_gradients=keep_bn_frozen)
        self.index_layers = nn.ModuleList(
            self._index_block(stages[i][1], index_mode, use_context, use_nonlinear) for i in self.downsampled_layers
        )
        if aspp:
            dilations = (2, 4, 8) if out_stride == 32 else (6, 12, 18)
            self.dconv = ASPP(320, 160, mid_channels=256, dilations=dilations, act="relu6", separable_conv=True)
        else:
            self.dconv = ConvNormAct(320, 160, 1, act="relu6")

    @staticmethod
    def _index_block(channels: int, index_mode: str, use_context: bool, use_nonlinear: bool) -> nn.Module:
        if index_mode == "holistic":
            return HolisticIndexBlock(channels, use_context, use_nonlinear)
        return DepthwiseIndexBlock(channels, use_context, use_nonlinear, index_mode)

    def _layer_bns(self) -> list[nn.BatchNorm2d]:
        """The BNs ``freeze_bn`` acts on: MobileNetV2's (``layers``), not the index blocks' or ASPP's."""
        return [m for m in self.layers.modules() if isinstance(m, nn.BatchNorm2d)]

    def _freeze_layer_bns(self, stop_gradients: bool) -> None:
        for bn in self._layer_bns():
            bn.eval()
            if stop_gradients:
                bn.weight.requires_grad_(False)
                bn.bias.requires_grad_(False)

    def train(self, mode: bool = True) -> "IndexNetEncoder":
        """``nn.Module.train``; with ``keep_bn_frozen`` the MobileNetV2 BNs stay in eval mode."""
        super().train(mode)
        if self.keep_bn_frozen:
            for bn in self._layer_bns():
                bn.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor | None]]:
        """Returns the ASPP output, the shortcuts of layers 0-6 and their decoder index maps (or None)."""
        shortcuts: list[Tensor] = []
        dec_indices: list[Tensor | None] = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.downsampled_layers:
                enc_idx, dec_idx = self.index_layers[self.downsampled_layers.index(i)](x)
                x = enc_idx * x
                shortcuts.append(x)
                dec_indices.append(dec_idx)
                x = 4 * F.avg_pool2d(x, 2, stride=2)
            elif i != len(self.layers) - 1:
                shortcuts.append(x)
                dec_indices.append(None)
        return self.dconv(x), shortcuts, dec_indices


class IndexedUpsample(nn.Module):
    """Decoder step: upsample (nearest) to the shortcut's size, weight by the index map, fuse.

    Args:
        in_channels: Channels of the upsampled features plus the shortcut's.
        out_channels: Output channels.
        kernel_size: Fusion conv kernel.
        separable_conv: Depthwise-separable fusion conv (BN + ReLU6 on both halves).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, separable_conv: bool):
        super().__init__()
        self.conv = _decoder_conv(in_channels, out_channels, kernel_size, separable_conv)

    def forward(self, x: Tensor, shortcut: Tensor, dec_idx: Tensor | None) -> Tensor:
        """Fuses ``x`` with ``shortcut``; without an index map ``x`` already has the shortcut's size."""
        if dec_idx is not None:
            x = dec_idx * F.interpolate(x, size=shortcut.shape[2:])
        return self.conv(torch.cat([x, shortcut], dim=1))


def _decoder_conv(in_channels: int, out_channels: int, kernel_size: int, separable_conv: bool) -> nn.Module:
    """Size-keeping conv-BN-ReLU6 block (or its depthwise-separable form)."""
    padding = (kernel_size - 1) // 2
    if separable_conv:
        return DepthwiseSeparableConv(in_channels, out_channels, kernel_size, padding=padding, dw_act="relu6",
                                      pw_act="relu6")
    return ConvNormAct(in_channels, out_channels, kernel_size, padding=padding, act="relu6")


class IndexNetDecoder(nn.Module):
    """Seven :class:`IndexedUpsample` steps over the encoder's shortcuts, deepest first, then ``pred``.

    Args:
        in_channels: Encoder output channels (160).
        kernel_size: Kernel of every decoder conv.
        separable_conv: Depthwise-separable decoder convs.
    """

    def __init__(self, in_channels: int, kernel_size: int, separable_conv: bool):
        super().__init__()
        ins = [in_channels * 2] + [2 * w for w in _DECODER_WIDTHS[:-1]]
        self.decoder_layers = nn.ModuleList(
            IndexedUpsample(i, o, kernel_size, separable_conv) for i, o in zip(ins, _DECODER_WIDTHS)
        )
        self.pred = nn.Sequential(
            _decoder_conv(_DECODER_WIDTHS[-1], 1, kernel_size, separable_conv),
            nn.Conv2d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
        )

    def forward(self, x: Tensor, shortcuts: list[Tensor], dec_indices: list[Tensor | None]) -> Tensor:
        """Raw alpha ``[B, 1, H, W]`` from the encoder's outputs."""
        for layer, shortcut, dec_idx in zip(self.decoder_layers, reversed(shortcuts), reversed(dec_indices)):
            x = layer(x, shortcut, dec_idx)
        return self.pred(x)


class IndexNetEncoderDecoder(nn.Module):
    """IndexNet's backbone: :class:`IndexNetEncoder` + :class:`IndexNetDecoder` (``SimpleEncoderDecoder``).

    Defaults build the zoo network (``freeze_bn=True`` as its config; MMEditing's own
    default is False). Decoder arguments are prefixed ``decoder_``.

    Args:
        in_channels: Encoder input channels: normalised RGB + trimap.
        out_stride: Encoder output stride, 32 or 16.
        index_mode: ``"m2o"`` (zoo), ``"o2o"`` or ``"holistic"``.
        aspp: ASPP on top of the encoder (zoo) or a 1x1 conv block.
        freeze_bn: MMEditing's ``freeze_bn``: encoder MobileNetV2 BNs in eval mode at
            construction only (see the module docstring: lost at the first ``.train()``).
        keep_bn_frozen: restoray's real freeze of those BNs (needs ``freeze_bn``).
        use_nonlinear: Non-linear index blocks (zoo).
        use_context: 4x4 index-block kernels (zoo).
        decoder_kernel_size: Kernel of the decoder convs (MMEditing's ``kernel_size``).
        decoder_separable_conv: Depthwise-separable decoder convs (MMEditing's ``separable_conv``).

    Raises:
        ValueError: On an unknown ``index_mode`` or ``out_stride``, or ``keep_bn_frozen``
            without ``freeze_bn``.
    """

    def __init__(self, in_channels: int = 4, out_stride: int = 32, index_mode: str = "m2o", aspp: bool = True,
                 freeze_bn: bool = True, keep_bn_frozen: bool = False, use_nonlinear: bool = True,
                 use_context: bool = True, decoder_kernel_size: int = 5, decoder_separable_conv: bool = False):
        super().__init__()
        if out_stride not in (16, 32):
            raise ValueError(f"out_stride must be 16 or 32, got {out_stride}")
        if index_mode not in INDEX_MODES:
            raise ValueError(f"index_mode must be one of {INDEX_MODES}, got {index_mode!r}")
        if keep_bn_frozen and not freeze_bn:
            raise ValueError("keep_bn_frozen=True needs freeze_bn=True")
        self.encoder = IndexNetEncoder(in_channels, out_stride, index_mode, aspp, freeze_bn, keep_bn_frozen,
                                       use_nonlinear, use_context)
        self.decoder = IndexNetDecoder(self.encoder.out_channels, decoder_kernel_size, decoder_separable_conv)
        xavier_normal_init_(self.encoder)
        fan_out_normal_init_(self.decoder)

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``[B, 4, H, W]`` (normalised RGB, trimap / 255) to the unbounded alpha ``[B, 1, H, W]``.

        H and W must be multiples of 32. The mattor uses the output as the alpha as is.
        """
        return self.decoder(*self.encoder(x))


# MobileNetV2 block order -> (encoder stage, block in stage), for torchvision's features.1 … features.17.
def _torchvision_block_positions() -> list[tuple[int, int]]:
    return [(stage, b) for stage, s in enumerate(_MOBILENET_V2_STAGES, start=1) for b in range(s[3])]


# Sub-module of a torchvision block -> the same sub-module in MMEditing's InvertedResidual.
_EXPANDED_BLOCK_PARTS = {
    "conv.0.0": "conv.0.conv", "conv.0.1": "conv.0.bn",
    "conv.1.0": "conv.1.depthwise_conv.conv", "conv.1.1": "conv.1.depthwise_conv.bn",
    "conv.2": "conv.1.pointwise_conv.conv", "conv.3": "conv.1.pointwise_conv.bn",
}
_UNEXPANDED_BLOCK_PARTS = {
    "conv.0.0": "conv.depthwise_conv.conv", "conv.0.1": "conv.depthwise_conv.bn",
    "conv.1": "conv.pointwise_conv.conv", "conv.2": "conv.pointwise_conv.bn",
}


def _rename_parts(state_dict: Mapping[str, Tensor], src: str, dst: str, parts: Mapping[str, str],
                  out: dict[str, Tensor]) -> None:
    """Copies ``<src>.<part>.<param>`` to ``<dst>.<parts[part]>.<param>`` for every part."""
    for part, target in parts.items():
        prefix = f"{src}.{part}."
        for key, value in state_dict.items():
            if key.startswith(prefix):
                out[f"{dst}.{target}.{key[len(prefix):]}"] = value.clone()


def from_torchvision_mobilenet_v2(state_dict: Mapping[str, Tensor], in_channels: int = 4) -> dict[str, Tensor]:
    """Maps torchvision's ImageNet ``mobilenet_v2`` weights onto ``indexnet``'s ``encoder.layers``.

    ``features.0`` (3x3 conv + BN) becomes ``encoder.layers.0``, its conv widened from RGB
    to ``in_channels`` with zero filters for the trimap; ``features.1`` … ``features.17``
    become the 17 inverted residuals ``encoder.layers.<stage>.<block>``. Strides differ
    (here all 1) but the weights are the same shapes. ``features.18`` (320 -> 1280) and
    the classifier have no counterpart and are dropped; the index blocks, the ASPP and
    the decoder keep their initialisation. Load with ``strict=False``.

    MMEditing's configs load ``open-mmlab://mmedit/mobilenet_v2``
    (``https://download.openmmlab.com/mmediting/third_party/mobilenet_v2.pth``) with
    ``strict=False``. That file could not be inspected here; it is taken to be the IndexNet
    authors' ImageNet MobileNetV2 in MMEditing's key names with the trimap filter zeroed,
    which is what their code does when it loads it. Two differences from this function:
    the authors' ImageNet MobileNetV2 is not torchvision's (another training run, so other
    numbers), and MMEditing skips its Xavier init when given a file, so the encoder parts
    the file lacks (index blocks, ASPP) keep mmcv ``ConvModule``'s construction init there
    (Kaiming-normal, fan_out, ReLU gain; BN (1, 0)) instead of this module's Xavier-normal.

    Args:
        state_dict: torchvision's ``mobilenet_v2`` state dict (``features.<i>.…``, ``classifier.1.*``).
        in_channels: Input channels of the ``indexnet`` model (4).

    Returns:
        ``{"encoder.layers.…": tensor}`` for the 52 convs and BNs of ``encoder.layers``
        (BN ``num_batches_tracked`` only where the input has it).
    """
    out: dict[str, Tensor] = {}
    _rename_parts(state_dict, "features.0", "encoder.layers.0", {"0": "conv", "1": "bn"}, out)
    for index, (stage, block) in enumerate(_torchvision_block_positions(), start=1):
        parts = _UNEXPANDED_BLOCK_PARTS if _MOBILENET_V2_STAGES[stage - 1][0] == 1 else _EXPANDED_BLOCK_PARTS
        _rename_parts(state_dict, f"features.{index}", f"encoder.layers.{stage}.{block}", parts, out)
    first = "encoder.layers.0.conv.weight"
    out[first] = zero_pad_input_channels(out[first], in_channels)
    return out

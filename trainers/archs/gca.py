"""GCA matting network of Li and Lu, "Natural Image Matting via Guided Contextual Attention",
AAAI 2020: a ResNet-34-D style encoder and a mirrored decoder with shortcut features, plus
guided contextual attention (GCA) that lets unknown-region patches borrow alpha features from
known-region patches whose image features look alike.

Zoo configs: ``gca_r34_4x10_200k_comp1k`` (``in_channels=6``, one-hot trimap: 25,164,529
parameters) and ``gca_dimaug_r34_4x10_200k_comp1k`` (``in_channels=4``, class-index trimap).
The same network without the attention is ``gca_baseline`` (``trainers/archs/gca_baseline.py``).

Structure (MMEditing 0.x ``SimpleEncoderDecoder(ResGCAEncoder, ResGCADecoder)``; attribute
names are mmedit's so ``backbone.*`` of the zoo checkpoint loads strictly):

* ``encoder``: stem ``conv1..3`` (3x3 convs to 32, 32, 64 channels; strides 2, 1, 2), stages
  ``layer1..4`` of ``BasicBlock`` s (64, 128, 256, 512 channels; the first block of a strided
  stage downsamples its identity by ``AvgPool2d(2)`` + 1x1 conv, ResNet-D's ``interpolation``),
  five ``shortcut`` branches (two 3x3 conv -> ReLU -> BN each) that tap the input, the stem and
  ``layer1..3``; ``guidance_head`` (three reflect-padded stride-2 conv -> ReLU -> BN on the RGB
  channels, 16/32/128 channels) gives the image features at 1/8; ``gca`` attends after ``layer2``.
* ``decoder``: ``layer1..4`` of ``BasicBlockDec`` (the first block of each stage upsamples:
  4x4 stride-2 transposed conv, identity by nearest x2 + 1x1 conv), each stage's output plus the
  matching shortcut feature, a second ``gca`` after ``layer2`` (same image features and mask),
  ``conv1`` (4x4 transposed conv to full size, plus the input shortcut) and ``conv2`` (3x3 to one
  channel, with bias). Encoder activations ReLU, decoder LeakyReLU(0.2); every conv except the
  GCA modules' and ``decoder.conv2`` is spectrally normalised (``torch.nn.utils.spectral_norm``:
  state keys ``weight_orig``/``weight_u``/``weight_v``, one power iteration per training forward).

What mmedit's ``GCA`` mattor does around this network (a task must reproduce all of it):

* Input ``x = cat(image, trimap)``, ``[B, in_channels, H, W]``, H and W multiples of 32.
  ``image``: RGB (mmedit loads BGR and its ``Normalize(to_rgb=True)`` swaps), scaled to [0, 1],
  minus ImageNet mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225). ``trimap``:
  the 0/128/255 map as classes 0 = background, 1 = unknown, 2 = foreground (``FormatTrimap``);
  ``in_channels=6`` (the zoo): one-hot over the classes in that channel order; ``in_channels=4``
  (the ``*_dimaug`` configs): the class index itself, 0., 1. or 2. -- not trimap / 255.
* The network finds the unknown mask and the guidance image in ``x`` itself: the RGB channels
  ``x[:, :3]`` feed ``guidance_head``; the mask is ``x[:, 4:5]`` (6 channels) or
  ``x[:, 3:] == 1`` (4 channels), nearest-downsampled to 1/8 (``F.interpolate(scale_factor=1/8)``,
  i.e. pixel ``(8i, 8j)``) and again by 2 inside the attention. The mattor passes nothing else.
* Output: raw alpha ``[B, 1, H, W]``, no activation; the mattor predicts
  ``alpha = (tanh(raw) + 1) / 2``.
* Training: the network in train mode (BN batch statistics, running averages with momentum
  0.1; spectral norm's power iteration), loss ``L1`` on ``alpha`` against the ground truth
  weighted by the unknown mask (the one-hot's channel 1, or ``trimap == 1``), reduced as
  ``sum(|alpha - gt| * w) / (sum(w) + 1e-12)`` over the whole batch, not per sample (loss
  weight 1). Adam lr 4e-4, betas (0.5, 0.999), batch 10 x 4 GPUs, 200k iterations, cosine
  to 0 over all of them with mmcv's linear warm-up over the first 5k (from 0.001x).
  Training inputs are 512x512 crops (``dimaug``: 320x320 resized crops).
* Test: batch 1, eval mode (running statistics; spectral norm uses the stored ``weight_u`` /
  ``weight_v``, no update). The 8-bit image and the 0/128/255 trimap are reflect-padded at the
  bottom and right to the next multiple of 32 (numpy ``reflect``, the edge pixel not repeated)
  before scaling, normalising and encoding the trimap; ``alpha`` is cropped back to
  ``[:H, :W]``, clipped to [0, 1], set to 0 where the original trimap is 0 and to 1 where it
  is 255, and scored (SAD, MSE, GRAD, CONN) as ``round(alpha * 255)`` in uint8. Each
  attention holds several ``(HW / 256)^2``-element tensors per image (1 GiB each at 2048x2048).

Initialisation as mmedit's with ``pretrained=None``: conv weights Kaiming-normal (fan_out;
LeakyReLU(0.2) gain before a LeakyReLU), biases 0, BN weight 1 and bias 0 except the
last BN of every residual block (weight 0, so each block starts as the identity); the GCA
modules' convs Xavier-uniform. The zoo started from an ImageNet encoder instead:
:func:`imagenet_init_` with torchvision's ResNet-34 (see there for how that differs).
"""

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm as _spectral_norm

STAGE_CHANNELS = (64, 128, 256, 512)
DOWNSAMPLE = 32  # the encoder halves the size five times
GUIDANCE_CHANNELS = 128


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` as these networks use it: ``conv``, ``bn`` and an activation, in ``order``.

    Keeping mmcv's attribute names (``conv``, ``bn``) keeps the zoo's state-dict keys.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Padding on every side (zeros, or reflection with ``reflect``).
        norm: Follow the conv by BatchNorm (the conv then has no bias).
        act: ``"relu"``, ``"lrelu"`` (slope 0.2) or ``None``.
        spectral_norm: Wrap the conv in ``torch.nn.utils.spectral_norm``.
        transposed: Use a transposed conv (the decoder's x2 upsampling).
        reflect: Pad by reflection instead of zeros (the guidance head).
        order: Order of ``"conv"``, ``"norm"`` and ``"act"`` (the shortcuts use conv, act, norm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, *, norm: bool = True, act: str | None = "relu", spectral_norm: bool = False,
                 transposed: bool = False, reflect: bool = False, order: Sequence[str] = ("conv", "norm", "act")):
        super().__init__()
        self.order = tuple(order)
        self.reflect_padding = padding if reflect else 0
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        conv = conv_cls(in_channels, out_channels, kernel_size, stride, 0 if reflect else padding, bias=not norm)
        _kaiming_fan_out_(conv, act)
        # spectral_norm picks dim 1 (output channels) for transposed convs, as mmcv's does.
        self.conv = _spectral_norm(conv) if spectral_norm else conv
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.activate = _activation(act)

    def forward(self, x: Tensor) -> Tensor:
        for step in self.order:
            if step == "conv":
                if self.reflect_padding:
                    x = F.pad(x, (self.reflect_padding,) * 4, mode="reflect")
                x = self.conv(x)
            elif step == "norm" and hasattr(self, "bn"):
                x = self.bn(x)
            elif step == "act" and self.activate is not None:
                x = self.activate(x)
        return x


def _activation(act: str | None) -> nn.Module | None:
    if act is None:
        return None
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"act: {act!r} is not one of 'relu', 'lrelu', None")


def _kaiming_fan_out_(conv: nn.Module, act: str | None) -> None:
    """mmcv's ``ConvModule`` init: Kaiming-normal over fan_out with the following activation's gain."""
    if act == "lrelu":
        nn.init.kaiming_normal_(conv.weight, a=0.2, mode="fan_out", nonlinearity="leaky_relu")
    else:
        nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class BasicBlock(nn.Module):
    """Two-conv residual block; ``interpolation`` (when set) resamples the identity to match.

    The encoder's blocks keep the channel count in ``conv1``'s output; the decoder's
    (:func:`_decoder_block`) keep it in ``conv1`` and change it in ``conv2``, where ``conv1``
    is the x2 transposed conv of an upsampling block.

    Args:
        conv1: First conv-BN-activation.
        conv2: Second conv-BN, no activation (the activation comes after the add).
        interpolation: Identity path of a resampling block, or ``None``.
        act: The activation after the add (``"relu"`` encoder, ``"lrelu"`` decoder).
    """

    def __init__(self, conv1: ConvModule, conv2: ConvModule, interpolation: nn.Module | None, act: str):
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.interpolation = interpolation
        self.activation = _activation(act)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        identity = x if self.interpolation is None else self.interpolation(x)
        return self.activation(out + identity)


def _encoder_block(in_channels: int, planes: int, stride: int, sn: bool) -> BasicBlock:
    """ResNet-D basic block: a strided block downsamples its identity by 2x2 average pooling + 1x1 conv."""
    interpolation = None
    if stride != 1:
        interpolation = nn.Sequential(nn.AvgPool2d(2, stride),
                                      ConvModule(in_channels, planes, 1, act=None, spectral_norm=sn))
    conv1 = ConvModule(in_channels, planes, 3, stride, 1, spectral_norm=sn)
    conv2 = ConvModule(planes, planes, 3, 1, 1, act=None, spectral_norm=sn)
    return BasicBlock(conv1, conv2, interpolation, "relu")


def _decoder_block(in_channels: int, planes: int, upsample: bool, kernel_size: int, sn: bool) -> BasicBlock:
    """Decoder block: ``conv1`` keeps the width (4x4 stride-2 transposed when upsampling), ``conv2`` changes it."""
    interpolation = None
    if upsample:
        interpolation = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                                      ConvModule(in_channels, planes, 1, act=None, spectral_norm=sn))
        conv1 = ConvModule(in_channels, in_channels, 4, 2, 1, act="lrelu", spectral_norm=sn, transposed=True)
    else:
        conv1 = ConvModule(in_channels, in_channels, kernel_size, 1, kernel_size // 2, act="lrelu",
                           spectral_norm=sn)
    conv2 = ConvModule(in_channels, planes, kernel_size, 1, kernel_size // 2, act=None, spectral_norm=sn)
    return BasicBlock(conv1, conv2, interpolation, "lrelu")


def _encoder_stage(in_channels: int, planes: int, blocks: int, stride: int, sn: bool) -> nn.Sequential:
    layers = [_encoder_block(in_channels, planes, stride, sn)]
    layers += [_encoder_block(planes, planes, 1, sn) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _decoder_stage(in_channels: int, planes: int, blocks: int, kernel_size: int, sn: bool) -> nn.Sequential:
    layers = [_decoder_block(in_channels, planes, True, kernel_size, sn)]
    layers += [_decoder_block(planes, planes, False, kernel_size, sn) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _shortcut(in_channels: int, out_channels: int, sn: bool) -> nn.Sequential:
    """Two 3x3 conv -> ReLU -> BN (note the order) carrying an encoder feature to the decoder."""
    order = ("conv", "act", "norm")
    return nn.Sequential(ConvModule(in_channels, out_channels, 3, 1, 1, spectral_norm=sn, order=order),
                         ConvModule(out_channels, out_channels, 3, 1, 1, spectral_norm=sn, order=order))


def _guidance_head(sn: bool) -> nn.Sequential:
    """RGB -> 1/8-size image features for the attention: three reflect-padded stride-2 conv -> ReLU -> BN."""
    widths = (3, 16, 32, GUIDANCE_CHANNELS)
    return nn.Sequential(*(ConvModule(i, o, 3, 2, 1, spectral_norm=sn, reflect=True, order=("conv", "act", "norm"))
                           for i, o in zip(widths[:-1], widths[1:])))


class GCAModule(nn.Module):
    """Guided contextual attention: alpha features of similar-looking patches flow into unknown ones.

    Image features (halved in channels, then in size) are cut into 3x3 patches; each
    position's attention over all patches is the cosine-like similarity of its image patch
    with them, scaled so that the softmax is sharper for whichever of the known or unknown
    area is smaller, with each unknown patch barred from attending to itself. The scores then
    paste 4x4 alpha-feature patches (stride 2) back at full feature size, a 1x1 conv + BN
    maps the result, and it is added to the input alpha features.

    Args:
        in_channels: Image-feature channels (halved by ``guidance_conv``).
        out_channels: Alpha-feature channels.
    """

    KERNEL = 3  # image patch size, stride 1
    RATE = 2  # image features are compared at 1/RATE size; alpha patches are 2*RATE wide, stride RATE
    PENALTY = -1e4  # self-similarity logit offset for unknown patches
    EPS = 1e-4  # floor of an image patch's L2 norm

    def __init__(self, in_channels: int = GUIDANCE_CHANNELS, out_channels: int = GUIDANCE_CHANNELS):
        super().__init__()
        self.guidance_conv = nn.Conv2d(in_channels, in_channels // 2, 1)
        self.out_conv = ConvModule(out_channels, out_channels, 1, act=None)
        nn.init.xavier_uniform_(self.guidance_conv.weight)
        nn.init.zeros_(self.guidance_conv.bias)
        nn.init.xavier_uniform_(self.out_conv.conv.weight)
        nn.init.constant_(self.out_conv.bn.weight, 1e-3)  # the encoder/decoder init resets it to 1

    def forward(self, img_feat: Tensor, alpha_feat: Tensor, unknown: Tensor) -> Tensor:
        """``alpha_feat`` plus its attention-propagated version; all three inputs share H and W."""
        if not (img_feat.shape[2:] == alpha_feat.shape[2:] == unknown.shape[2:]):
            raise ValueError(f"GCA inputs differ in size: image {tuple(img_feat.shape[2:])}, "
                             f"alpha {tuple(alpha_feat.shape[2:])}, unknown {tuple(unknown.shape[2:])}")
        img = F.interpolate(self.guidance_conv(img_feat), scale_factor=1 / self.RATE, mode="nearest")
        unknown = F.interpolate(unknown, scale_factor=1 / self.RATE, mode="nearest")
        scales = _softmax_scales(unknown)
        img_ps = _patches(img, self.KERNEL, 1)
        alpha_ps = _patches(alpha_feat, 2 * self.RATE, self.RATE)
        unknown_ps = _patches(unknown, self.KERNEL, 1).squeeze(2).mean(dim=(2, 3), keepdim=True)
        self_mask = _self_mask(img)
        out = torch.cat([self._attend(*per_sample, self_mask)
                         for per_sample in zip(img, img_ps, alpha_ps, unknown_ps, scales)])
        return self.out_conv(out) + alpha_feat

    def _attend(self, img: Tensor, img_ps: Tensor, alpha_ps: Tensor, unknown_ps: Tensor, scale: Tensor,
                self_mask: Tensor) -> Tensor:
        """One sample: similarity -> guided softmax -> alpha patches pasted back, ``[1, C, H, W]``."""
        norms = img_ps.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        kernels = img_ps / torch.clamp_min(norms, self.EPS)
        similarity = F.conv2d(_pad(img[None], self.KERNEL, 1), kernels)
        unknown_scale, known_scale = scale
        weight = unknown_scale * unknown_ps.gt(0).float() + known_scale * unknown_ps.le(0).float()
        logits = similarity * weight[None] + self_mask * unknown_ps[None]
        score = F.softmax(logits, dim=1)
        # Overlapping 4x4 patches at stride 2 cover each position four times.
        return F.conv_transpose2d(score, alpha_ps, stride=self.RATE, padding=1) / 4.0


def _pad(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """Reflection padding that leaves ``size / stride`` patch positions."""
    before, after = (kernel_size - stride + 1) // 2, (kernel_size - stride) // 2
    return F.pad(x, (before, after, before, after), mode="reflect")


def _patches(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """``[N, C, H, W]`` -> ``[N, (H/stride)*(W/stride), C, k, k]``, row-major patch order."""
    n, c = x.shape[:2]
    cols = F.unfold(_pad(x, kernel_size, stride), kernel_size, stride=stride)
    return cols.permute(0, 2, 1).reshape(n, -1, c, kernel_size, kernel_size)


def _softmax_scales(unknown: Tensor) -> Tensor:
    """Per sample ``(unknown scale, known scale)``: sqrt of the area ratio each way, clamped to [0.1, 10]."""
    unknown_mean = unknown.mean(dim=(2, 3))
    known_mean = 1 - unknown_mean
    unknown_scale = torch.clamp(torch.sqrt(unknown_mean / known_mean), 0.1, 10)
    known_scale = torch.clamp(torch.sqrt(known_mean / unknown_mean), 0.1, 10)
    return torch.cat([unknown_scale, known_scale], dim=1)


def _self_mask(img: Tensor) -> Tensor:
    """``[1, h*w, h, w]``: PENALTY where patch index == position, else 0."""
    h, w = img.shape[2:]
    eye = torch.eye(h * w, dtype=img.dtype, device=img.device)
    return eye.view(1, h * w, h, w) * GCAModule.PENALTY


class ShortcutEncoder(nn.Module):
    """ResNet-D encoder returning the bottleneck and five shortcut features (mmedit's ``ResShortcutEnc``;
    with ``guided`` also its guidance head and attention, ``ResGCAEncoder``).

    Args:
        layers: Blocks per stage ``layer1..4``.
        in_channels: 3 image channels plus the trimap's (3 one-hot or 1 class index).
        with_spectral_norm: Spectrally normalise every conv but the attention's.
        late_downsample: Stem strides (1, 2, 1) and a strided ``layer1`` instead of (2, 1, 2), unstrided,
            with a 64-channel (not 32) ``conv2``.
        guided: Add ``guidance_head`` and the ``gca`` module after ``layer2``.
    """

    def __init__(self, layers: Sequence[int], in_channels: int, with_spectral_norm: bool, late_downsample: bool,
                 guided: bool):
        super().__init__()
        sn, self.guided, self.in_channels = with_spectral_norm, guided, in_channels
        mid = 64 if late_downsample else 32
        strides = (1, 2, 1, 2) if late_downsample else (2, 1, 2, 1)
        self.conv1 = ConvModule(in_channels, 32, 3, strides[0], 1, spectral_norm=sn)
        self.conv2 = ConvModule(32, mid, 3, strides[1], 1, spectral_norm=sn)
        self.conv3 = ConvModule(mid, 64, 3, strides[2], 1, spectral_norm=sn)
        widths = (64,) + STAGE_CHANNELS
        for i, blocks in enumerate(layers):
            stride = strides[3] if i == 0 else 2
            self.add_module(f"layer{i + 1}", _encoder_stage(widths[i], widths[i + 1], blocks, stride, sn))
        self.shortcut = nn.ModuleList(_shortcut(i, o, sn) for i, o in
                                      zip((in_channels, mid, 64, 128, 256), (32, mid, 64, 128, 256)))
        if guided:
            self.guidance_head = _guidance_head(sn)
            self.gca = GCAModule()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Features by mmedit's names: ``out`` (1/32), ``feat1..5`` (1, 1/2, 1/4, 1/8, 1/16) and,
        when guided, ``img_feat`` and ``unknown`` (1/8) for the decoder's attention."""
        x1 = self.conv2(self.conv1(x))
        x2 = self.layer1(self.conv3(x1))
        x3 = self.layer2(x2)
        guide = self._guidance(x) if self.guided else {}
        if guide:
            x3 = self.gca(guide["img_feat"], x3, guide["unknown"])
        x4 = self.layer3(x3)
        feats = {"out": self.layer4(x4)}
        for i, tap in enumerate((x, x1, x2, x3, x4)):
            feats[f"feat{i + 1}"] = self.shortcut[i](tap)
        return feats | guide

    def _guidance(self, x: Tensor) -> dict[str, Tensor]:
        """Image features of the RGB channels and the unknown mask, both at 1/8."""
        if self.in_channels == 6:
            unknown = x[:, 4:5]
        else:
            unknown = x[:, 3:].eq(1).float()
        unknown = F.interpolate(unknown, scale_factor=1 / 8, mode="nearest")
        return {"img_feat": self.guidance_head(x[:, :3]), "unknown": unknown}


class ShortcutDecoder(nn.Module):
    """Upsampling decoder adding a shortcut feature after every stage (mmedit's ``ResShortcutDec``;
    with ``guided`` the attention after ``layer2``, ``ResGCADecoder``).

    Args:
        layers: Blocks per stage ``layer1..4``.
        kernel_size: Kernel of the non-upsampling convs and of ``conv2``.
        with_spectral_norm: Spectrally normalise every conv but ``conv2`` and the attention's.
        late_downsample: Must match the encoder's (``layer4`` then ends at 64 channels).
        guided: Add the ``gca`` module after ``layer2``.
    """

    def __init__(self, layers: Sequence[int], kernel_size: int, with_spectral_norm: bool, late_downsample: bool,
                 guided: bool):
        super().__init__()
        sn, self.guided = with_spectral_norm, guided
        mid = 64 if late_downsample else 32
        widths = (STAGE_CHANNELS[-1], 256, 128, 64, mid)
        for i, blocks in enumerate(layers):
            self.add_module(f"layer{i + 1}", _decoder_stage(widths[i], widths[i + 1], blocks, kernel_size, sn))
        self.conv1 = ConvModule(mid, 32, 4, 2, 1, act="lrelu", spectral_norm=sn, transposed=True)
        self.conv2 = ConvModule(32, 1, kernel_size, 1, kernel_size // 2, norm=False, act=None)
        if guided:
            self.gca = GCAModule()

    def forward(self, feats: Mapping[str, Tensor]) -> Tensor:
        """Raw alpha ``[B, 1, H, W]`` from the encoder's features."""
        x = self.layer1(feats["out"]) + feats["feat5"]
        x = self.layer2(x) + feats["feat4"]
        if self.guided:
            x = self.gca(feats["img_feat"], x, feats["unknown"])
        x = self.layer3(x) + feats["feat3"]
        x = self.layer4(x) + feats["feat2"]
        x = self.conv1(x) + feats["feat1"]
        return self.conv2(x)


class ShortcutEncoderDecoder(nn.Module):
    """Encoder + decoder with mmedit's ``pretrained=None`` init; :class:`GCANet` and
    ``GCABaselineNet`` fix ``guided`` and carry the zoo's defaults.

    Args:
        layers: Encoder blocks per stage.
        in_channels: 6 (one-hot trimap) or 4 (class-index trimap); the GCA encoder reads the
            unknown mask according to it.
        with_spectral_norm: Encoder spectral norm.
        late_downsample: Late stem downsampling, in encoder and decoder alike (their shortcut
            widths must agree, so mmedit's two separate flags are one here).
        decoder_layers: Decoder blocks per stage.
        decoder_kernel_size: Decoder conv kernel (``kernel_size`` of mmedit's decoder).
        decoder_with_spectral_norm: Decoder spectral norm.
        guided: Guided contextual attention in encoder and decoder.
    """

    def __init__(self, layers: Sequence[int], in_channels: int, with_spectral_norm: bool, late_downsample: bool,
                 decoder_layers: Sequence[int], decoder_kernel_size: int, decoder_with_spectral_norm: bool,
                 guided: bool):
        super().__init__()
        for name, value in (("layers", layers), ("decoder_layers", decoder_layers)):
            if len(value) != 4 or min(value) < 1:
                raise ValueError(f"{name}: four stage depths of at least 1 are needed, got {list(value)}")
        if in_channels < 4:
            raise ValueError(f"in_channels: image (3) plus trimap (1 or 3) channels, got {in_channels}")
        self.in_channels = in_channels
        self.encoder = ShortcutEncoder(layers, in_channels, with_spectral_norm, late_downsample, guided)
        self.decoder = ShortcutDecoder(decoder_layers, decoder_kernel_size, decoder_with_spectral_norm,
                                       late_downsample, guided)
        _init_norms_(self.encoder)
        _init_norms_(self.decoder)

    def forward(self, x: Tensor) -> Tensor:
        """Raw alpha ``[B, 1, H, W]`` (no activation) from ``[B, in_channels, H, W]``, H and W multiples of 32."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % DOWNSAMPLE or x.shape[3] % DOWNSAMPLE:
            raise ValueError(f"expected [B, {self.in_channels}, H, W] with H and W multiples of {DOWNSAMPLE}, "
                             f"got {list(x.shape)}")
        return self.decoder(self.encoder(x))


def _init_norms_(module: nn.Module) -> None:
    """mmedit's encoder/decoder ``init_weights()``: every BN to (1, 0), then each block's last BN weight to 0.

    The reset includes the attention's ``out_conv`` BN (its own init was 1e-3), as in mmedit.
    """
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.conv2.bn.weight)


class GCANet(ShortcutEncoderDecoder):
    """The GCA matting network; defaults build ``gca_r34_4x10_200k_comp1k``'s backbone.

    Args:
        layers: Encoder blocks per stage (ResNet-34 trimmed to 3, 4, 4, 2).
        in_channels: 6 (one-hot trimap, zoo) or 4 (class-index trimap, ``gca_dimaug``).
        with_spectral_norm: Encoder spectral norm.
        late_downsample: Late stem downsampling (encoder and decoder).
        decoder_layers: Decoder blocks per stage.
        decoder_kernel_size: Decoder conv kernel.
        decoder_with_spectral_norm: Decoder spectral norm.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 4, 2), in_channels: int = 6, with_spectral_norm: bool = True,
                 late_downsample: bool = False, decoder_layers: Sequence[int] = (2, 3, 3, 2),
                 decoder_kernel_size: int = 3, decoder_with_spectral_norm: bool = True):
        if in_channels not in (4, 6):
            raise ValueError(f"in_channels: 4 (class-index trimap) or 6 (one-hot trimap), got {in_channels}")
        super().__init__(layers, in_channels, with_spectral_norm, late_downsample, decoder_layers,
                         decoder_kernel_size, decoder_with_spectral_norm, guided=True)


# ---------------------------------------------------------------------------------- ImageNet init
_TORCHVISION_BLOCK = {"conv1": "conv1.conv", "bn1": "conv1.bn", "conv2": "conv2.conv", "bn2": "conv2.bn",
                      "downsample.0": "interpolation.1.conv", "downsample.1": "interpolation.1.bn"}
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def from_torchvision_resnet34(state_dict: Mapping[str, Tensor], layers: Sequence[int] = (3, 4, 4, 2),
                              with_spectral_norm: bool = True) -> dict[str, Tensor]:
    """Maps torchvision's ImageNet ResNet-34 onto the encoder stages ``encoder.layer1..4``.

    What maps: the first ``layers[i]`` blocks of each of torchvision's stages (3, 4, 6, 3
    blocks): ``convK`` -> ``convK.conv``, ``bnK`` -> ``convK.bn``, and a stage's
    ``downsample`` (a stride-2 1x1 conv + BN) -> ``interpolation.1`` (here 2x2 average
    pooling, then the same 1x1 conv: ResNet-D's variant of the same shortcut). Under
    spectral norm a weight goes to ``weight_orig`` with ``weight_u``/``weight_v`` set to its
    exact top singular vectors (the power iteration's fixed point), and the following BN's
    running mean and variance are divided by sigma and sigma^2, so that in eval mode each
    conv + BN computes torchvision's function (up to BN's eps), as a spectrally normalised
    network trained on ImageNet would.

    What does not: torchvision's stem (one 7x7 conv and max pooling) has no counterpart in
    this encoder's three-3x3-conv stem, and ``fc`` none at all; they are dropped, and the stem,
    shortcuts, guidance head, attention and decoder keep their fresh init.

    How the zoo differs: ``gca_r34`` and the baseline configs load
    ``open-mmlab://mmedit/res34_en_nomixup``, the GCA authors' own ResNet-34-D (this encoder's
    exact layout, spectral norm included) trained on ImageNet without mixup, so their stem is
    pretrained too. The GCA authors widened its 3-channel ``conv1`` to the trimap channels with
    zeros in the weight and in ``weight_v`` (sigma unchanged); mmedit's baseline encoder zeroes
    ``conv1``'s weight beyond channel 3 before loading. :func:`imagenet_init_` applies that rule
    to the (here untrained) stem.

    Args:
        state_dict: torchvision ``resnet34().state_dict()`` (``conv1.weight``, ``layer1.0.conv1.weight`` ...).
        layers: The encoder's blocks per stage (at most 3, 4, 6, 3).
        with_spectral_norm: The encoder's flag (plain ``weight`` keys and untouched BN when False).

    Returns:
        ``{"encoder.layer…": tensor}``, to load with ``strict=False`` (or through :func:`imagenet_init_`).

    Raises:
        ValueError: If a needed torchvision key is missing or ``layers`` asks for more blocks than it has.
    """
    pairs = _torchvision_pairs(state_dict, layers)
    out: dict[str, Tensor] = {}
    for src, dst in pairs:
        out |= _map_conv_or_bn(state_dict, src, dst, with_spectral_norm)
    if with_spectral_norm:
        _rescale_bn_by_sigma_(out)
    return out


def _torchvision_pairs(state: Mapping[str, Tensor], layers: Sequence[int]) -> list[tuple[str, str]]:
    """(torchvision module, encoder module) for every mapped conv and BN, checked before any work."""
    pairs = []
    for stage, blocks in enumerate(layers, start=1):
        for block in range(blocks):
            for src, dst in _TORCHVISION_BLOCK.items():
                src = f"layer{stage}.{block}.{src}"
                if src.split(".")[2] == "downsample" and f"{src}.weight" not in state:
                    continue  # only the first block of layer2..4 downsamples
                if f"{src}.weight" not in state:
                    raise ValueError(f"not a torchvision ResNet-34 state dict with these layers: no {src}.weight")
                pairs.append((src, f"encoder.layer{stage}.{block}.{dst}"))
    return pairs


def _map_conv_or_bn(state: Mapping[str, Tensor], src: str, dst: str, sn: bool) -> dict[str, Tensor]:
    """One torchvision conv (``.weight``) or BN (``.weight``, ``.bias``, running statistics)."""
    if dst.endswith(".conv"):
        weight = state[f"{src}.weight"].detach().float().clone()
        if not sn:
            return {f"{dst}.weight": weight}
        u, v = exact_power_vectors(weight)
        return {f"{dst}.weight_orig": weight, f"{dst}.weight_u": u, f"{dst}.weight_v": v}
    return {f"{dst}.{k}": state[f"{src}.{k}"].detach().clone() for k in _BN_KEYS if f"{src}.{k}" in state}


def exact_power_vectors(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, v)``: the top left and right singular vectors of a conv weight ``[out, in, k, k]``
    flattened to ``[out, in*k*k]``, as ``spectral_norm`` sees it.

    These are the power iteration's fixed point, so ``u @ W @ v`` is the exact largest singular
    value from the first forward on, instead of an estimate from random vectors. Computed from
    the eigenvectors of the smaller Gram matrix in float64 (a full SVD is ten times slower).
    """
    matrix = weight.reshape(weight.shape[0], -1).double()
    if matrix.shape[0] <= matrix.shape[1]:
        u = torch.linalg.eigh(matrix @ matrix.T).eigenvectors[:, -1]
        v = F.normalize(matrix.T @ u, dim=0)
    else:
        v = torch.linalg.eigh(matrix.T @ matrix).eigenvectors[:, -1]
        u = F.normalize(matrix @ v, dim=0)
    return u.float(), v.float()


def _sigma(state: Mapping[str, Tensor], conv: str) -> float:
    weight = state[f"{conv}.weight_orig"]
    matrix = weight.reshape(weight.shape[0], -1)
    return float(state[f"{conv}.weight_u"] @ matrix @ state[f"{conv}.weight_v"])


def _rescale_bn_by_sigma_(state: dict[str, Tensor]) -> None:
    """Divides each mapped BN's running statistics by its conv's sigma (mean) and sigma^2 (variance)."""
    for key in [k for k in state if k.endswith(".conv.weight_orig")]:
        conv = key.removesuffix(".weight_orig")
        bn = conv.removesuffix(".conv") + ".bn"
        sigma = _sigma(state, conv)
        if f"{bn}.running_mean" in state:
            state[f"{bn}.running_mean"] = state[f"{bn}.running_mean"] / sigma
            state[f"{bn}.running_var"] = state[f"{bn}.running_var"] / sigma**2


@torch.no_grad()
def imagenet_init_(net: ShortcutEncoderDecoder, torchvision_state: Mapping[str, Tensor]) -> list[str]:
    """Starts ``net`` the way the zoo's runs started, as far as torchvision's ResNet-34 allows.

    Loads :func:`from_torchvision_resnet34` into the encoder stages, zeroes the stem's
    ``conv1`` weight beyond the three image channels (the zoo's rule for the trimap inputs;
    its ``weight_u``/``weight_v`` are then set to the exact singular vectors), and, in the GCA
    encoder, sets the attention's ``out_conv`` BN weight back to 1e-3: mmedit's encoder skips
    its BN reset when it loads a pretrained file, so the zoo's encoder attention starts almost
    silent (the decoder's resets to 1 either way).

    Args:
        net: A freshly built ``gca`` or ``gca_baseline``.
        torchvision_state: torchvision ``resnet34`` state dict.

    Returns:
        The keys of ``net`` the mapping did not set (stem, shortcuts, guidance, attention, decoder).
    """
    encoder = net.encoder
    sn = hasattr(encoder.conv1.conv, "weight_orig")
    layers = [len(getattr(encoder, f"layer{i}")) for i in range(1, 5)]
    mapped = from_torchvision_resnet34(torchvision_state, layers, sn)
    result = net.load_state_dict(mapped, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"mapped keys the network lacks: {result.unexpected_keys[:3]}")
    conv = encoder.conv1.conv
    weight = conv.weight_orig if sn else conv.weight
    weight[:, 3:] = 0
    if sn:
        u, v = exact_power_vectors(weight)
        conv.weight_u.copy_(u)
        conv.weight_v.copy_(v)
    if getattr(encoder, "guided", False):
        nn.init.constant_(encoder.gca.out_conv.bn.weight, 1e-3)
    return result.missing_keys


"""DIM encoder-decoder: Xu et al., "Deep Image Matting", CVPR 2017.

Zoo configs: the backbone (checkpoint prefix ``backbone.``) of
``dim_stage1_v16_1x1_1000k_comp1k``, ``dim_stage2_v16_pln_1x1_1000k_comp1k`` and
``dim_stage3_v16_pln_1x1_1000k_comp1k`` (26,200,001 parameters); the stage-2/3 refiner
is ``plain_refiner``. MMEditing builds it as ``SimpleEncoderDecoder(VGG16(in_channels=4),
PlainDecoder)``; the module and attribute names here are the same, so the zoo's
``backbone.*`` weights load strictly once the prefix is removed.

Network. ``encoder`` is VGG16's 13 3x3 convs in five stages (``layer1`` … ``layer5``,
``nn.Sequential`` of conv[, BN], ReLU, ..., 2x2 max-pool that also returns its indices)
plus a 1x1 ``conv6`` (512 -> 512)[, ``bn``], ReLU, and optionally an ``aspp`` block
(DeepLabV3 ASPP, 512 -> 256, with its Dropout(0.5)). ``decoder`` mirrors it: a 1x1
``deconv6_1`` then, per stage from the deepest, max-unpooling with the encoder's indices
followed by a 5x5 conv + ReLU (``deconv5_1`` … ``deconv1_1``), and a last 5x5 conv
``deconv1`` to one channel with no activation. Unpooling puts each value back where the
encoder's max came from, which keeps thin structures (hair) sharp. The forward returns
the raw alpha logits ``[B, 1, H, W]``; H and W must be multiples of 32 (five 2x pools
whose indices must land inside the unpooled map).

What MMEditing's ``DIM`` mattor does around this network (a task must do the same):

* Input: ``torch.cat([merged, trimap], 1)``, ``[B, 4, H, W]``. ``merged`` is the
  composited image read as uint8 BGR, divided by 255 (float32), converted to RGB and
  normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
  ``trimap`` is one channel with values {0, 128, 255} / 255 (float32, not normalised).
* Output: ``pred_alpha = sigmoid(backbone(x))``.
* Refiner (stages 2 and 3): ``refiner(torch.cat([x[:, :3], pred_alpha], 1), raw_alpha)``,
  i.e. the normalised RGB plus the sigmoid alpha, and the raw logits for the residual;
  the refiner returns ``sigmoid(raw_alpha + refinement)``. ``pred_alpha`` is not detached,
  so in stage 3 the refinement loss also trains the backbone.
* Losses on the unknown region only: weight = ``trimap == 128/255`` (float32 compare).
  Backbone: Charbonnier(pred_alpha, alpha) x 0.5 and Charbonnier composition loss x 0.5
  (``pred_alpha * fg + (1 - pred_alpha) * bg`` against the un-normalised merged image, in
  [0, 1], mask repeated over the 3 channels), ``eps = 1e-12``, mean over the masked
  pixels of the whole batch. Refiner: Charbonnier(pred_refine, alpha) x 1.
* Stages (``train_cfg``): stage 1 ``train_backbone=True`` and no refiner module (only
  the backbone losses); stage 2 ``train_backbone=False, train_refiner=True``: the
  backbone is put in eval mode and all its parameters get ``requires_grad=False`` once at
  construction (mmcv's runner calls ``model.train()`` every iteration afterwards, which
  changes nothing here: this backbone has no BN or dropout), only the refinement loss is
  computed, and Adam over all parameters skips the gradient-less backbone; stage 3 both
  ``True``: all three losses, everything trained. Each stage starts from the previous
  stage's final checkpoint (``load_from``); Adam lr 1e-5, batch 1, fixed lr, 1M iterations.
* Test: ``test_cfg.refine`` (True in stages 2 and 3) picks the refiner's output instead
  of ``pred_alpha``. Image and trimap are padded at the bottom and right to multiples of
  32 with ``numpy.pad(mode="reflect")`` before the scaling above; the prediction is
  cropped back, clipped to [0, 1], set to 0 where the original trimap is 0 and to 1
  where it is 255, then scored after ``round(alpha * 255)`` as uint8. Batch size 1.
* Initialisation: stage 1 loads ``open-mmlab://mmedit/vgg16`` into the encoder (see
  :func:`from_torchvision_vgg16`); without a pretrained file every conv is Xavier-normal
  with zero bias and BN is (1, 0), which is what this module does on construction.

The ONNX-export path of MMEditing's decoder (a custom unpool op) is not ported.
"""

from collections.abc import Mapping, Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.matting_blocks import ASPP, xavier_normal_init_, zero_pad_input_channels

# VGG16 stages: (output channels, number of 3x3 convs).
_VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class VGG16Encoder(nn.Module):
    """VGG16 convs with max-pool indices, a 1x1 ``conv6`` and an optional ASPP (MMEditing's ``VGG16``).

    Args:
        in_channels: Input channels (RGB + trimap: 4).
        batch_norm: BN after every conv (the VGG16-BN layout), including ``conv6``.
        aspp: Append an ASPP block; the output then has 256 channels instead of 512.
        dilations: The ASPP's three dilations (required with ``aspp``).
    """

    def __init__(self, in_channels: int, batch_norm: bool = False, aspp: bool = False,
                 dilations: Sequence[int] | None = None):
        super().__init__()
        self.batch_norm = batch_norm
        channels = in_channels
        for i, (width, num_convs) in enumerate(_VGG16_STAGES, start=1):
            setattr(self, f"layer{i}", self._make_stage(channels, width, num_convs))
            channels = width
        self.conv6 = nn.Conv2d(512, 512, kernel_size=1)
        if batch_norm:
            self.bn = nn.BatchNorm2d(512)
        self.relu = nn.ReLU(inplace=True)
        self.aspp = ASPP(512, dilations=dilations) if aspp else None
        self.out_channels = 256 if aspp else 512

    def _make_stage(self, in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
        """``num_convs`` x (3x3 conv[, BN], ReLU), then a 2x2 max-pool returning its indices."""
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            if self.batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Returns the bottleneck features and the five max-pool index maps, shallowest first."""
        indices = []
        for i in range(1, len(_VGG16_STAGES) + 1):
            x, idx = getattr(self, f"layer{i}")(x)
            indices.append(idx)
        x = self.conv6(x)
        if self.batch_norm:
            x = self.bn(x)
        x = self.relu(x)
        if self.aspp is not None:
            x = self.aspp(x)
        return x, indices


class PlainDecoder(nn.Module):
    """DIM's decoder: unpool with the encoder's indices, then a 5x5 conv + ReLU, five times.

    Args:
        in_channels: Channels of the encoder output (512, or 256 after ASPP).
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.deconv6_1 = nn.Conv2d(in_channels, 512, kernel_size=1)
        self.deconv5_1 = nn.Conv2d(512, 512, kernel_size=5, padding=2)
        self.deconv4_1 = nn.Conv2d(512, 256, kernel_size=5, padding=2)
        self.deconv3_1 = nn.Conv2d(256, 128, kernel_size=5, padding=2)
        self.deconv2_1 = nn.Conv2d(128, 64, kernel_size=5, padding=2)
        self.deconv1_1 = nn.Conv2d(64, 64, kernel_size=5, padding=2)
        self.deconv1 = nn.Conv2d(64, 1, kernel_size=5, padding=2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, indices: Sequence[Tensor]) -> Tensor:
        """Decodes the bottleneck ``x`` with the pool ``indices`` (shallowest first) to raw alpha."""
        out = self.relu(self.deconv6_1(x))
        convs = (self.deconv5_1, self.deconv4_1, self.deconv3_1, self.deconv2_1, self.deconv1_1)
        for conv, idx in zip(convs, reversed(indices)):
            out = F.max_unpool2d(out, idx, kernel_size=2, stride=2)
            out = self.relu(conv(out))
        return self.deconv1(out)


class DIMEncoderDecoder(nn.Module):
    """DIM's backbone: :class:`VGG16Encoder` + :class:`PlainDecoder` (``SimpleEncoderDecoder``).

    Defaults build the zoo network. The decoder's input width follows the encoder's
    output (512, or 256 with ASPP), as MMEditing's ``SimpleEncoderDecoder`` overrides the
    decoder's ``in_channels`` with it.

    Args:
        in_channels: Encoder input channels: normalised RGB + trimap.
        batch_norm: The VGG16-BN variant of the encoder (not in the zoo).
        aspp: ASPP after the encoder (not in the zoo); needs ``dilations``.
        dilations: The ASPP's three dilations.

    Raises:
        ValueError: If ``aspp`` is set without three ``dilations``.
    """

    def __init__(self, in_channels: int = 4, batch_norm: bool = False, aspp: bool = False,
                 dilations: Sequence[int] | None = None):
        super().__init__()
        if aspp and (dilations is None or len(dilations) != 3):
            raise ValueError(f"aspp=True needs three dilations, got {dilations!r}")
        self.encoder = VGG16Encoder(in_channels, batch_norm, aspp, dilations)
        self.decoder = PlainDecoder(self.encoder.out_channels)
        xavier_normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``[B, 4, H, W]`` (normalised RGB, trimap / 255) to raw alpha logits ``[B, 1, H, W]``.

        H and W must be multiples of 32. The mattor applies the sigmoid (module docstring).
        """
        return self.decoder(*self.encoder(x))


def _torchvision_stage_starts(batch_norm: bool) -> list[int]:
    """Index in torchvision's ``features`` of each VGG16 stage's first conv.

    torchvision and MMEditing lay out a stage the same way (conv[, BN], ReLU per conv,
    then the pool), so the position inside an MMEditing stage equals the torchvision
    index minus the stage start.
    """
    per_conv = 3 if batch_norm else 2
    starts, pos = [], 0
    for _, num_convs in _VGG16_STAGES:
        starts.append(pos)
        pos += num_convs * per_conv + 1
    return starts


def from_torchvision_vgg16(state_dict: Mapping[str, Tensor], in_channels: int = 4) -> dict[str, Tensor]:
    """Maps torchvision's ImageNet ``vgg16`` (or ``vgg16_bn``) weights onto ``dim``'s encoder.

    The 13 convs (and, for ``vgg16_bn``, their BNs) of ``features.*`` become
    ``encoder.layer<s>.<i>.*``; the first conv is widened from RGB to ``in_channels``
    with zero filters for the trimap channel. The classifier is dropped: ``conv6`` (1x1,
    512 -> 512) has no ImageNet counterpart and keeps its initialisation, as do the
    decoder (and ASPP). Load the result with ``model.load_state_dict(out, strict=False)``
    and check that only those keys are reported missing.

    MMEditing's stage-1 config instead loads ``open-mmlab://mmedit/vgg16``
    (``https://download.openmmlab.com/mmediting/third_party/vgg_state_dict.pth``), a
    file that already has a 4-channel first conv. It could not be inspected here; it is
    taken to be this same conversion of torchvision's VGG16 (the public DIM ports build
    their 4-channel VGG16 from torchvision's weights with a zero trimap filter). One
    known difference: MMEditing skips its Xavier init when it is given a file, so encoder
    convs the file lacks keep PyTorch's default init there, while here they keep the
    Xavier-normal init this module is built with.

    Args:
        state_dict: torchvision's ``vgg16`` / ``vgg16_bn`` state dict (``features.<i>.*``,
            ``classifier.*``), RGB input, ImageNet mean/std normalisation, the same
            normalisation the DIM mattor applies.
        in_channels: Input channels of the ``dim`` model (4).

    Returns:
        ``{"encoder.layer<s>.<i>.<param>": tensor}``: 26 conv tensors, plus 65 BN tensors
        (weight, bias, running statistics, and ``num_batches_tracked`` where present) for ``vgg16_bn``.
    """
    batch_norm = "features.1.running_mean" in state_dict
    out: dict[str, Tensor] = {}
    for stage, (start, (_, num_convs)) in enumerate(zip(_torchvision_stage_starts(batch_norm), _VGG16_STAGES), 1):
        for pos in range(num_convs * (3 if batch_norm else 2)):
            prefix = f"features.{start + pos}."
            for key, value in state_dict.items():
                if key.startswith(prefix):
                    out[f"encoder.layer{stage}.{pos}.{key[len(prefix):]}"] = value.clone()
    first = "encoder.layer1.0.weight"
    out[first] = zero_pad_input_channels(out[first], in_channels)
    return out


"""The soft-mask-guided PatchGAN discriminator of Zeng et al., "Aggregated Contextual
Transformations for High-Resolution Image Inpainting", TVCG 2022 (the generator: ``aot``),
with spectral normalisation (Miyato et al., ICLR 2018).

Zoo config: the discriminator of ``AOT-GAN_512x512_4x12_places`` (defaults here;
2,763,777 parameters).

Structure as in MMEditing 0.x (``SoftMaskPatchDiscriminator``), ``model.0..`` in sequence:
4x4 convs, padding 1, no bias, LeakyReLU(0.2): ``model.0`` stride 2 -> ``base_channels``;
``model.1..num_conv-1`` stride 2, widths ``base_channels * min(2**n, 8)``; ``model.<num_conv>``
stride 1, width ``base_channels * min(2**num_conv, 8)``; then a plain 4x4 conv (bias, padding 1,
no spectral norm, no activation) to one logit per patch. With spectral norm (the zoo's) the
convs' state-dict keys are ``conv.weight_orig`` / ``weight_u`` / ``weight_v``; one power
iteration runs per training forward. For a 512 input the map is 62x62 (``H / 8 - 2``).
Init as mmedit's: every conv weight N(0, 0.02), biases 0.

The ``smgan`` loss (the D map resized to the mask, soft-mask targets) and the training step are
described in :mod:`trainers.archs.aot`. mmedit's optional norm layers (``norm_cfg``, unset in
the zoo) are not built here.
"""

from torch import Tensor, nn

from trainers.archs.conv_module import ConvNormAct

KERNEL = 4


class SoftMaskPatchDiscriminator(nn.Module):
    """PatchGAN discriminator: ``[B, C, H, W]`` -> patch logits ``[B, 1, H/2**num_conv - 2, ...]``.

    Args:
        in_channels: Image channels.
        base_channels: Width of the first conv.
        num_conv: Number of convs before the output conv, the last of them with stride 1.
        with_spectral_norm: Spectrally normalise those convs (not the output conv).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_conv: int = 3, with_spectral_norm: bool = True):
        super().__init__()
        widths = [base_channels * min(2**n, 8) for n in range(num_conv + 1)]
        strides = [2] * num_conv + [1]
        layers, cin = [], in_channels
        for cout, stride in zip(widths, strides):
            layers.append(ConvNormAct(cin, cout, KERNEL, stride, padding=1, bias=False, act="lrelu",
                                      spectral_norm=with_spectral_norm))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, KERNEL, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # ``weight`` is still the storage of ``weight_orig`` under spectral norm here.
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits; the ``smgan`` loss resizes them to the mask's size."""
        return self.model(x)

"""DeepFill v2 discriminator, SN-PatchGAN: Yu et al., "Free-Form Image Inpainting with Gated
Convolution", ICCV 2019 (spectral normalisation: Miyato et al., ICLR 2018).

Zoo configs: the discriminator (``disc.`` in the checkpoint) of
``deepfillv2_256x256_8x2_places`` and ``deepfillv2_256x256_8x2_celeba`` (same network):
5,946,816 parameters, plus the power-iteration vectors ``weight_u`` / ``weight_v``.

Structure as MMEditing 0.x's ``MultiLayerDiscriminator(in_channels=4, max_channels=256,
num_convs=6, fc_in_channels=None, with_spectral_norm=True)`` with LeakyReLU(0.2): six 5x5
stride-2 convs ``conv1..conv6`` (zero padding 2, bias, widths 64-128-256-256-256-256), each
under ``torch.nn.utils.spectral_norm`` (one power iteration per training forward) and
followed by LeakyReLU(0.2), the last one included. No linear layer: the output is a
``[B, 256, H/64, W/64]`` map whose every element scores one large receptive field, so the
hinge loss judges free-form holes wherever they are. The input is the image with the mask
as a 4th channel (``disc_input_with_mask``; see ``deepfill_v2``). Convs start
Kaiming-normal (fan_out, LeakyReLU 0.2 gain) with zero bias, as mmcv's ``ConvModule`` inits them.
"""

import functools

from torch import nn

from trainers.archs.deepfill_blocks import MultiLayerDiscriminator


class DeepFillv2Discriminator(MultiLayerDiscriminator):
    """Spectrally normalised PatchGAN discriminator over image + mask.

    Args:
        in_channels: Input channels (image 3 + mask 1).
        max_channels: Width cap; widths are ``min(64 * 2**i, max_channels)``.
        num_convs: Stride-2 convs (the output is ``1 / 2**num_convs`` of the input size).
        kernel_size: Conv kernel size.
        with_spectral_norm: Spectral normalisation of every conv.
    """

    def __init__(
        self,
        in_channels: int = 4,
        max_channels: int = 256,
        num_convs: int = 6,
        kernel_size: int = 5,
        with_spectral_norm: bool = True,
    ):
        lrelu = functools.partial(nn.LeakyReLU, 0.2)
        super().__init__(
            in_channels,
            max_channels,
            num_convs=num_convs,
            fc_in_channels=None,
            kernel_size=kernel_size,
            act=lrelu,
            out_act=lrelu,
            with_spectral_norm=with_spectral_norm,
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                weight = m.weight_orig if with_spectral_norm else m.weight
                nn.init.kaiming_normal_(weight, a=0.2, mode="fan_out", nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

"""U-Net discriminator with spectral normalisation, from Wang et al., "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021 (spectral
normalisation: Miyato et al., "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018).

Zoo configs: the discriminator of ``realesrgan_c64b23g32_12x4_lr1e-4_400k_df2k_ost``
(``in_channels=3, mid_channels=64, skip_connection=True``: 4,376,897 parameters);
``realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds`` reuses it per frame.

Structure as in MMEditing 0.x: ``conv_0`` (plain, with bias), three 4x4 stride-2 convs
``conv_1..3`` down, three 3x3 convs ``conv_4..6`` each after a bilinear x2 upsample
(``align_corners=False``) with the matching encoder feature added when
``skip_connection``, two 3x3 convs ``conv_7``/``conv_8``, and ``conv_9`` to one logit per
pixel. ``conv_1..8`` are bias-free and wrapped in ``torch.nn.utils.spectral_norm``
(one power iteration per training forward), so their state-dict keys are
``weight_orig``/``weight_u``/``weight_v``, as in the zoo checkpoint. LeakyReLU(0.2)
after every conv but the last. The per-pixel output lets the loss judge local texture,
which is what blind SR artefacts need. Height and width must be divisible by 8 for
the skip additions. PyTorch default init, as the zoo uses.
"""

from torch import Tensor, nn
from torch.nn.utils import spectral_norm


def _sn_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Conv2d:
    """Bias-free conv under spectral norm; padding 1 keeps the size (3x3) or halves it (4x4, stride 2)."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride, 1, bias=False))


class UNetDiscriminatorWithSpectralNorm(nn.Module):
    """Per-pixel U-Net discriminator with spectrally normalised convs.

    Args:
        in_channels: Input image channels.
        mid_channels: Width at full resolution; the encoder doubles it at each of three levels.
        skip_connection: Add each encoder feature to the decoder feature of the same size.
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, skip_connection: bool = True):
        super().__init__()
        self.skip_connection = skip_connection
        c1, c2, c4, c8 = (mid_channels * m for m in (1, 2, 4, 8))
        self.conv_0 = nn.Conv2d(in_channels, c1, kernel_size=3, stride=1, padding=1)
        self.conv_1 = _sn_conv(c1, c2, 4, 2)
        self.conv_2 = _sn_conv(c2, c4, 4, 2)
        self.conv_3 = _sn_conv(c4, c8, 4, 2)
        self.conv_4 = _sn_conv(c8, c4, 3, 1)
        self.conv_5 = _sn_conv(c4, c2, 3, 1)
        self.conv_6 = _sn_conv(c2, c1, 3, 1)
        self.conv_7 = _sn_conv(c1, c1, 3, 1)
        self.conv_8 = _sn_conv(c1, c1, 3, 1)
        self.conv_9 = nn.Conv2d(c1, 1, 3, 1, 1)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, img: Tensor) -> Tensor:
        """Maps a batch ``[B, C, H, W]`` (H, W divisible by 8) to per-pixel logits ``[B, 1, H, W]``."""
        feat_0 = self.lrelu(self.conv_0(img))
        feat_1 = self.lrelu(self.conv_1(feat_0))
        feat_2 = self.lrelu(self.conv_2(feat_1))
        feat = self.lrelu(self.conv_3(feat_2))
        for conv, skip in ((self.conv_4, feat_2), (self.conv_5, feat_1), (self.conv_6, feat_0)):
            feat = self.lrelu(conv(self.upsample(feat)))
            if self.skip_connection:
                feat = feat + skip
        out = self.lrelu(self.conv_8(self.lrelu(self.conv_7(feat))))
        return self.conv_9(out)

"""AOT-GAN generator, from Zeng et al., "Aggregated Contextual Transformations for High-Resolution
Image Inpainting", TVCG 2022 (arXiv 2104.01431; its discriminator: ``aot_disc``).

Zoo config: the generator of ``AOT-GAN_512x512_4x12_places`` (defaults here; 15,200,835
parameters, no normalisation layers).

Structure as in MMEditing 0.x (``AOTEncoderDecoder``; convs with bias, mmcv's Kaiming init):

* ``encoder.encoder``: reflection pad 3, 7x7 conv -> ``encoder_channels`` (64), 4x4 stride-2
  conv -> 128, 4x4 stride-2 conv -> ``neck_channels`` (256), each ReLU; index 0 is the pad, so
  the convs are ``encoder.encoder.1..3``;
* ``dilation_neck.model.0..7``: AOT blocks. Each splits into one branch per dilation rate
  (1, 2, 4, 8): reflection pad ``d``, 3x3 conv with dilation ``d`` to ``neck_channels / 4``,
  ReLU; the branches are concatenated and fused (reflection pad 1, 3x3 conv, no activation).
  A gate ``g`` (reflection pad 1, 3x3 conv of the block input) is normalised per sample and
  channel over space as ``5 * (2 * (g - mean) / (std + 1e-9) - 1)`` (``std`` unbiased) --
  the paper's "layer norm" -- and ``m = sigmoid`` of it mixes: ``x * (1 - m) + fused * m``;
* ``decoder.decoder``: bilinear x2 (``align_corners=True``), 3x3 conv -> ``decoder_channels``
  (128), ReLU; bilinear x2, 3x3 conv -> 64, ReLU; 3x3 conv -> 3; tanh.

Height and width must be divisible by 4, and the quarter-size features larger than the
largest dilation rate (reflection padding needs it): at least 36 px for rates up to 8.

What MMEditing's ``AOTInpaintor`` does around the networks (images in [-1, 1]; ``mask``
``[B, 1, H, W]``, 1 = hole; ``masked_img = gt * (1 - mask)``):

* generator input ``cat([masked_img + mask, mask], 1)`` -- holes are filled with 1 (white),
  not 0, before the mask channel is appended; output ``fake_res``;
* composite ``fake_img = gt * (1 - mask) + fake_res * mask`` (test: ``masked_img + mask`` in
  place of ``gt``, which is the same outside the hole);
* discriminator step first (``disc_step=1``), on ``gt`` (real) and ``fake_img.detach()``
  (fake), one backward of their sum, one Adam step. Loss ``smgan``: the D map ``[B, 1, h, w]``
  is resized to the mask's size (bilinear, ``align_corners=True``) and compared by MSE (mean)
  with a target: real -> all ones; fake -> the mask blurred by a 71x71 Gaussian, sigma 10,
  zero padding (1 in the hole centre, falling to 0 outside). So mmedit asks 1 of real
  images and of the fake's hole, 0 of the fake's known part (GANLoss' default labels; check
  against the AOT-GAN paper before "fixing" it: the zoo model was trained with these);
* generator step against the updated discriminator: ``0.01 x MSE(resized D(fake_img), 1)``
  (mmedit multiplies that mean by ``mask / mask.mean()`` and averages again, which leaves it
  unchanged), plus ``L1(fake_res, gt)`` over the whole image (the config's "l1_valid" gets no
  mask weight), plus VGG19 perceptual (features 1, 6, 11, 20, 29 = relu1_1..relu5_1; weight
  0.1) and style (Gram matrices ``F F^T / (C H W)`` of features 8, 17, 26, 31 = relu2_2,
  relu3_4, relu4_4, relu5_2; weight 250) on ``fake_res`` only: the configured
  ``loss_composed_percep`` is not applied to ``fake_img`` by this inpaintor. Images go to
  [0, 1] then ImageNet normalisation before VGG; L1 criterion;
* Adam lr 1e-4, betas (0, 0.9) for both, constant, 500k iterations, 12 images x 4 GPUs
  (the name says 4x12); train images RGB, random resized crop 512, horizontal flip of image
  and mask, colour jitter 0.5 (hue 0.5); masks from the PConv mask set, nearest-resized to
  512 and rotated by 0-45 degrees. The test pipeline loads RGB and then swaps to BGR
  (``to_rgb=True``), as the published 50-60 % mask figures were measured; mmedit's L1 metric
  here is the plain mean ``|fake_img - gt|`` over the whole image in [-1, 1] (no mask, the
  composite, unlike GL/PConv), PSNR/SSIM on ``fake_img``.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.conv_module import ConvNormAct


class AOTEncoder(nn.Module):
    """Reflection-padded 7x7 conv, then two 4x4 stride-2 convs: 1/4 size, ``out_channels`` wide."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3),
            ConvNormAct(in_channels, mid_channels, 7),
            ConvNormAct(mid_channels, mid_channels * 2, 4, stride=2, padding=1),
            ConvNormAct(mid_channels * 2, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class AOTBlock(nn.Module):
    """Split-transform-merge block with a learned, normalised gate (see the module docstring).

    Args:
        channels: Feature channels in and out; each of the branches gets ``channels // 4``.
        dilation_rates: One branch per rate; the branches must concatenate back to ``channels``.
    """

    def __init__(self, channels: int, dilation_rates: tuple[int, ...]):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReflectionPad2d(d), ConvNormAct(channels, channels // 4, 3, dilation=d))
            for d in dilation_rates
        )
        self.fuse = nn.Sequential(nn.ReflectionPad2d(1), ConvNormAct(channels, channels, 3, act=None))
        self.gate = nn.Sequential(nn.ReflectionPad2d(1), ConvNormAct(channels, channels, 3, act=None))

    @staticmethod
    def normalize(x: Tensor) -> Tensor:
        """Per-sample, per-channel standardisation over space, mapped to ``5 * (2 z - 1)``.

        The shift by -1 and the factor 5 push the sigmoid gate towards 0 (keep the input)
        unless the gate feature stands out.
        """
        mean = x.mean((2, 3), keepdim=True)
        std = x.std((2, 3), keepdim=True) + 1e-9
        return 5 * (2 * (x - mean) / std - 1)

    def forward(self, x: Tensor) -> Tensor:
        fused = self.fuse(torch.cat([branch(x) for branch in self.blocks], dim=1))
        mask = torch.sigmoid(self.normalize(self.gate(x)))
        return x * (1 - mask) + fused * mask


class AOTBlockNeck(nn.Module):
    """``num_aotblock`` AOT blocks in sequence, as ``model.0..``."""

    def __init__(self, channels: int, dilation_rates: tuple[int, ...], num_aotblock: int):
        super().__init__()
        self.model = nn.Sequential(*(AOTBlock(channels, dilation_rates) for _ in range(num_aotblock)))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class AOTDecoder(nn.Module):
    """Two bilinear x2 upsamplings each followed by a 3x3 conv + ReLU, a 3x3 conv, tanh."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.decoder = nn.ModuleList([
            ConvNormAct(in_channels, mid_channels, 3, padding=1),
            ConvNormAct(mid_channels, mid_channels // 2, 3, padding=1),
            ConvNormAct(mid_channels // 2, out_channels, 3, padding=1, act=None),
        ])

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.decoder):
            if i < 2:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = layer(x)
        return torch.tanh(x)


class AOTEncoderDecoder(nn.Module):
    """AOT-GAN generator: ``[masked image + mask, mask]`` (4 channels) -> image in (-1, 1).

    Args:
        in_channels: Input channels (image + mask).
        out_channels: Output image channels.
        encoder_channels: Width after the 7x7 conv (mmedit's encoder ``mid_channels``); doubled
            by the first stride-2 conv.
        neck_channels: Width of the quarter-size features and the AOT blocks (encoder
            ``out_channels``, neck and decoder ``in_channels``).
        decoder_channels: Width after the first decoder conv (decoder ``mid_channels``); halved
            by the second.
        dilation_rates: One AOT branch per rate; ``neck_channels // 4 * len(dilation_rates)`` must
            equal ``neck_channels``.
        num_aotblock: Number of AOT blocks.
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        encoder_channels: int = 64,
        neck_channels: int = 256,
        decoder_channels: int = 128,
        dilation_rates: tuple[int, ...] = (1, 2, 4, 8),
        num_aotblock: int = 8,
    ):
        super().__init__()
        dilation_rates = tuple(dilation_rates)
        if neck_channels // 4 * len(dilation_rates) != neck_channels:
            raise ValueError(
                f"{len(dilation_rates)} branches of neck_channels // 4 = {neck_channels // 4} channels "
                f"do not concatenate back to neck_channels = {neck_channels}"
            )
        # mmedit's registration order (encoder, decoder, neck), so state dicts list keys alike.
        self.encoder = AOTEncoder(in_channels, encoder_channels, neck_channels)
        self.decoder = AOTDecoder(neck_channels, decoder_channels, out_channels)
        self.dilation_neck = AOTBlockNeck(neck_channels, dilation_rates, num_aotblock)

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``[B, 4, H, W]`` (H, W divisible by 4) to ``[B, 3, H, W]`` in (-1, 1)."""
        return self.decoder(self.dilation_neck(self.encoder(x)))

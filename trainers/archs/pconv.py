"""PConv: the partial-convolution U-Net of Liu et al., "Image Inpainting for Irregular Holes Using
Partial Convolutions", ECCV 2018.

Zoo configs: ``pconv_256x256_stage1_8x1_{places,celeba}`` (``freeze_encoder_bn=False``) and
``pconv_256x256_stage2_4x2_{places,celeba}`` (``freeze_encoder_bn=True``, the default): one
architecture, 25,779,860 parameters, plus as many all-ones ``weight_mask_updater`` buffer
entries (see :mod:`trainers.archs.partial_conv`), which the zoo checkpoints carry. Those
checkpoints also hold ``loss_percep.*``, the VGG16 of the perceptual loss (1,735,488
parameters of the first three VGG blocks); that is not part of the network and
``extract_net_state(ckpt, "generator")`` leaves it out.

Structure as in MMEditing 0.x (``PConvEncoderDecoder``); every conv is a multi-channel
partial conv, so the mask travels with the features:

* encoder ``enc1..enc{num_layers}``, each stride 2: ``enc1`` 7x7 -> 64 (no BN), ``enc2`` 5x5 ->
  128, ``enc3`` 5x5 -> 256, ``enc4`` 3x3 -> 512, ``enc5..`` 3x3 -> 512; BN + ReLU;
* decoder ``dec{num_layers}..dec1``: nearest x2 upsampling of features and mask, concat with
  the encoder's features and mask of that size (``[up, skip]``), 3x3 partial conv; BN +
  LeakyReLU(0.2), except ``dec1`` (67 -> 3 channels, bias, no BN, no activation).

Height and width must be divisible by ``2**num_layers`` (128 for the zoo). The output is
unbounded (no tanh or clamp).

Stage 2 (``freeze_encoder_bn``) fine-tunes with the encoder's batch norms frozen, as the
paper does to avoid the hole pixels' wrong mean and variance: their scale and shift do not
require grad and they stay in eval mode (running statistics used and not updated) even
after ``.train()``; the decoder's BNs train normally. (mmedit expresses this as the
encoder's ``norm_cfg.requires_grad=False`` plus ``norm_eval=True``; the zoo configs always set
both or neither.) The zoo uses SyncBN; see :mod:`trainers.archs.conv_module`.

What MMEditing's ``PConvInpaintor`` does around the network (images in [-1, 1], ``mask`` is
``[B, 1, H, W]`` with 1 = hole, ``masked_img = gt * (1 - mask)``):

* input: ``(masked_img, 1 - mask.expand_as(gt))`` -- note the network's mask is the
  *validity* mask, 3 channels; it returns ``(fake_res, final_mask)``;
* composite ``fake_img = gt * (1 - mask) + fake_res * mask`` (test: ``masked_img`` for ``gt``);
* losses (generator only, no discriminator, ``disc_step=0``): L1 on the hole
  ``6 * sum(|fake_res - gt| * mask) / sum(mask expanded to 3 channels)``; the same on the valid
  part with ``1 - mask``, weight 1; VGG16 perceptual (L1 of the outputs of features 4, 9, 16 =
  pool1..pool3, weight 0.05) and style (L1 of their Gram matrices ``F F^T / (C H W)``, weight
  120), images mapped to [0, 1] and ImageNet-normalised first, applied twice: to ``fake_img``
  and to ``fake_res`` (``loss_out_percep=True``), each against ``gt``; masked TV on
  ``fake_img``, weight 0.1 on each of ``sum(|p[..., :-1, :] - p[..., 1:, :]| * mask[..., :-1, :])
  / (3 * sum(mask[..., :-1, :]))`` and its horizontal twin;
* Adam, lr 2e-4 (stage 1, 800k iterations) then 5e-5 (stage 2, 500k Places / 300k CelebA),
  constant; masks irregular (brush strokes, 15-65 % of the image). mmedit evaluates with the
  training pipeline (random crop and mask per evaluation), L1 metric = the hole loss formula
  on ``fake_res`` in [-1, 1] (without the factor 6), PSNR/SSIM on ``fake_img``. Config names
  and batch sizes disagree upstream (Places: 12 images per GPU in both stages; CelebA: 1),
  and the CelebA configs' annotation files are named ``*places*`` under the CelebA-HQ root.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from trainers.archs.partial_conv import MaskConvNormAct

MIN_LAYERS = 4  # enc1..enc4 and dec4..dec1 always exist


class PConvEncoder(nn.Module):
    """Strided partial convs; keeps every level's features and mask for the decoder's skips.

    Args:
        in_channels: Image channels (the mask has as many).
        num_layers: Number of stride-2 levels.
        freeze_encoder_bn: Keep the BNs in eval mode and their parameters frozen.
    """

    def __init__(self, in_channels: int, num_layers: int, freeze_encoder_bn: bool):
        super().__init__()
        self.num_layers = num_layers
        self.freeze_bn = freeze_encoder_bn
        specs = [(in_channels, 64, 7, False), (64, 128, 5, True), (128, 256, 5, True), (256, 512, 3, True)]
        specs += [(512, 512, 3, True)] * (num_layers - MIN_LAYERS)
        for i, (cin, cout, k, norm) in enumerate(specs, start=1):
            self.add_module(f"enc{i}", MaskConvNormAct(cin, cout, k, stride=2, padding=k // 2, norm=norm))
        if freeze_encoder_bn:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.requires_grad_(False)

    def train(self, mode: bool = True) -> "PConvEncoder":
        """As ``nn.Module.train``, but frozen BNs stay in eval mode."""
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.modules():
                if isinstance(m, _BatchNorm):  # SyncBatchNorm too, after a conversion
                    m.eval()
        return self

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Features and masks of every level, level 0 being the input itself."""
        feats, masks = [x], [mask]
        for i in range(1, self.num_layers + 1):
            x, mask = getattr(self, f"enc{i}")(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class PConvDecoder(nn.Module):
    """Upsample, concatenate the skip, partial conv; from the deepest level up to full size.

    Args:
        in_channels: Image channels, which the last level's skip brings in.
        num_layers: Number of levels (as the encoder).
        interpolation: ``F.interpolate`` mode of the x2 upsampling (features and mask).
    """

    def __init__(self, in_channels: int, num_layers: int, interpolation: str):
        super().__init__()
        self.num_layers = num_layers
        self.interpolation = interpolation
        # Registered in mmedit's order (dec5.. first) so state dicts list keys alike.
        for i in range(MIN_LAYERS + 1, num_layers + 1):
            self.add_module(f"dec{i}", MaskConvNormAct(512 + 512, 512, 3, padding=1, act="lrelu"))
        self.dec4 = MaskConvNormAct(512 + 256, 256, 3, padding=1, act="lrelu")
        self.dec3 = MaskConvNormAct(256 + 128, 128, 3, padding=1, act="lrelu")
        self.dec2 = MaskConvNormAct(128 + 64, 64, 3, padding=1, act="lrelu")
        self.dec1 = MaskConvNormAct(64 + in_channels, 3, 3, padding=1, norm=False, act=None)

    def forward(self, feats: list[Tensor], masks: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Returns the decoded image and the final mask, from the encoder's per-level lists."""
        h, h_mask = feats[-1], masks[-1]
        for i in range(self.num_layers, 0, -1):
            h = F.interpolate(h, scale_factor=2, mode=self.interpolation)
            h_mask = F.interpolate(h_mask, scale_factor=2, mode=self.interpolation)
            # Upsampled deep path first, then the skip: the order the zoo weights expect.
            h = torch.cat([h, feats[i - 1]], dim=1)
            h_mask = torch.cat([h_mask, masks[i - 1]], dim=1)
            h, h_mask = getattr(self, f"dec{i}")(h, h_mask)
        return h, h_mask


class PConvEncoderDecoder(nn.Module):
    """Partial-convolution U-Net: ``(masked image, validity mask) -> (image, final mask)``.

    Args:
        in_channels: Image channels (and mask channels).
        num_layers: Stride-2 levels (at least 4); inputs must be divisible by ``2**num_layers``.
        interpolation: Decoder upsampling mode.
        freeze_encoder_bn: Stage 2: encoder BNs frozen (eval mode, no grad) even in training.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_layers: int = 7,
        interpolation: str = "nearest",
        freeze_encoder_bn: bool = True,
    ):
        super().__init__()
        if num_layers < MIN_LAYERS:
            raise ValueError(f"num_layers must be at least {MIN_LAYERS} (enc1..enc4 always exist), got {num_layers}")
        self.encoder = PConvEncoder(in_channels, num_layers, freeze_encoder_bn)
        self.decoder = PConvDecoder(in_channels, num_layers, interpolation)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Inpaints ``x`` where ``mask`` is 0.

        Args:
            x: Masked image ``[B, C, H, W]`` (holes already zeroed by the caller).
            mask: Validity mask ``[B, C, H, W]``, 1 = known pixel, 0 = hole.

        Returns:
            ``(output, final_mask)``: the raw network output ``[B, 3, H, W]`` and the mask the
            last partial conv passes on ``[B, 3, H, W]``.
        """
        return self.decoder(*self.encoder(x, mask))

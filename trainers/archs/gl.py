"""Global&Local: the completion network of Iizuka et al., "Globally and Locally Consistent Image
Completion", SIGGRAPH 2017 (its discriminators: ``gl_disc``).

Zoo configs: the generator of ``gl_256x256_8x12_places`` and ``gl_256x256_8x12_celeba`` (same
network, defaults here; 6,069,155 parameters, batch norm everywhere but the last conv).

Structure as in MMEditing 0.x (``GLEncoderDecoder``), every layer conv -> BN -> ReLU
(see :mod:`trainers.archs.conv_module`):

* ``encoder.enc1..enc6``: 5x5 -> 64; 3x3 stride 2 -> 128; 3x3 -> 128; 3x3 stride 2 -> 256;
  3x3 -> 256; 3x3 -> 256 (input 4 channels: masked image + mask);
* ``dilation_neck.dilation_convs.0..3``: 3x3, 256 channels, dilation (and padding) 2, 4, 8, 16;
* ``decoder.dec1..dec7``: 3x3 256; 3x3 256; 4x4 stride-2 transposed conv -> 128; 3x3 128;
  4x4 stride-2 transposed conv -> 64; 3x3 -> 32; 3x3 -> 3 with bias and no BN/activation,
  then the output clamped to [-1, 1] (``out_act="clip"``; mmedit's alternative is a sigmoid).

Height and width must be divisible by 4. The clamp passes no gradient to out-of-range pixels,
as in the zoo.

What MMEditing's ``GLInpaintor`` does around the networks (images in [-1, 1]; ``mask``
``[B, 1, H, W]``, 1 = hole, a rectangle from ``mask_bbox`` = (top, left, h, w);
``masked_img = gt * (1 - mask)``):

* generator input ``cat([masked_img, mask], 1)``; output ``fake_res``; composite
  ``fake_img = gt * (1 - mask) + fake_res * mask`` (test: ``masked_img`` in place of ``gt``);
* local patches: the bbox is grown to ``local_size`` 128x128 around its centre,
  ``top' = max(0, top - (128 - h) // 2)``, ``left'`` likewise (not clamped at the bottom/right;
  the zoo's boxes, 108..128 px, at least 20 px from the top/left and ending by 235 px in 256,
  always fit), and
  ``fake_local`` / ``gt_local`` are that window of ``fake_img`` / ``gt``;
* the discriminator judges ``(image, local patch)`` pairs: fake ``(fake_img.detach(),
  fake_local.detach())``, real ``(gt, gt_local)``; vanilla GAN (BCE with logits), weight 1
  for the discriminator, fake and real backpropagated in turn, one Adam step;
* schedule by ``cur_iter`` (starts at ``start_iter``, +1 per step): ``cur_iter <= iter_tc``:
  generator only, L1 on the hole; ``iter_tc < cur_iter <= iter_td``: discriminator only;
  later: discriminator step, then generator step with L1 hole + 0.001 x BCE(D(fake_img,
  fake_local), real) against the just-updated discriminator (``disc_step=1``). CelebA: 40k /
  50k of 300k from 0; Places: 90k / 100k, but ``start_iter=350000``, so a run from that
  config is in the joint phase from its first step;
* L1 hole loss: ``sum(|fake_res - gt| * mask) / sum(mask expanded to 3 channels)``;
* Adam lr 4e-4 for both networks, constant; 12 images per GPU x 8 (SyncBN over all 96).
  mmedit evaluates with the training pipeline (random crop and box per evaluation); its L1
  metric is the hole loss formula on ``fake_res`` in [-1, 1], PSNR/SSIM use ``fake_img``.
"""

from collections import OrderedDict
from typing import Literal

import torch
from torch import Tensor, nn

from trainers.archs.conv_module import ConvNormAct


class GLDilationNeck(nn.Module):
    """Four 3x3 convs with dilation 2, 4, 8, 16 (padding equal), widening the receptive field.

    Args:
        channels: Feature channels in and out.
        norm: Batch norm after each conv.
    """

    def __init__(self, channels: int = 256, norm: bool = True):
        super().__init__()
        self.dilation_convs = nn.Sequential(
            *(ConvNormAct(channels, channels, 3, padding=d, dilation=d, norm=norm) for d in (2, 4, 8, 16))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.dilation_convs(x)


def _gl_encoder(norm: bool) -> nn.Sequential:
    """``enc1..enc6`` (kernel, stride, width): the 4-channel input down to 1/4 size, 256 channels."""
    specs = [(5, 1, 64), (3, 2, 128), (3, 1, 128), (3, 2, 256), (3, 1, 256), (3, 1, 256)]
    layers, cin = OrderedDict(), 4
    for i, (k, s, cout) in enumerate(specs, start=1):
        layers[f"enc{i}"] = ConvNormAct(cin, cout, k, s, padding=(k - 1) // 2, norm=norm)
        cin = cout
    return nn.Sequential(layers)


def _gl_decoder(norm: bool) -> nn.Sequential:
    """``dec1..dec7``: two transposed convs back to full size, then 3 channels (no BN, no activation)."""
    return nn.Sequential(OrderedDict(
        dec1=ConvNormAct(256, 256, 3, padding=1, norm=norm),
        dec2=ConvNormAct(256, 256, 3, padding=1, norm=norm),
        dec3=ConvNormAct(256, 128, 4, 2, padding=1, norm=norm, transposed=True),
        dec4=ConvNormAct(128, 128, 3, padding=1, norm=norm),
        dec5=ConvNormAct(128, 64, 4, 2, padding=1, norm=norm, transposed=True),
        dec6=ConvNormAct(64, 32, 3, padding=1, norm=norm),
        dec7=ConvNormAct(32, 3, 3, padding=1, norm=False, act=None),
    ))


class GLEncoderDecoder(nn.Module):
    """Global&Local completion network: ``[masked image, mask]`` (4 channels) -> image in [-1, 1].

    Args:
        with_norm: Batch norm after every conv but the last (the zoo's ``norm_cfg=SyncBN``;
            mmedit's default without it gives every conv a bias instead).
        out_act: ``"clip"`` (clamp to [-1, 1], the zoo's) or ``"sigmoid"``.
    """

    def __init__(self, with_norm: bool = True, out_act: Literal["clip", "sigmoid"] = "clip"):
        super().__init__()
        if out_act not in ("clip", "sigmoid"):
            raise ValueError(f"out_act must be 'clip' or 'sigmoid', got {out_act!r}")
        self.out_act = out_act
        # mmedit's registration order (encoder, decoder, neck), so state dicts list keys alike.
        self.encoder = _gl_encoder(with_norm)
        self.decoder = _gl_decoder(with_norm)
        self.dilation_neck = GLDilationNeck(256, with_norm)

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``[B, 4, H, W]`` (masked image in [-1, 1], then the mask, 1 = hole) to ``[B, 3, H, W]``."""
        out = self.decoder(self.dilation_neck(self.encoder(x)))
        return torch.clamp(out, -1.0, 1.0) if self.out_act == "clip" else torch.sigmoid(out)

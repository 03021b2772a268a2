"""StyleGAN2Discriminator: the residual StyleGAN2 critic of Karras et al., "Analyzing and Improving
the Image Quality of StyleGAN", CVPR 2020, as mmgen / MMEditing 0.x build it.

Zoo configs: the discriminator of ``glean_in128out1024_4x2_300k_ffhq_celebahq`` and
``glean_ffhq_16x`` (``in_size=1024``, 29.01M parameters, started from the FFHQ StyleGAN2 file's
``discriminator``), ``glean_cat_8x`` and ``glean_cat_16x`` (``in_size=256``, from the LSUN-cat
file).

What the reference does that one might not expect:

* a 1x1 ``ConvDownLayer`` from RGB, then one ``ResBlock`` per halving down to 4x4, each blurring
  with the ``[1, 3, 3, 1]`` FIR filter before its stride-2 convs; outputs are divided by sqrt 2;
* a minibatch-stddev channel (groups of 4: a batch larger than 4 must be a multiple of 4), a 3x3
  conv and two equalized linear layers to one logit per image;
* all weights are ``weight_orig`` with equalized learning rate; biases sit in the
  fused-leaky-ReLU modules (``convs.<i>.conv1.1.bias``), the 1x1 skips have none;
* ``pretrained``/``bgr2rgb`` are accepted for the zoo config's sake: only None/False (the file is
  loaded by the task, :func:`trainers.archs.glean.load_stylegan2_bank`).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from trainers.archs.stylegan2_blocks import (
    ConvDownLayer,
    EqualLinearActModule,
    ModMBStddevLayer,
    ResBlock,
    channel_table,
)


class StyleGAN2Discriminator(nn.Module):
    """Args: as mmgen's (``in_size`` a power of two from 8 to 1024), plus ``width_divisor``
    (restoray: divides the channel table, 1 = the zoo)."""

    def __init__(self, in_size: int, channel_multiplier: int = 2, blur_kernel=(1, 3, 3, 1),
                 mbstd_cfg: dict | None = None, pretrained: None = None, bgr2rgb: bool = False,
                 width_divisor: int = 1):
        super().__init__()
        log_size = int(math.log2(in_size)) if in_size > 0 else 0
        if in_size < 8 or 2 ** log_size != in_size or in_size > 1024:
            raise ValueError(f"in_size must be a power of two in [8, 1024], got {in_size}")
        if pretrained is not None or bgr2rgb:
            raise ValueError("stylegan2_disc: pretrained/bgr2rgb are not taken here; the StyleGAN2 file is "
                             "task.stylegan2_weights")
        mbstd_cfg = dict(group_size=4, channel_groups=1) if mbstd_cfg is None else dict(mbstd_cfg)
        ch = channel_table(channel_multiplier, width_divisor)
        convs: list[nn.Module] = [ConvDownLayer(3, ch[in_size], 1)]
        cin = ch[in_size]
        for i in range(log_size, 2, -1):
            convs.append(ResBlock(cin, ch[2 ** (i - 1)], blur_kernel))
            cin = ch[2 ** (i - 1)]
        self.convs = nn.Sequential(*convs)
        self.mbstd_layer = ModMBStddevLayer(**mbstd_cfg)
        self.final_conv = ConvDownLayer(cin + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinearActModule(ch[4] * 16, ch[4], fused_act=True),
                                          EqualLinearActModule(ch[4], 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits [N, 1] for images [N, 3, in_size, in_size] in [-1, 1]."""
        x = self.final_conv(self.mbstd_layer(self.convs(x)))
        return self.final_linear(x.reshape(x.shape[0], -1))

"""The TTSR discriminator (Yang et al., CVPR 2020; mmedit's ``TTSRDiscriminator``).

Covers the ``discriminator`` of the zoo config ``ttsr-gan_x4_c64b16_g1_500k_CUFED``: ten 3x3
convs (32 to 512 channels, every second one stride 2, LeakyReLU 0.2), then two linear layers.

What the reference does that one might not expect: the first linear layer's width is fixed by
``in_size`` (``in_size // 32`` squared times 512; 12,800 for the zoo's 160 px GT), so the
discriminator judges exactly ``in_size`` px images and the training images must be that size.
"""

from __future__ import annotations

from torch import Tensor, nn


class TTSRDiscriminator(nn.Module):
    """Args: ``in_channels``: image channels; ``in_size``: the (square) input size, a multiple of 32."""

    def __init__(self, in_channels: int = 3, in_size: int = 160):
        super().__init__()
        if in_size % 32:
            raise ValueError(f"in_size: must be a multiple of 32, got {in_size}")
        self.in_size = in_size
        layers, cin = [], in_channels
        for cout in (32, 64, 128, 256, 512):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(cout, cout, 3, 2, 1),
                       nn.LeakyReLU(0.2)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.last = nn.Sequential(nn.Linear((in_size // 32) ** 2 * 512, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"TTSRDiscriminator: input is {x.shape[-2]}x{x.shape[-1]}, in_size is {self.in_size}")
        return self.last(self.body(x).flatten(1))

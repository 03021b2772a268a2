"""DIM's refinement stage: Xu et al., "Deep Image Matting", CVPR 2017.

Zoo configs: the refiner (checkpoint prefix ``refiner.``) of
``dim_stage2_v16_pln_1x1_1000k_comp1k`` and ``dim_stage3_v16_pln_1x1_1000k_comp1k``
(``conv_channels=64``: 76,801 parameters). MMEditing's ``PlainRefiner``, same attribute names.

Four 3x3 convs (padding 1): ``refine_conv1`` (4 -> c), ``refine_conv2``, ``refine_conv3``
(c -> c), each followed by ReLU, and ``refine_pred`` (c -> 1) without activation. The
prediction is a residual on the backbone's logits, ``sigmoid(raw_alpha + refine_pred)``,
so an untrained refiner starts near the backbone's own alpha and only has to learn
the sharpening. Xavier-normal conv weights and zero biases, MMEditing's ``init_weights``.

The DIM mattor calls it as ``refiner(torch.cat([x[:, :3], sigmoid(raw_alpha)], 1),
raw_alpha)`` where ``x[:, :3]`` is the ImageNet-normalised RGB input of the backbone
and ``raw_alpha`` the backbone output (see ``trainers/archs/dim.py`` for the rest).
"""

import torch
from torch import Tensor, nn

from trainers.archs.matting_blocks import xavier_normal_init_


class PlainRefiner(nn.Module):
    """Small fully-convolutional net that refines an alpha matte at full resolution.

    Args:
        conv_channels: Width of the three hidden convs.
    """

    def __init__(self, conv_channels: int = 64):
        super().__init__()
        self.refine_conv1 = nn.Conv2d(4, conv_channels, kernel_size=3, padding=1)
        self.refine_conv2 = nn.Conv2d(conv_channels, conv_channels, kernel_size=3, padding=1)
        self.refine_conv3 = nn.Conv2d(conv_channels, conv_channels, kernel_size=3, padding=1)
        self.refine_pred = nn.Conv2d(conv_channels, 1, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        xavier_normal_init_(self)

    def forward(self, x: Tensor, raw_alpha: Tensor) -> Tensor:
        """Refined alpha in (0, 1), ``[B, 1, H, W]``.

        Args:
            x: ``[B, 4, H, W]``: normalised RGB and the backbone's sigmoid alpha.
            raw_alpha: ``[B, 1, H, W]``: the backbone's logits (before the sigmoid).
        """
        out = self.relu(self.refine_conv1(x))
        out = self.relu(self.refine_conv2(out))
        out = self.relu(self.refine_conv3(out))
        return torch.sigmoid(raw_alpha + self.refine_pred(out))

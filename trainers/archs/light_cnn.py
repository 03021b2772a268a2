"""LightCNN: Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels", TIFS 2018,
as DIC-GAN's discriminator (Ma et al., CVPR 2020).

Zoo config: ``dic_gan_x8c48b6_g4_500k_CelebAHQ`` (``LightCNN(in_channels=3)``, 5.49M parameters).
The same ``features`` stack, with pretrained face-recognition weights, is the feature extractor of
DIC-GAN's LightCNN feature loss (``trainers/losses/light_cnn.py``).

Structure and names as MMEditing 0.16.1 (``discriminators/light_cnn.py``): max-feature-map
layers (``MaxFeature``: a conv or linear ``filter`` with twice the output channels, then the
element-wise max of the two halves), ceil-mode 2x2 max-pools, and a classifier
``MaxFeature(8192 -> 256, linear)`` + LeakyReLU(0.2) + ``Linear(256, 1)``. What one might not
expect: the flattened feature size is fixed at 8 x 8 x 128, so the discriminator only takes
128 x 128 inputs (``forward`` raises a ValueError naming the size otherwise); and there is no
activation other than the max-feature maps in ``features``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MaxFeature(nn.Module):
    """A conv (or linear) filter with ``2 * out_channels`` outputs and the max of the two halves.

    Args:
        in_channels: Input channels (features for ``linear``).
        out_channels: Output channels after the max.
        kernel_size, stride, padding: Of the conv filter.
        filter_type: ``conv2d`` or ``linear``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, filter_type: str = "conv2d"):
        super().__init__()
        self.out_channels = out_channels
        kind = filter_type.lower()
        if kind == "conv2d":
            self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)
        elif kind == "linear":
            self.filter = nn.Linear(in_channels, 2 * out_channels)
        else:
            raise ValueError(f"filter_type must be 'conv2d' or 'linear', got {filter_type!r}")

    def forward(self, x: Tensor) -> Tensor:
        a, b = torch.chunk(self.filter(x), 2, dim=1)
        return torch.max(a, b)


def light_cnn_features(in_channels: int) -> nn.Sequential:
    """The convolutional trunk (``features``): 128 px in, ``[B, 128, 8, 8]`` out."""
    pool = lambda: nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        MaxFeature(in_channels, 48, 5, 1, 2), pool(),
        MaxFeature(48, 48, 1, 1, 0), MaxFeature(48, 96, 3, 1, 1), pool(),
        MaxFeature(96, 96, 1, 1, 0), MaxFeature(96, 192, 3, 1, 1), pool(),
        MaxFeature(192, 192, 1, 1, 0), MaxFeature(192, 128, 3, 1, 1),
        MaxFeature(128, 128, 1, 1, 0), MaxFeature(128, 128, 3, 1, 1), pool(),
    )


class LightCNN(nn.Module):
    """DIC-GAN's discriminator: one real/fake logit per 128 x 128 face.

    Args:
        in_channels: Input image channels.
    """

    INPUT_SIZE = 128

    def __init__(self, in_channels: int):
        super().__init__()
        self.features = light_cnn_features(in_channels)
        self.classifier = nn.Sequential(MaxFeature(8 * 8 * 128, 256, filter_type="linear"),
                                        nn.LeakyReLU(0.2, True), nn.Linear(256, 1))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.INPUT_SIZE, self.INPUT_SIZE):
            raise ValueError(f"LightCNN judges {self.INPUT_SIZE}x{self.INPUT_SIZE} faces, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        return self.classifier(self.features(x).flatten(1))

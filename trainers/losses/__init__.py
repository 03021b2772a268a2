"""Losses of the MMEditing 0.16 zoo, with mmedit's semantics.

* :mod:`trainers.losses.pixel`: L1, MSE, Charbonnier with mmedit's masked reduction.
* :mod:`trainers.losses.vgg`: torchvision's VGG16/VGG19 feature stacks, loaded from a
  configured local file or URI (never downloaded implicitly).
* :mod:`trainers.losses.perceptual`: ``PerceptualLoss`` (perceptual + Gram style loss).
"""

from trainers.losses.perceptual import PerceptualLoss, gram_matrix
from trainers.losses.pixel import PIXEL_LOSSES, charbonnier_loss, l1_loss, mask_reduce, mse_loss, pixel_loss
from trainers.losses.vgg import VGGFeatures, load_vgg_features

__all__ = [
    "PIXEL_LOSSES",
    "PerceptualLoss",
    "VGGFeatures",
    "charbonnier_loss",
    "gram_matrix",
    "l1_loss",
    "load_vgg_features",
    "mask_reduce",
    "mse_loss",
    "pixel_loss",
]

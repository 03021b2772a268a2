"""Losses of the MMEditing 0.16 zoo, with mmedit's semantics: pixel, perceptual/style, adversarial.

* :mod:`trainers.losses.pixel`: L1, MSE, Charbonnier with mmedit's masked reduction.
* :mod:`trainers.losses.vgg`: torchvision's VGG16/VGG19 feature stacks, loaded from a
  configured local file or URI (never downloaded implicitly).
* :mod:`trainers.losses.perceptual`: ``PerceptualLoss`` (perceptual + Gram style loss).
* :mod:`trainers.losses.light_cnn`: DIC-GAN's ``LightCNNFeatureLoss`` (face-recognition features,
  weights from a configured file or URI).
* :mod:`trainers.losses.gan`: ``GANLoss`` (vanilla, lsgan, wgan, hinge, smgan), WGAN-GP,
  disc shift, and ESRGAN's relativistic-average terms.

Parity with mmedit 0.16.1 is checked against goldens by ``tests/trainers/test_losses.py``.
"""

from trainers.losses.gan import (
    GANLoss,
    disc_shift_loss,
    gradient_penalty_loss,
    ragan_discriminator_losses,
    ragan_generator_loss,
)
from trainers.losses.perceptual import PerceptualLoss, gram_matrix
from trainers.losses.pixel import PIXEL_LOSSES, charbonnier_loss, l1_loss, mask_reduce, mse_loss, pixel_loss
from trainers.losses.vgg import VGGFeatures, load_vgg_features

__all__ = [
    "GANLoss",
    "PIXEL_LOSSES",
    "PerceptualLoss",
    "VGGFeatures",
    "charbonnier_loss",
    "disc_shift_loss",
    "gradient_penalty_loss",
    "gram_matrix",
    "l1_loss",
    "load_vgg_features",
    "mask_reduce",
    "mse_loss",
    "pixel_loss",
    "ragan_discriminator_losses",
    "ragan_generator_loss",
]

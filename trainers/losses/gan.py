"""Adversarial losses as MMEditing 0.16 computes them: ``GANLoss``, WGAN-GP, disc shift, RaGAN.

``GANLoss`` covers the zoo's GAN types: ``vanilla`` (BCE on logits: SRGAN,
Real-ESRGAN, GLEAN, TTSR, DeepFill), ``lsgan`` (MSE), ``wgan`` (signed mean),
``hinge`` and ``smgan`` (AOT-GAN's soft-mask GAN). mmedit's behaviour is kept
as is, quirks included:

* ``loss_weight`` multiplies the generator's loss only; a discriminator loss
  (``is_disc=True``) is never weighted.
* ``hinge``: the discriminator gets ``mean(relu(1 - x))`` for real and
  ``mean(relu(1 + x))`` for fake; the generator gets ``-mean(x)`` whatever
  ``target_is_real`` says.
* ``smgan``: predictions whose size differs from the mask's are first resized to
  it (bilinear, ``align_corners=True``). The discriminator's target for fakes is
  the mask blurred by a 71x71, sigma-10 Gaussian (zero padding), not
  ``fake_label_val``. The generator's ``mse * mask / mask.mean()`` is averaged
  after the MSE is already a scalar, so the mask does not actually weight it.
* ``wgan`` ignores the label values.

ESRGAN trains with a ``vanilla`` ``GANLoss`` inside relativistic-average terms
that live in its restorer, not in the loss; :func:`ragan_generator_loss` and
:func:`ragan_discriminator_losses` write those out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAN_TYPES = ("vanilla", "lsgan", "wgan", "hinge", "smgan")


def gaussian_kernel_2d(kernel_size: int = 71, sigma: float = 10.0) -> Tensor:
    """Normalised ``[k,k]`` Gaussian, computed in float32 exactly as mmedit's ``GaussianBlur``."""
    args = [-((x - kernel_size // 2) ** 2) / float(2 * sigma**2) for x in range(kernel_size)]
    gauss = torch.exp(torch.tensor(args, dtype=torch.float32))
    gauss = gauss / gauss.sum()
    return gauss.unsqueeze(-1) @ gauss.unsqueeze(-1).t()


def gaussian_blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Blurs each channel of ``[N,C,H,W]`` ``x`` with a 2D ``kernel``, zero-padded to keep the size."""
    c = x.shape[1]
    weight = kernel.to(device=x.device, dtype=x.dtype).repeat(c, 1, 1, 1)
    pad = ((kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2)
    return F.conv2d(x, weight, padding=pad, stride=1, groups=c)


class GANLoss(nn.Module):
    """mmedit 0.16's ``GANLoss``.

    Args:
        gan_type: One of ``GAN_TYPES``.
        real_label_val: Target for real samples (vanilla, lsgan, smgan).
        fake_label_val: Target for fake samples (vanilla, lsgan).
        loss_weight: Factor on the generator's loss only.
    """

    def __init__(self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0,
                 loss_weight: float = 1.0):
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"unknown gan_type {gan_type!r}; known: {', '.join(GAN_TYPES)}")
        self.gan_type = gan_type
        self.real_label_val = real_label_val
        self.fake_label_val = fake_label_val
        self.loss_weight = loss_weight
        if gan_type == "smgan":
            self.register_buffer("blur_kernel", gaussian_kernel_2d(71, 10.0), persistent=False)

    def _label(self, pred: Tensor, target_is_real: bool) -> Tensor:
        value = self.real_label_val if target_is_real else self.fake_label_val
        return pred.new_ones(pred.size()) * value

    def _smgan(self, pred: Tensor, target_is_real: bool, is_disc: bool, mask: Tensor) -> Tensor:
        if pred.shape[2:] != mask.shape[2:]:
            pred = F.interpolate(pred, size=mask.shape[2:], mode="bilinear", align_corners=True)
        if is_disc:
            target = self._label(pred, True) if target_is_real else gaussian_blur(mask, self.blur_kernel).detach()
            return F.mse_loss(pred, target)
        return (F.mse_loss(pred, self._label(pred, target_is_real)) * mask / mask.mean()).mean()

    def forward(self, input: Tensor, target_is_real: bool, is_disc: bool = False,
                mask: Tensor | None = None) -> Tensor:
        """The loss of discriminator predictions ``input`` (logits) against real or fake.

        Args:
            input: Discriminator output.
            target_is_real: Whether the target label is the real one.
            is_disc: Loss for the discriminator (no ``loss_weight``; hinge's disc branch).
            mask: ``smgan`` only: the inpainting mask, ``[N,1,H,W]`` (1 = hole).
        """
        if self.gan_type == "hinge":
            if is_disc:
                loss = F.relu(1 + (-input if target_is_real else input)).mean()
            else:
                loss = -input.mean()
        elif self.gan_type == "smgan":
            if mask is None:
                raise ValueError("smgan needs the inpainting mask")
            loss = self._smgan(input, target_is_real, is_disc, mask)
        elif self.gan_type == "wgan":
            loss = -input.mean() if target_is_real else input.mean()
        elif self.gan_type == "vanilla":
            loss = F.binary_cross_entropy_with_logits(input, self._label(input, target_is_real))
        else:  # lsgan
            loss = F.mse_loss(input, self._label(input, target_is_real))
        return loss if is_disc else loss * self.loss_weight


def gradient_penalty_loss(discriminator: nn.Module, real_data: Tensor, fake_data: Tensor,
                          mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP's gradient penalty, as mmedit's ``gradient_penalty_loss`` (DeepFill v1).

    One interpolation weight per sample (``[N,1,1,1]``, drawn on the CPU from
    ``generator`` or torch's global generator, as mmedit). The norm is taken over
    the channel dimension only, per pixel, and then averaged over samples and
    pixels; with a mask, gradients are masked and the penalty divided by
    ``mask.mean()``. The graph is kept so the penalty can be backpropagated.
    """
    alpha = torch.rand(real_data.size(0), 1, 1, 1, generator=generator).to(real_data)
    interpolates = (alpha * real_data + (1.0 - alpha) * fake_data).detach().requires_grad_(True)
    disc_interpolates = discriminator(interpolates)
    gradients = torch.autograd.grad(
        outputs=disc_interpolates, inputs=interpolates, grad_outputs=torch.ones_like(disc_interpolates),
        create_graph=True, retain_graph=True, only_inputs=True,
    )[0]
    if mask is not None:
        gradients = gradients * mask
    penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    if mask is not None:
        penalty = penalty / torch.mean(mask)
    return penalty


def disc_shift_loss(pred: Tensor) -> Tensor:
    """``mean(pred**2)``: keeps WGAN discriminator outputs near zero (mmedit's ``DiscShiftLoss``,
    whose default ``loss_weight`` of 0.1 the caller applies)."""
    return torch.mean(pred**2)


def ragan_generator_loss(gan_loss: GANLoss, real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """ESRGAN's relativistic-average generator loss.

    ``(L(fake - mean(real), real) + L(real - mean(fake), fake)) / 2`` with generator
    weighting; ``real_pred`` (the discriminator on GT) is detached, while gradients
    reach the generator through both ``fake_pred`` and ``mean(fake_pred)``.

    Args:
        gan_loss: Usually a ``vanilla`` :class:`GANLoss`; its ``loss_weight`` applies to both terms.
        real_pred: Discriminator output on GT.
        fake_pred: Discriminator output on the generator's output (with grad).
    """
    real_pred = real_pred.detach()
    loss_fake = gan_loss(fake_pred - torch.mean(real_pred), target_is_real=True, is_disc=False)
    loss_real = gan_loss(real_pred - torch.mean(fake_pred), target_is_real=False, is_disc=False)
    return (loss_fake + loss_real) / 2


def ragan_discriminator_losses(gan_loss: GANLoss, real_pred: Tensor, fake_pred: Tensor) -> tuple[Tensor, Tensor]:
    """ESRGAN's relativistic-average discriminator losses ``(loss_d_real, loss_d_fake)``.

    ``loss_d_real = 0.5 * L(real - mean(fake).detach(), real)`` and
    ``loss_d_fake = 0.5 * L(fake - mean(real).detach(), fake)``, unweighted
    (discriminator losses). Each term sends gradients only through its own
    prediction, which is what mmedit's two backward passes amount to, so summing
    them and calling backward once gives the same gradients.

    Args:
        gan_loss: The :class:`GANLoss` the generator uses.
        real_pred: Discriminator output on GT (with grad).
        fake_pred: Discriminator output on the detached generator output (with grad).
    """
    loss_real = gan_loss(real_pred - torch.mean(fake_pred.detach()), target_is_real=True, is_disc=True) * 0.5
    loss_fake = gan_loss(fake_pred - torch.mean(real_pred.detach()), target_is_real=False, is_disc=True) * 0.5
    return loss_real, loss_fake

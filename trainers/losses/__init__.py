"""Losses of the MMEditing 0.16 zoo, with mmedit's semantics.

* :mod:`trainers.losses.pixel`: L1, MSE, Charbonnier with mmedit's masked reduction.
"""

from trainers.losses.pixel import PIXEL_LOSSES, charbonnier_loss, l1_loss, mask_reduce, mse_loss, pixel_loss

__all__ = ["PIXEL_LOSSES", "charbonnier_loss", "l1_loss", "mask_reduce", "mse_loss", "pixel_loss"]

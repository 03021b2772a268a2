"""Perceptual and style loss on VGG features, as MMEditing 0.16's ``PerceptualLoss``.

Used by SRGAN/ESRGAN/Real-ESRGAN/RealBasicVSR (VGG19, perceptual only), GLEAN and
TTSR (one layer, MSE) and the inpainting models PConv and AOT-GAN (perceptual plus
a Gram-matrix style loss). What mmedit does, and this keeps:

* A layer key ``'N'`` is the output of layer N of torchvision's ``features`` stack,
  whatever it is: ``'34'`` in VGG19 is conv5_4 before its ReLU (ESRGAN's
  pre-activation features), ``'1'`` is relu1_1.
* ``norm_img`` (default **True**) first maps inputs from [-1, 1] to [0, 1]; the SR
  configs switch it off because their images are already in [0, 1].
* ``use_input_norm`` (default True) then applies ImageNet mean/std.
* ``layer_weights_style=None`` (or equal to ``layer_weights``) computes the style
  loss on the perceptual layers with the perceptual weights.
* The Gram matrix is ``F F^T / (C*H*W)``; both terms use the same criterion
  (``'l1'`` or ``'mse'``, mean-reduced), weighted per layer and then by
  ``perceptual_weight``/``style_weight``; a weight of 0 returns ``None`` for that term.
* The target's features are taken from ``gt.detach()``.

Where mmedit runs a second VGG for style layers, one forward pass here collects
the union of both layer sets from a single stack (same weights, same values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.losses.vgg import load_vgg_features

_CRITERIA = {"l1": F.l1_loss, "mse": F.mse_loss}
# ImageNet statistics of images in [0, 1] (torchvision's normalisation).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def gram_matrix(x: Tensor) -> Tensor:
    """Channel Gram matrix of ``[N,C,H,W]`` features, normalised by ``C*H*W`` as mmedit."""
    n, c, h, w = x.size()
    features = x.view(n, c, w * h)
    return features.bmm(features.transpose(1, 2)) / (c * h * w)


def _layer_indices(weights: Mapping[str, float], name: str) -> dict[int, float]:
    try:
        return {int(k): float(v) for k, v in weights.items()}
    except ValueError:
        raise ValueError(f"{name}: keys must be layer indices like '34', got {sorted(weights)}") from None


class PerceptualLoss(nn.Module):
    """VGG perceptual loss with an optional style (Gram matrix) loss.

    Args:
        layer_weights: Weight per VGG layer index for the perceptual loss, e.g. ``{"34": 1.0}``.
        layer_weights_style: Weight per layer for the style loss; ``None`` uses ``layer_weights``.
        vgg_type: ``'vgg16'`` or ``'vgg19'``.
        use_input_norm: Normalise inputs with ImageNet mean/std (inputs then must be in [0, 1]).
        perceptual_weight: Factor on the perceptual term; 0 disables it (returns ``None``).
        style_weight: Factor on the style term; 0 disables it (returns ``None``).
        norm_img: Map inputs from [-1, 1] to [0, 1] first. mmedit's default is True.
        criterion: ``'l1'`` or ``'mse'``.
        vgg_weights: torchvision VGG weight file (path or URI), see :func:`load_vgg_features`.
        vgg_weights_field: Config field path of ``vgg_weights``, named in errors.
        vgg_sha256: Expected sha256 of the weight file.
        allow_random_init: Tests only: random VGG weights when ``vgg_weights`` is not set.
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float],
        layer_weights_style: Mapping[str, float] | None = None,
        vgg_type: str = "vgg19",
        use_input_norm: bool = True,
        perceptual_weight: float = 1.0,
        style_weight: float = 1.0,
        norm_img: bool = True,
        criterion: str = "l1",
        *,
        vgg_weights: str | os.PathLike | None = None,
        vgg_weights_field: str = "task.perceptual.vgg_weights",
        vgg_sha256: str | None = None,
        allow_random_init: bool = False,
    ):
        super().__init__()
        if criterion.lower() not in _CRITERIA:
            raise ValueError(f"criterion must be one of {', '.join(_CRITERIA)}, got {criterion!r}")
        self.criterion = _CRITERIA[criterion.lower()]
        self.layer_weights = _layer_indices(layer_weights, "layer_weights")
        style = layer_weights_style if layer_weights_style is not None else layer_weights
        self.layer_weights_style = _layer_indices(style, "layer_weights_style")
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.norm_img = norm_img
        self.use_input_norm = use_input_norm
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        deepest = max(self.layer_weights.keys() | self.layer_weights_style.keys())
        self.vgg = load_vgg_features(vgg_type, deepest + 1, vgg_weights, field=vgg_weights_field,
                                     sha256=vgg_sha256, allow_random_init=allow_random_init)

    def _features(self, x: Tensor) -> dict[int, Tensor]:
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        return self.vgg(x, self.layer_weights.keys() | self.layer_weights_style.keys())

    def _weighted_sum(self, x_feats: dict[int, Tensor], gt_feats: dict[int, Tensor],
                      weights: dict[int, float], transform) -> Tensor:
        total = 0
        for i in sorted(weights):  # mmedit sums in stack order
            total = total + self.criterion(transform(x_feats[i]), transform(gt_feats[i])) * weights[i]
        return total

    def forward(self, x: Tensor, gt: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Returns ``(perceptual_loss, style_loss)``; a term whose weight is 0 is ``None``.

        Args:
            x: Network output, ``[N,3,H,W]``, in [-1, 1] if ``norm_img`` else [0, 1].
            gt: Ground truth of the same shape (no gradient flows into it).
        """
        if self.norm_img:
            x = (x + 1.0) * 0.5
            gt = (gt + 1.0) * 0.5
        x_feats = self._features(x)
        gt_feats = self._features(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = self._weighted_sum(x_feats, gt_feats, self.layer_weights, lambda f: f) * self.perceptual_weight
        if self.style_weight > 0:
            style = self._weighted_sum(x_feats, gt_feats, self.layer_weights_style, gram_matrix) * self.style_weight
        return percep, style

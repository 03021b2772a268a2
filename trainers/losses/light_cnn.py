"""DIC-GAN's LightCNN feature loss (mmedit 0.16's ``LightCNNFeatureLoss``), weights from a file or URI.

The loss compares the LightCNN face-recognition features (``features`` stack of
:mod:`trainers.archs.light_cnn`, frozen, in eval mode) of the output and the GT: L1 (the zoo)
or MSE, times ``weight``; GT features are detached. Both images are in the generator's
(mean-subtracted) space, as the reference feeds them.

The zoo config names ``light_cnn_feature.pth`` (mmedit's download URL); mmedit 0.16.1 itself
never loads it for the zoo run (its config type ``FeatureLoss`` is not registered, and the key
map records the load as a no-op), but the trained DIC-GAN checkpoint stores the extractor under
``feature_loss.model.``. So ``weights`` accepts, as a local path, ``s3://`` or ``https://`` URI:

* a LightCNNFeature state dict (``features.N.filter.*``), bare or under ``state_dict`` (mmcv);
* an mmedit DIC-GAN checkpoint (its ``feature_loss.model.features.*`` keys);
* a LightCNN discriminator state dict (its ``classifier.*`` keys are ignored).

Nothing is downloaded unless the URI says so; without ``weights`` the loss refuses to start
unless ``allow_random_init`` (tests only) says otherwise.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.light_cnn import light_cnn_features
from trainers.checkpoint_io import CheckpointError, load_checkpoint_file, load_strict

PREFIXES = ("feature_loss.model.", "model.", "")  # mmedit DIC-GAN checkpoint, LightCNNFeature wrapper, bare


class LightCNNFeature(nn.Module):
    """The frozen LightCNN trunk (``features``); always in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.features = light_cnn_features(3)
        self.features.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LightCNNFeature":
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _feature_state(ckpt: dict, uri: str, field: str) -> dict[str, Tensor]:
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt.get("state_dict"), dict) else ckpt
    for prefix in PREFIXES:
        found = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix + "features.") and isinstance(v, Tensor)}
        if found:
            return found
    raise ValueError(f"{field}: {uri} holds no LightCNN 'features.*' tensors (nor 'feature_loss.model.features.*')")


def load_light_cnn_feature(weights: str | os.PathLike | None, *, field: str,
                           allow_random_init: bool = False) -> LightCNNFeature:
    """A frozen :class:`LightCNNFeature` with the weights at ``weights`` loaded strictly.

    Raises:
        ValueError: One line naming ``field`` when the weights are not set (and random init is
            not allowed), cannot be read, or do not fit the LightCNN trunk.
    """
    module = LightCNNFeature()
    if weights is None or os.fspath(weights) == "":
        if allow_random_init:
            return module
        raise ValueError(f"{field}: not set (LightCNN face-feature weights: mmedit's light_cnn_feature.pth "
                         "or a DIC-GAN zoo checkpoint, where the workers can read it)")
    uri = os.fspath(weights)
    try:
        ckpt = load_checkpoint_file(uri)
    except CheckpointError as err:
        raise ValueError(f"{field}: {err}") from None
    state = _feature_state(ckpt, uri, field)
    try:
        load_strict(module, state)
    except (CheckpointError, RuntimeError) as err:
        raise ValueError(f"{field}: {uri} does not fit the LightCNN trunk: {str(err).splitlines()[0]}") from None
    return module


class LightCNNFeatureLoss(nn.Module):
    """``weight * criterion(LightCNN(pred), LightCNN(gt).detach())``.

    Args:
        weights: Weight file or URI (see the module docstring).
        weight: Loss weight (the zoo: 0.1).
        criterion: ``l1`` (the zoo) or ``mse``.
        field: Config field that named ``weights``, for errors.
        allow_random_init: Random weights when ``weights`` is unset (tests only).
    """

    def __init__(self, weights: str | None, weight: float = 1.0, criterion: str = "l1", *,
                 field: str = "weights", allow_random_init: bool = False):
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.model = load_light_cnn_feature(weights, field=field, allow_random_init=allow_random_init)
        self.weight, self.criterion = weight, criterion

    def forward(self, pred: Tensor, gt: Tensor) -> Tensor:
        loss = F.l1_loss if self.criterion == "l1" else F.mse_loss
        return self.weight * loss(self.model(pred), self.model(gt).detach())

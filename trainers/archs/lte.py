"""LTE: the learnable texture extractor of TTSR (Yang et al., CVPR 2020).

Covers the ``extractor`` of the zoo configs ``ttsr-rec_x4_c64b16_g1_200k_CUFED`` and
``ttsr-gan_x4_c64b16_g1_500k_CUFED``: torchvision VGG19's first 12 ``features`` layers (conv1_1
to relu3_1), split after relu1_1 (``slice1``), relu2_1 (``slice2``) and relu3_1 (``slice3``),
behind a fixed ImageNet normalisation (``img_normalize``, a 1x1 conv whose weights are part of
the checkpoint). Its start is torchvision's ImageNet VGG19 (``from_torchvision_vgg19``:
``init_from.extractor: {source: vgg19-dcbb9e9d.pth, format: torchvision}``).

What the reference does that one might not expect:

* ``forward`` returns the three levels coarsest first: ``[relu3_1, relu2_1, relu1_1]``.
* Inputs are in [0, 1] (``pixel_range=1``), unlike the generator's [-1, 1]; the transferal
  perceptual loss feeds it ``(sr + 1) / 2``.
* ``img_normalize`` (mmedit's ``ImgNormalize``) is a frozen conv computing ``(x - mean) / std``
  with ``std`` scaled by ``pixel_range``; mmedit's ``requires_grad=False`` is applied to it only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainers.losses.vgg import VGG_CFGS

VGG_MEAN = (0.485, 0.456, 0.406)
VGG_STD = (0.229, 0.224, 0.225)
SLICES = {"slice1": range(0, 2), "slice2": range(2, 7), "slice3": range(7, 12)}


class ImgNormalize(nn.Conv2d):
    """``(x - pixel_range * mean) / std`` per channel as a frozen 1x1 conv (mmedit's ``ImgNormalize``)."""

    def __init__(self, pixel_range: float, img_mean, img_std, sign: int = -1):
        super().__init__(3, 3, 1)
        std = torch.tensor(img_std, dtype=torch.float32)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * pixel_range * torch.tensor(img_mean, dtype=torch.float32) / std
        self.requires_grad_(False)


class LTE(nn.Module):
    """VGG19 conv1_1..relu3_1 as three slices, returning three texture levels.

    Args:
        requires_grad: Train the VGG slices (the normalisation never trains).
        pixel_range: Input range (1 for [0, 1] images).
        load_pretrained_vgg: mmedit's switch for torchvision's download; here the VGG19 start comes
            from ``init_from.extractor`` (format ``torchvision``), so the argument is accepted and
            has no effect.
    """

    def __init__(self, requires_grad: bool = True, pixel_range: float = 1.0, load_pretrained_vgg: bool = True):
        super().__init__()
        self.img_normalize = ImgNormalize(pixel_range, VGG_MEAN, tuple(s * pixel_range for s in VGG_STD))
        layers = _first_vgg19_layers(12)
        for name, idx in SLICES.items():
            seq = nn.Sequential()
            for i in idx:
                seq.add_module(str(i), layers[i])
            setattr(self, name, seq)
        if not requires_grad:
            for name in SLICES:
                getattr(self, name).requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x`` [N,3,H,W] in [0, pixel_range] -> [level3 (H/4), level2 (H/2), level1 (H)]."""
        l1 = self.slice1(self.img_normalize(x))
        l2 = self.slice2(l1)
        l3 = self.slice3(l2)
        return [l3, l2, l1]


def _first_vgg19_layers(n: int) -> list[nn.Module]:
    """torchvision VGG19 ``features[:n]`` (3x3 convs, in-place ReLUs, 2x2 max-pools), built
    without the deeper layers (their init is most of a whole VGG's build time)."""
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG_CFGS["vgg19"]:
        if len(layers) >= n:
            break
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return layers[:n]


def from_torchvision_vgg19(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision's VGG19 ``features.<i>.*`` -> the LTE's ``slice<k>.<i>.*`` (conv1_1 to conv3_1)."""
    out = {}
    for name, idx in SLICES.items():
        for i in idx:
            for p in ("weight", "bias"):
                key = f"features.{i}.{p}"
                if key in state_dict:
                    out[f"{name}.{i}.{p}"] = state_dict[key]
    if len(out) != 10:
        raise ValueError("not a torchvision VGG19 state dict: conv layers 0, 2, 5, 7, 10 of 'features' missing")
    return out

"""Partial convolution, from Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018 (not an architecture: the building block of ``pconv``).

A partial convolution only looks at valid (mask = 1) inputs and rescales for how many of
them a window saw, so a hole does not drag the response towards zero; the mask it passes
on marks every output that saw at least one valid input, which lets holes shrink layer by
layer. Per output position, with window ``X`` and mask ``M`` (1 = valid):

* ``sum(M) > 0``: ``out = W . (X * M) * sum(1) / sum(M) + b``, updated mask 1;
* ``sum(M) = 0``: ``out = 0``, updated mask 0.

``sum(1)`` counts the whole window, zero-padded border positions included (they count as
holes in ``sum(M)``), so border outputs are scaled up as the paper's padding rule says.

Computed as in MMEditing 0.x (``PartialConv2d``), which fixes these details:

* ``multi_channel=True`` (the PConv zoo models): the mask has one channel per input channel
  and ``sum`` runs over channels too (``sum(1) = C_in * k * k``); every output channel gets
  the same updated mask, repeated ``C_out`` times. With ``multi_channel=False`` the mask has
  one channel and ``sum(1) = k * k``.
* The window sums are a convolution of the mask with the all-ones buffer
  ``weight_mask_updater`` (``[C_out, C_in, k, k]`` multi-channel, else ``[1, 1, k, k]``);
  it is a persistent buffer, so the zoo checkpoints carry it (25.78M ones in PConv's case).
* The ratio is ``sum(1) / (sum(M) + eps)`` with ``eps = 1e-8``; in float32 the eps vanishes
  for ``sum(M) >= 1``. (Unlike mmedit, the mask path always runs in float32, outside
  autocast: in float16 the eps underflows and all-hole windows give NaN, which mmedit
  avoids by asking for ``eps=1e-6`` under mixed precision.) The updated mask is
  ``clamp(sum(M), 0, 1)`` and the ratio is multiplied by it, so soft masks pass partial
  values on. The mask path runs without gradient.
* With a bias: ``out = ((conv(X * M) - b) * ratio + b) * updated_mask``; without one:
  ``out = conv(X * M) * ratio``. Both are the definition above for a binary mask.
* Without a mask the layer is a plain convolution.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.conv_module import Activation, activation, mmcv_conv_init_


class PartialConv2d(nn.Conv2d):
    """``nn.Conv2d`` that takes a validity mask and returns the updated mask with its output.

    Args:
        *args: As ``nn.Conv2d`` (``groups`` must stay 1).
        multi_channel: The mask has one channel per input channel (else one channel).
        eps: Added to the window's mask sum before dividing.
        **kwargs: As ``nn.Conv2d``.
    """

    def __init__(self, *args, multi_channel: bool = True, eps: float = 1e-8, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("partial convolution is defined here for groups=1 only")
        self.multi_channel = multi_channel
        self.eps = eps
        channels = (self.out_channels, self.in_channels) if multi_channel else (1, 1)
        self.register_buffer("weight_mask_updater", torch.ones(*channels, *self.kernel_size))
        self.window_numel = channels[1] * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor] | Tensor:
        """Returns ``(output, updated_mask)``, or the plain convolution when ``mask`` is None.

        Args:
            x: Features ``[B, C_in, H, W]``.
            mask: Validity mask, 1 = valid: ``[B, C_in, H, W]`` (multi-channel) or ``[B, 1, H, W]``.
        """
        if mask is None:
            return super().forward(x)
        want = x.shape[1] if self.multi_channel else 1
        if mask.dim() != 4 or mask.shape[1] != want:
            raise ValueError(f"mask must be [B, {want}, H, W] for this layer, got {list(mask.shape)}")
        # float32 even under autocast: in float16 the eps underflows and an all-hole window gives
        # 0 * inf = NaN (mmedit's advice is to raise eps to 1e-6 for mixed precision instead).
        with torch.no_grad(), torch.autocast(mask.device.type, enabled=False):
            window_sum = F.conv2d(mask.float(), self.weight_mask_updater.float(), None, self.stride, self.padding,
                                  self.dilation)
            updated_mask = torch.clamp(window_sum, 0, 1)
            ratio = self.window_numel / (window_sum + self.eps) * updated_mask
        raw = super().forward(x * mask)
        ratio, updated_mask = ratio.to(raw.dtype), updated_mask.to(mask.dtype)  # no-ops in float32
        if self.bias is None:
            return raw * ratio, updated_mask
        bias = self.bias.view(1, -1, 1, 1)
        return ((raw - bias) * ratio + bias) * updated_mask, updated_mask


class MaskConvNormAct(nn.Module):
    """Partial conv, optional batch norm, optional activation; carries the mask along.

    Attribute names ``conv`` / ``bn`` are mmcv's ``ConvModule`` ones (MMEditing's
    ``MaskConvModule``), as the zoo checkpoint keys need. Same rules as
    :class:`~trainers.archs.conv_module.ConvNormAct`: bias only without norm, mmcv's
    Kaiming (``fan_out``) init.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Conv stride.
        padding: Zero padding (of features and mask alike).
        norm: Add ``bn`` (BatchNorm2d) after the conv.
        act: ``"relu"``, ``"lrelu"`` (slope 0.2) or None.
        multi_channel: Per-channel mask (see :class:`PartialConv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        norm: bool = True,
        act: Activation = "relu",
        multi_channel: bool = True,
    ):
        super().__init__()
        self.conv = PartialConv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not norm, multi_channel=multi_channel
        )
        mmcv_conv_init_(self.conv, act)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = activation(act)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(features, updated_mask)``."""
        x, mask = self.conv(x, mask)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x, mask

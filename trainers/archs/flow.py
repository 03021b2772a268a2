"""Warping with optical flow, shared by the flow-based video networks (not an architecture).

SPyNet warps its supporting frame with the coarser level's flow; BasicVSR, IconVSR,
RealBasicVSR and BasicVSR++ warp propagated features with SPyNet's flow. All of them use
MMEditing 0.x's ``flow_warp``, whose conventions :func:`flow_warp` keeps: the flow is in
pixels, channel-last (``[N, H, W, 2]``, x then y), added to a pixel grid and normalised
with ``align_corners=True`` (pixel centres at -1 and +1), zeros outside by default.
"""

import torch
from torch import Tensor
from torch.nn import functional as F


def flow_warp(x: Tensor, flow: Tensor, interpolation: str = "bilinear", padding_mode: str = "zeros",
              align_corners: bool = True) -> Tensor:
    """Samples ``x`` at each pixel displaced by ``flow`` (backward warping).

    Args:
        x: Image or feature map ``[N, C, H, W]``.
        flow: Displacement in pixels ``[N, H, W, 2]``; ``[..., 0]`` along the width,
            ``[..., 1]`` along the height (not normalised to [-1, 1]).
        interpolation: ``grid_sample`` mode, ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``grid_sample`` padding: ``"zeros"``, ``"border"`` (SPyNet) or ``"reflection"``.
        align_corners: ``grid_sample``'s ``align_corners``; the grid normalisation below
            assumes True, as every caller in the zoo does.

    Returns:
        The warped ``[N, C, H, W]`` tensor.

    Raises:
        ValueError: If the spatial sizes of ``x`` and ``flow`` differ.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: input size {tuple(x.shape[-2:])} differs from flow size {tuple(flow.shape[1:3])}")
    h, w = x.shape[-2:]
    grid_y, grid_x = torch.meshgrid(torch.arange(0, h, device=flow.device, dtype=x.dtype),
                                    torch.arange(0, w, device=flow.device, dtype=x.dtype), indexing="ij")
    grid = torch.stack((grid_x, grid_y), 2) + flow  # [N, H, W, 2], absolute pixel positions
    norm_x = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    norm_y = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack((norm_x, norm_y), dim=3), mode=interpolation,
                         padding_mode=padding_mode, align_corners=align_corners)

"""The LIIF implicit decoder shared by ``liif_edsr`` and ``liif_rdn`` (mmedit's ``liif_net.py``).

LIIF: Chen et al., "Learning Continuous Image Representation with Local Implicit Image
Function", CVPR 2021.

Zoo configs: ``liif_edsr_norm_c64b16_g1_1000k_div2k`` (``liif_edsr``) and
``liif_rdn_norm_c64b16_g1_1000k_div2k`` (``liif_rdn``; mmedit's config file is
``liif_rdn_norm_x2-4_...``).

An encoder (EDSR or RDN without its upsampler) turns the LR image into a feature map; an MLP
(``imnet``, mmedit's ``MLPRefiner``) maps (feature at the nearest LR cell, coordinate relative to
that cell, optionally the query's cell size) to an RGB value, at any real-valued query
coordinate in [-1, 1]^2. So one network serves any output scale.

What the reference does that one might not expect:

- The encoder is built whole (upsampler included, ``upscale_factor`` 4 for RDN) and then only
  its trunk is kept *as attributes of the LIIF net itself*: checkpoint keys are
  ``conv_first``/``body``/``conv_after_body`` (EDSR) or ``sfe1``/``sfe2``/``rdbs``/``gff`` (RDN)
  next to ``imnet.layers.*``, with no ``encoder.`` prefix. EDSR's rgb mean is *not* applied
  here: the LIIF restorer normalises the input (``rgb_mean``/``rgb_std`` of the config; the task
  does it in restoray).
- ``imnet.in_dim`` in the config is ignored and recomputed: ``mid_channels * 9`` (feature unfold)
  ``+ 2`` (relative coordinate) ``+ 2`` (cell), 580 for 64 channels.
- Coordinates are (row, col) pairs, ``y`` first; ``grid_sample`` gets them flipped. Local
  ensemble shifts each query by +-1 LR cell radius plus ``1e-6``, clamps to ``+-(1 - 1e-6)``, and
  weights each of the four predictions by the area of the *diagonally opposite* rectangle.
- ``eval_bsize`` only applies with ``test_mode=True``: queries are then decoded in chunks of that
  many under ``no_grad`` (bounded memory); training always decodes every query at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def make_coord(shape: tuple[int, int], flatten: bool = True) -> Tensor:
    """Pixel-centre coordinates of an ``h x w`` grid in [-1, 1]: ``[h*w, 2]`` (or ``[h, w, 2]``),
    (row, col) order, row ``i`` at ``-1 + (2i + 1) / h``."""
    seqs = []
    for n in shape:
        r = 1 / n  # same arithmetic as the reference, so coordinates agree to the bit
        seqs.append(-1 + r + (2 * r) * torch.arange(n).float())
    coord = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return coord.view(-1, 2) if flatten else coord


class MLPRefiner(nn.Module):
    """Linear-ReLU stack (``layers``: Linear at even indices) applied on the last axis.

    Args:
        in_dim: Input features per query.
        out_dim: Output features per query (3 for RGB).
        hidden_list: Widths of the hidden layers.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_list: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden_list:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], -1)


def check_type(spec: dict[str, Any], want: str, what: str) -> dict[str, Any]:
    spec = dict(spec)
    kind = spec.pop("type", want)
    if kind != want:
        raise ValueError(f"{what}.type: must be {want!r}, got {kind!r}")
    return spec


class LIIFNet(nn.Module):
    """Shared implicit decoder; subclasses keep an encoder trunk and define ``gen_feature``.

    Args:
        mid_channels: Channels of the encoder's feature map.
        imnet: ``MLPRefiner`` arguments (``type``, ``in_dim`` optional and recomputed).
        local_ensemble: Blend the four nearest latent codes by area.
        feat_unfold: Concatenate each feature with its 3x3 neighbourhood.
        cell_decode: Feed the query's cell size to the MLP.
        eval_bsize: Query chunk size in ``test_mode`` (None: all at once).
    """

    def __init__(self, mid_channels: int, imnet: dict[str, Any], local_ensemble: bool, feat_unfold: bool,
                 cell_decode: bool, eval_bsize: int | None):
        super().__init__()
        if eval_bsize is not None and eval_bsize < 1:
            raise ValueError(f"eval_bsize: must be positive or None, got {eval_bsize}")
        self.local_ensemble, self.feat_unfold, self.cell_decode = local_ensemble, feat_unfold, cell_decode
        self.eval_bsize = eval_bsize
        spec = check_type(imnet, "MLPRefiner", "imnet")
        spec.pop("in_dim", None)
        in_dim = mid_channels * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = MLPRefiner(in_dim, **spec)

    def gen_feature(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, coord: Tensor, cell: Tensor, test_mode: bool = False) -> Tensor:
        """``x`` ``[B,3,h,w]`` (normalised), ``coord``/``cell`` ``[B,Q,2]`` -> ``[B,Q,3]``."""
        feature = self.gen_feature(x)
        if test_mode and self.eval_bsize is not None:
            return self.query_chunked(feature, coord, cell, self.eval_bsize)
        return self.query_rgb(feature, coord, cell)

    def query_chunked(self, feature: Tensor, coord: Tensor, cell: Tensor, chunk: int | None) -> Tensor:
        """``query_rgb`` over ``chunk`` queries at a time (all at once for None), without gradients."""
        with torch.no_grad():
            if chunk is None:
                return self.query_rgb(feature, coord, cell)
            parts = [self.query_rgb(feature, coord[:, i:i + chunk], cell[:, i:i + chunk])
                     for i in range(0, coord.shape[1], chunk)]
            return torch.cat(parts, dim=1)

    def query_rgb(self, feature: Tensor, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        """Decode RGB at every query coordinate from the feature map (reference: yinboc/liif)."""
        b, q = coord.shape[:2]
        h, w = feature.shape[-2:]
        if self.feat_unfold:
            feature = F.unfold(feature, 3, padding=1).view(b, feature.shape[1] * 9, h, w)
        shifts, eps = ([-1, 1], 1e-6) if self.local_ensemble else ([0], 0.0)
        rx, ry = 1 / h, 1 / w  # half an LR cell in [-1, 1] units
        feat_coord = make_coord((h, w), flatten=False).to(coord).permute(2, 0, 1)[None].expand(b, 2, h, w)
        preds, areas = [], []
        for vx in shifts:
            for vy in shifts:
                shifted = coord.clone()
                shifted[:, :, 0] += vx * rx + eps
                shifted[:, :, 1] += vy * ry + eps
                grid = shifted.clamp_(-1 + 1e-6, 1 - 1e-6).flip(-1).unsqueeze(1)
                q_feat = F.grid_sample(feature, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
                rel = coord - q_coord
                rel[:, :, 0] *= h
                rel[:, :, 1] *= w
                inputs = [q_feat, rel]
                if self.cell_decode:
                    rel_cell = cell.clone()
                    rel_cell[:, :, 0] *= h
                    rel_cell[:, :, 1] *= w
                    inputs.append(rel_cell)
                preds.append(self.imnet(torch.cat(inputs, dim=-1).view(b * q, -1)).view(b, q, -1))
                areas.append((rel[:, :, 0] * rel[:, :, 1]).abs() + 1e-9)
        total = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:
            areas = areas[::-1]  # each corner weighted by the opposite rectangle
        out = 0
        for pred, area in zip(preds, areas):
            out = out + pred * (area / total).unsqueeze(-1)
        return out

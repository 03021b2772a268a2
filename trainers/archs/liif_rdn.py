"""LIIF with an RDN encoder: Chen et al., "Learning Continuous Image Representation with Local
Implicit Image Function", CVPR 2021.

Zoo config: ``liif_rdn_norm_c64b16_g1_1000k_div2k`` (mmedit's file:
``liif_rdn_norm_x2-4_c64b16_g1_1000k_div2k.py``).

The RDN is built whole, as mmedit does, and only its trunk is kept, as attributes of this
module (``sfe1``, ``sfe2``, ``rdbs``, ``gff``): the zoo checkpoint has no ``encoder.`` prefix.
No input normalisation here (the LIIF task normalises with the config's ``rgb_mean``/``rgb_std``).
The decoder, and what it does that one might not expect: ``trainers/archs/liif_net.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainers.archs.liif_net import LIIFNet, check_type
from trainers.archs.rdn import RDN


class LIIFRDN(LIIFNet):
    """LIIF with an RDN trunk (``sfe1``, ``sfe2``, ``rdbs``, ``gff``, skip from ``sfe1``).

    Args:
        encoder: RDN arguments (``type: RDN`` optional); its upsampler and output conv are dropped.
        imnet, local_ensemble, feat_unfold, cell_decode, eval_bsize: see :class:`LIIFNet`.
    """

    def __init__(self, encoder: dict[str, Any], imnet: dict[str, Any], local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True, eval_bsize: int | None = None):
        rdn = RDN(**check_type(encoder, "RDN", "encoder"))
        super().__init__(rdn.sfe1.out_channels, imnet, local_ensemble, feat_unfold, cell_decode, eval_bsize)
        self.sfe1, self.sfe2, self.rdbs, self.gff = rdn.sfe1, rdn.sfe2, rdn.rdbs, rdn.gff

    def gen_feature(self, x: Tensor) -> Tensor:
        sfe1 = self.sfe1(x)
        feat = self.sfe2(sfe1)
        blocks = []
        for rdb in self.rdbs:
            feat = rdb(feat)
            blocks.append(feat)
        return self.gff(torch.cat(blocks, 1)) + sfe1

"""LIIF with an EDSR encoder: Chen et al., "Learning Continuous Image Representation with Local
Implicit Image Function", CVPR 2021.

Zoo config: ``liif_edsr_norm_c64b16_g1_1000k_div2k``.

The EDSR is built whole, as mmedit does, and only its trunk is kept, as attributes of this
module (``conv_first``, ``body``, ``conv_after_body``): the zoo checkpoint has no ``encoder.``
prefix. No input normalisation here (the LIIF task normalises with the config's ``rgb_mean``/``rgb_std``).
The decoder, and what it does that one might not expect: ``trainers/archs/liif_net.py``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from trainers.archs.edsr import EDSR
from trainers.archs.liif_net import LIIFNet, check_type


class LIIFEDSR(LIIFNet):
    """LIIF with an EDSR trunk (``conv_first``, ``body``, ``conv_after_body``, long skip).

    Args:
        encoder: EDSR arguments (``type: EDSR`` optional); its upsampler is dropped.
        imnet, local_ensemble, feat_unfold, cell_decode, eval_bsize: see :class:`LIIFNet`.
    """

    def __init__(self, encoder: dict[str, Any], imnet: dict[str, Any], local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True, eval_bsize: int | None = None):
        edsr = EDSR(**check_type(encoder, "EDSR", "encoder"))
        super().__init__(edsr.conv_first.out_channels, imnet, local_ensemble, feat_unfold, cell_decode, eval_bsize)
        self.conv_first, self.body, self.conv_after_body = edsr.conv_first, edsr.body, edsr.conv_after_body

    def gen_feature(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        return self.conv_after_body(self.body(feat)) + feat

"""TTSR: Texture Transformer Network for Image Super-Resolution (Yang et al., CVPR 2020).

Covers the generator (``TTSRNet``) of the zoo configs ``ttsr-rec_x4_c64b16_g1_200k_CUFED`` and
``ttsr-gan_x4_c64b16_g1_500k_CUFED``, and the parameter-free :class:`SearchTransformer` (mmedit's
``SearchTransformer`` component: relevance embedding, hard and soft attention) that feeds it. The
texture extractor is ``trainers/archs/lte.py``; the discriminator ``trainers/archs/ttsr_disc.py``.

What the reference does that one might not expect:

* The generator takes three inputs, ``forward(x, soft_attention, textures)``: the LR image in
  [-1, 1] (mmedit normalises ``lq`` and ``gt`` with mean = std = 127.5) and the transferred
  textures, coarsest first (256 channels at LR size, 128 at 2x, 64 at 4x for the zoo widths);
  its output is clamped to [-1, 1].
* The soft attention is used raw (a cosine similarity, not a sigmoid) as a multiplier on the
  fused texture features; at 2x and 4x it is bicubically upsampled (``align_corners=False``).
* Cross-scale feature integration upsamples by bicubic interpolation followed by a ReLU'd 1x1
  conv and downsamples by stride-2 3x3 convs, every branch ReLU'd.
* The search compares 3x3 patches of the level-3 (coarsest) LTE features of the LR-up image and
  of the down-up-sampled reference (each L2-normalised), takes the arg-max per query position,
  and copies the reference's value patches (3x3 at level 3, 6x6 / 12x12 with stride 2 / 4 at the
  finer levels), folding them back with a division by 9 -- the overlap count of the 3x3 case,
  used at every level.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainers.archs.blocks import PixelShufflePack, ResidualBlockNoBN


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


def _conv1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0)


def _blocks(n: int, channels: int, res_scale: float) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlockNoBN(channels, res_scale) for _ in range(n)])


def _up(x: Tensor, factor: int) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)


class SFE(nn.Module):
    """Structural feature encoder: conv, residual trunk, conv, long skip."""

    def __init__(self, in_channels: int, mid_channels: int, num_blocks: int, res_scale: float):
        super().__init__()
        self.conv_first = _conv3(in_channels, mid_channels)
        self.body = _blocks(num_blocks, mid_channels, res_scale)
        self.conv_last = _conv3(mid_channels, mid_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv_first(x))
        return self.conv_last(self.body(x)) + x


class CSFI2(nn.Module):
    """Cross-scale feature integration of the 1x and 2x branches."""

    def __init__(self, mid_channels: int):
        super().__init__()
        c = mid_channels
        self.conv1to2 = _conv1(c, c)
        self.conv2to1 = _conv3(c, c, stride=2)
        self.conv_merge1 = _conv3(2 * c, c)
        self.conv_merge2 = _conv3(2 * c, c)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        x12 = F.relu(self.conv1to2(_up(x1, 2)))
        x21 = F.relu(self.conv2to1(x2))
        return (F.relu(self.conv_merge1(torch.cat((x1, x21), 1))),
                F.relu(self.conv_merge2(torch.cat((x2, x12), 1))))


class CSFI3(nn.Module):
    """Cross-scale feature integration of the 1x, 2x and 4x branches."""

    def __init__(self, mid_channels: int):
        super().__init__()
        c = mid_channels
        self.conv1to2 = _conv1(c, c)
        self.conv1to4 = _conv1(c, c)
        self.conv2to1 = _conv3(c, c, stride=2)
        self.conv2to4 = _conv1(c, c)
        self.conv4to1_1 = _conv3(c, c, stride=2)
        self.conv4to1_2 = _conv3(c, c, stride=2)
        self.conv4to2 = _conv3(c, c, stride=2)
        self.conv_merge1 = _conv3(3 * c, c)
        self.conv_merge2 = _conv3(3 * c, c)
        self.conv_merge4 = _conv3(3 * c, c)

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x12 = F.relu(self.conv1to2(_up(x1, 2)))
        x14 = F.relu(self.conv1to4(_up(x1, 4)))
        x21 = F.relu(self.conv2to1(x2))
        x24 = F.relu(self.conv2to4(_up(x2, 2)))
        x41 = F.relu(self.conv4to1_2(F.relu(self.conv4to1_1(x4))))
        x42 = F.relu(self.conv4to2(x4))
        return (F.relu(self.conv_merge1(torch.cat((x1, x21, x41), 1))),
                F.relu(self.conv_merge2(torch.cat((x2, x12, x42), 1))),
                F.relu(self.conv_merge4(torch.cat((x4, x14, x24), 1))))


class MergeFeatures(nn.Module):
    """The three branches merged at 4x, then two convs to the image, clamped to [-1, 1]."""

    def __init__(self, mid_channels: int, out_channels: int):
        super().__init__()
        c = mid_channels
        self.conv1to4 = _conv1(c, c)
        self.conv2to4 = _conv1(c, c)
        self.conv_merge = _conv3(3 * c, c)
        self.conv_last1 = _conv3(c, c // 2)
        self.conv_last2 = _conv1(c // 2, out_channels)

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> Tensor:
        x14 = F.relu(self.conv1to4(_up(x1, 4)))
        x24 = F.relu(self.conv2to4(_up(x2, 2)))
        x = F.relu(self.conv_merge(torch.cat((x4, x14, x24), 1)))
        return self.conv_last2(self.conv_last1(x)).clamp(-1, 1)


class TTSRNet(nn.Module):
    """The TTSR main network (x4): LR features fused with transferred textures at 1x, 2x, 4x.

    Args:
        in_channels: Image channels in.
        out_channels: Image channels out.
        mid_channels: Feature width.
        texture_channels: Width of the finest texture level (the coarser ones are 2x and 4x it).
        num_blocks: Residual blocks of the encoder and of each branch of stages 1, 2, 3.
        res_scale: Residual scaling of every block.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, mid_channels: int = 64,
                 texture_channels: int = 64, num_blocks=(16, 16, 8, 4), res_scale: float = 1.0):
        super().__init__()
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks: needs 4 counts (encoder, stages 1-3), got {list(num_blocks)}")
        c, t = mid_channels, texture_channels
        self.texture_channels = t
        self.sfe = SFE(in_channels, c, num_blocks[0], res_scale)
        self.conv_first1 = _conv3(4 * t + c, c)
        self.res_block1 = _blocks(num_blocks[1], c, res_scale)
        self.conv_last1 = _conv3(c, c)
        self.up1 = PixelShufflePack(c, c, 2, 3)
        self.conv_first2 = _conv3(2 * t + c, c)
        self.csfi2 = CSFI2(c)
        self.res_block2_1 = _blocks(num_blocks[2], c, res_scale)
        self.res_block2_2 = _blocks(num_blocks[2], c, res_scale)
        self.conv_last2_1 = _conv3(c, c)
        self.conv_last2_2 = _conv3(c, c)
        self.up2 = PixelShufflePack(c, c, 2, 3)
        self.conv_first3 = _conv3(t + c, c)
        self.csfi3 = CSFI3(c)
        self.res_block3_1 = _blocks(num_blocks[3], c, res_scale)
        self.res_block3_2 = _blocks(num_blocks[3], c, res_scale)
        self.res_block3_3 = _blocks(num_blocks[3], c, res_scale)
        self.conv_last3_1 = _conv3(c, c)
        self.conv_last3_2 = _conv3(c, c)
        self.conv_last3_3 = _conv3(c, c)
        self.merge_features = MergeFeatures(c, out_channels)

    def forward(self, x: Tensor, soft_attention: Tensor, textures) -> Tensor:
        """``x`` [N,C,h,w] in [-1, 1], ``soft_attention`` [N,1,h,w], ``textures`` coarsest first
        -> [N,C,4h,4w] in [-1, 1]."""
        if textures[-1].shape[1] != self.texture_channels:
            raise ValueError(f"textures: finest level has {textures[-1].shape[1]} channels, "
                             f"texture_channels is {self.texture_channels}")
        x1 = self.sfe(x)
        x1 = x1 + self.conv_first1(torch.cat((x1, textures[0]), 1)) * soft_attention
        x1 = x1 + self.conv_last1(self.res_block1(x1))
        # stage 2: 1x and 2x branches
        x22 = F.relu(self.up1(x1))
        x22 = x22 + self.conv_first2(torch.cat((x22, textures[1]), 1)) * _up(soft_attention, 2)
        r21, r22 = self.csfi2(x1, x22)
        x21 = x1 + self.conv_last2_1(self.res_block2_1(r21))
        x22 = x22 + self.conv_last2_2(self.res_block2_2(r22))
        # stage 3: 1x, 2x and 4x branches
        x33 = F.relu(self.up2(x22))
        x33 = x33 + self.conv_first3(torch.cat((x33, textures[2]), 1)) * _up(soft_attention, 4)
        r31, r32, r33 = self.csfi3(x21, x22, x33)
        x31 = x21 + self.conv_last3_1(self.res_block3_1(r31))
        x32 = x22 + self.conv_last3_2(self.res_block3_2(r32))
        x33 = x33 + self.conv_last3_3(self.res_block3_3(r33))
        return self.merge_features(x31, x32, x33)


class SearchTransformer(nn.Module):
    """Search and transfer: for each LR position, the most relevant reference patch.

    Holds no parameters (the zoo checkpoint has no ``transformer.`` keys), so it is not a network
    role; the ``ttsr`` task calls it between the extractor and the generator.
    """

    def forward(self, lq_up: Tensor, ref_downup: Tensor, refs) -> tuple[Tensor, list[Tensor]]:
        """Args: ``lq_up`` and ``ref_downup``: level-3 LTE features [N,C,H,W] (query, key);
        ``refs``: the reference's LTE features, coarsest first (values).

        Returns:
            ``(soft_attention [N,1,H,W], textures)``: the best cosine relevance per query
            position and, per level, the value patches found there folded back into a map.
        """
        index, best = self.search(lq_up, ref_downup)
        h, w = lq_up.shape[-2:]
        return best.view(best.shape[0], 1, h, w), [self.transfer(v, index, i, h, w) for i, v in enumerate(refs)]

    @staticmethod
    def search(query_feat: Tensor, key_feat: Tensor) -> tuple[Tensor, Tensor]:
        """Hard attention: arg-max and max over key positions of the cosine similarity between
        3x3 patches of ``query_feat`` and ``key_feat``; both ``[N, H*W]`` (query positions)."""
        query = F.normalize(F.unfold(query_feat, 3, padding=1), dim=1)  # [N, C*9, Hq*Wq]
        key = F.normalize(F.unfold(key_feat, 3, padding=1), dim=1)  # [N, C*9, Hk*Wk]
        relevance = torch.bmm(key.transpose(1, 2), query)  # [N, Hk*Wk, Hq*Wq]
        best, index = relevance.max(dim=1)
        return index, best

    @staticmethod
    def transfer(value_feat: Tensor, index: Tensor, level: int, h: int, w: int) -> Tensor:
        """Level ``level`` (0 = coarsest) of the reference: its ``3*2^level`` patches at the chosen
        positions, folded to ``(h*2^level, w*2^level)`` and divided by 9."""
        s = 2 ** level
        patches = F.unfold(value_feat, 3 * s, padding=s, stride=s)  # [N, C*k*k, Hk*Wk]
        picked = torch.gather(patches, 2, index[:, None, :].expand(-1, patches.shape[1], -1))
        return F.fold(picked, (h * s, w * s), 3 * s, padding=s, stride=s) / 9.0

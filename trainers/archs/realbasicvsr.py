"""RealBasicVSR: BasicVSR behind an image-cleaning module, for real-world video SR (x4).

Paper: Chan et al., "Investigating Tradeoffs in Real-World Video Super-Resolution", CVPR 2022.
Zoo configs: ``realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds`` (pre-training, L1 only) and
``realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds`` (GAN fine-tuning).

As MMEditing 0.x's ``RealBasicVSRNet``:

* ``image_cleaning`` (``ResidualBlocksWithInputConv(3, mid, num_cleaning_blocks)`` + a conv to 3
  channels) predicts a residue that is added to every frame; it is applied up to three times,
  stopping as soon as the mean absolute residue of the whole batch falls below
  ``dynamic_refine_thres / 255``. The zoo's 255 means "always exactly once" for images in
  [0, 1]. The stopping test looks at the batch, so a frame's result depends on its batch-mates
  when the threshold is lower;
* the cleaned clip goes through ``basicvsr`` (a :class:`BasicVSRNet` with
  ``num_propagation_blocks``), whose ``spynet`` is frozen (``requires_grad_(False)``) at
  construction, always; ``is_fix_cleaning`` freezes ``image_cleaning`` too;
* ``forward(lqs, return_lqs=True)`` returns ``(outputs, cleaned_lqs)``: mmedit's
  ``RealBasicVSR.train_step`` asks for it (the cleaning loss compares the cleaned LQ with the
  downscaled GT); evaluation calls it without, and gets the output tensor alone.

Differences: with ``is_sequential_cleaning`` mmedit adds the residue into the caller's tensor in
place: the input batch is overwritten (and returned as the cleaned clip), and a backward pass
fails ("modified by an inplace operation"), so it only serves inference. This port cleans frame
by frame into new tensors: same values, input untouched, trainable. As in ``basicvsr``, mmedit's
H, W >= 64 assertion is not repeated.
"""

import os

import torch
from torch import Tensor, nn

from trainers.archs.basicvsr import BasicVSRNet, ResidualBlocksWithInputConv, check_clip

MAX_CLEANING_ROUNDS = 3  # "determined empirically" in the reference


class RealBasicVSRNet(nn.Module):
    """RealBasicVSR generator (see the module docstring).

    Args:
        mid_channels: Feature channels of the cleaning module and of BasicVSR.
        num_propagation_blocks: Residual blocks per BasicVSR propagation branch.
        num_cleaning_blocks: Residual blocks of the cleaning module.
        dynamic_refine_thres: Stop cleaning once the mean |residue| is below this / 255.
        spynet_pretrained: Path or URI of SPyNet weights to start from (None: random).
        is_fix_cleaning: Freeze the cleaning module's weights.
        is_sequential_cleaning: Clean one frame at a time (less memory, same result).
    """

    def __init__(self, mid_channels: int = 64, num_propagation_blocks: int = 20, num_cleaning_blocks: int = 20,
                 dynamic_refine_thres: float = 255, spynet_pretrained: str | os.PathLike | None = None,
                 is_fix_cleaning: bool = False, is_sequential_cleaning: bool = False):
        super().__init__()
        self.dynamic_refine_thres = dynamic_refine_thres / 255.0
        self.is_sequential_cleaning = is_sequential_cleaning
        self.image_cleaning = nn.Sequential(
            ResidualBlocksWithInputConv(3, mid_channels, num_cleaning_blocks),
            nn.Conv2d(mid_channels, 3, 3, 1, 1, bias=True),
        )
        if is_fix_cleaning:
            self.image_cleaning.requires_grad_(False)
        self.basicvsr = BasicVSRNet(mid_channels, num_propagation_blocks, spynet_pretrained)
        self.basicvsr.spynet.requires_grad_(False)

    def clean(self, lqs: Tensor) -> Tensor:
        """The cleaned clip ``[N, T, 3, H, W]`` (one to three cleaning rounds)."""
        n, t, c, h, w = lqs.shape
        for _ in range(MAX_CLEANING_ROUNDS):
            if self.is_sequential_cleaning:
                frames, residues = [], []
                for i in range(t):
                    residue = self.image_cleaning(lqs[:, i])
                    frames.append(lqs[:, i] + residue)
                    residues.append(residue)
                lqs, residues = torch.stack(frames, dim=1), torch.stack(residues, dim=1)
            else:  # frames folded into the batch, cleaned at once
                flat = lqs.reshape(-1, c, h, w)
                residues = self.image_cleaning(flat)
                lqs = (flat + residues).view(n, t, c, h, w)
            if torch.mean(torch.abs(residues)) < self.dynamic_refine_thres:
                break
        return lqs

    def forward(self, lqs: Tensor, return_lqs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``[N, T, 3, H, W]`` -> ``[N, T, 3, 4H, 4W]``, plus the cleaned clip if ``return_lqs``."""
        check_clip("RealBasicVSRNet", lqs)
        lqs = self.clean(lqs)
        outputs = self.basicvsr(lqs)
        return (outputs, lqs) if return_lqs else outputs

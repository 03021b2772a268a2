"""GLEAN's sampler: the image SR sampler on whole aligned faces, with validation always on
MATLAB-bicubic LR.

Training is :class:`trainers.samplers.sr.SRSampler`'s (``gt_size`` = the image size, so the
"crop" keeps the whole face; horizontal flip only; the preset makes the LR: ``bicubic`` for the
BIx8/BIx16 configs, ``glean`` for the blind FFHQ/CelebA-HQ x8 config). Every GLEAN config
evaluates on pre-made ``BIx8_down``/``BIx16_down`` folders, so validation LR is the ``bicubic``
preset whatever the training preset is (a shard's own ``lq.png`` still wins).
"""

from __future__ import annotations

import numpy as np

from trainers.samplers.sr import SRDataConfig, SRSampler


class GLEANSampler(SRSampler):
    def __init__(self, data: SRDataConfig):
        super().__init__(data)
        self._val = SRSampler(data.model_copy(update={"degradation": data.degradation.model_copy(
            update={"preset": "bicubic", "device": "cpu"})}))

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self._val.val(members, rng)

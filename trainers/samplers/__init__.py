"""Samplers: the numpy side of a model family, run inside the Ray Data actors.

A sampler turns the raw members of one shard sample (``{"gt.png": bytes, ..., "__key__": str}``)
into one training or validation sample with the batch-schema keys of ``DESIGN.md`` (``lq``,
``gt``, ``mask``, ``trimap``, ...), as uint8 channels-last images or numeric arrays. Every random
number comes from the generator the stream passes in, seeded from (run seed, epoch, sample key),
so a sample is the same whichever actor makes it and after any resume.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Sampler(Protocol):
    def train(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]: ...

    def val(self, members: dict[str, bytes], rng: np.random.Generator) -> dict[str, np.ndarray]: ...

    # Optional: ``needs(split)`` -> {member suffix: the config field that makes it needed}, for
    # ``split`` "train" or "val". The driver compares it with the shard manifest's ``members``
    # (what every sample holds) before Ray starts, so ``preset: paired`` on GT-only shards is one
    # line naming ``task.data.degradation.preset`` instead of a worker traceback.

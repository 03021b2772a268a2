"""Per-sample random generators derived from (run seed, epoch, sample key).

Every random choice a sample sees (crop position, flips, degradation
parameters) comes from its own generator, so the result does not depend on
which worker or actor processed it, in which order, or whether the run was
resumed in between.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_digest(key: str) -> int:
    """A stable 64-bit integer for a sample key (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, key_digest(key)]))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Generator for per-epoch decisions (shard order), independent of sample generators."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x5EED]))

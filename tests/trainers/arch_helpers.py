"""What the per-family architecture tests share: the zoo key maps in ``tests/data``, building a
network with a zoo config's own constructor arguments, and a one-thread fixture."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from trainers.archs import build_arch

KEY_DIR = Path(__file__).resolve().parents[1] / "data" / "mmedit_checkpoint_keys"


def key_map(config: str) -> dict:
    """The key map of a zoo config (keys, shapes, constructor arguments), as ``../shared/reference`` has it."""
    return json.loads((KEY_DIR / f"{config}.json").read_text())


@functools.cache
def zoo_build(arch: str, config: str) -> torch.nn.Module:
    """``arch`` built with the generator arguments the key map of ``config`` records (seeded)."""
    torch.manual_seed(0)
    return build_arch(arch, **key_map(config)["generator"]["kwargs"])


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: small convs gain nothing from two on a shared two-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

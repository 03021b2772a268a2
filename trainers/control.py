"""Test hooks of the train loop (no Ray here: ``trainers/loop.py`` is the Ray side).

Consumed keys. With ``RESTORAY_DEBUG_KEYS_FILE`` set in the driver's environment, the stream
carries each sample's ``epoch/key`` as a fixed-width byte column and every rank appends
``<step> <epoch/key>`` lines to ``<file>.rank<r>`` (on the worker's machine) for each batch it
trains on. The fault tests compare these records with an uninterrupted run's; they also set
``RESTORAY_DEBUG_STEP_SLEEP_S`` (a pause after each step) so that a tiny run lasts long enough
for a fault to land in the middle of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

KEYS_ENV = "RESTORAY_DEBUG_KEYS_FILE"
SLEEP_ENV = "RESTORAY_DEBUG_STEP_SLEEP_S"  # seconds added to each step: lets fault tests land mid-run
KEY_COLUMN = "debug_sample_key"
KEY_WIDTH = 96


def encode_keys(keys: list[str]) -> np.ndarray:
    """``epoch/key`` strings as a (N, KEY_WIDTH) uint8 array (Ray Train makes columns tensors)."""
    out = np.zeros((len(keys), KEY_WIDTH), np.uint8)
    for i, key in enumerate(keys):
        raw = key.encode()[:KEY_WIDTH]
        out[i, : len(raw)] = np.frombuffer(raw, np.uint8)
    return out


def decode_keys(column) -> list[str]:
    array = column.cpu().numpy() if isinstance(column, torch.Tensor) else np.asarray(column)
    return [bytes(row).rstrip(b"\0").decode() for row in array.astype(np.uint8)]


class KeyRecorder:
    """Appends ``<step> <epoch/key>`` lines for one rank (the test hook above)."""

    def __init__(self, path: str, rank: int):
        self.path = Path(f"{path}.rank{rank}")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, step: int, column) -> None:
        with open(self.path, "a") as f:
            f.writelines(f"{step} {key}\n" for key in decode_keys(column))
            f.flush()
            os.fsync(f.fileno())


def read_key_records(path: str, rank: int) -> list[tuple[int, str]]:
    """The (step, epoch/key) records of one rank, in the order they were written."""
    lines = Path(f"{path}.rank{rank}").read_text().splitlines()
    return [(int(step), key) for step, key in (line.split(" ", 1) for line in lines)]

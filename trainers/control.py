"""What the driver tells a running loop, and what the loop can record for tests.

Stopping. A driver that receives SIGTERM (a spot node going away, ``ray job stop``) cannot
simply exit: its Ray Train controller and workers die with it, and the work since the last
checkpoint is lost. It sets a :class:`StopSignal` (a tiny actor the driver owns) instead; rank 0
polls it without blocking (:class:`StopWatch`), every rank agrees on it at each step boundary
over a CPU (gloo) group, so all ranks stop after the same step, checkpoint it and return.

Consumed keys. With ``RESTORAY_DEBUG_KEYS_FILE`` set in the driver's environment, the stream
carries each sample's ``epoch/key`` as a fixed-width byte column and every rank appends
``<step> <epoch/key>`` lines to ``<file>.rank<r>`` (on the worker's machine) for each batch it
trains on. The fault tests compare these records with an uninterrupted run's; they also set
``RESTORAY_DEBUG_STEP_SLEEP_S`` (a pause after each step) so that a tiny run lasts long enough
for a fault to land in the middle of it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import ray
import torch
import torch.distributed as dist

KEYS_ENV = "RESTORAY_DEBUG_KEYS_FILE"
SLEEP_ENV = "RESTORAY_DEBUG_STEP_SLEEP_S"  # seconds added to each step: lets fault tests land mid-run
KEY_COLUMN = "debug_sample_key"
KEY_WIDTH = 96


@ray.remote(num_cpus=0)
class StopSignal:
    """Set once by the driver; read by rank 0 of the workers."""

    def __init__(self):
        self._reason: str | None = None

    def request(self, reason: str) -> None:
        self._reason = self._reason or reason

    def reason(self) -> str | None:
        return self._reason


class StopWatch:
    """Non-blocking view of a :class:`StopSignal` for the train loop.

    Only ``poll_rank`` asks the actor (at most every ``interval_s``, never waiting for the
    answer); :meth:`requested` is collective: every rank calls it after every step and all get
    the same answer, so DDP ranks stop after the same step.
    """

    def __init__(self, signal, rank: int, interval_s: float = 0.25, poll_rank: int = 0):
        self.signal = signal if rank == poll_rank else None
        self.interval_s = interval_s
        self.local = False
        self.pending = None
        self.last_poll = 0.0
        self.group = None
        if dist.is_available() and dist.is_initialized():
            # a CPU group: agreeing on a flag must not make the CPU wait for a GPU every step
            self.group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD

    def _poll(self) -> None:
        if self.signal is None or self.local:
            return
        if self.pending is not None:
            ready, _ = ray.wait([self.pending], timeout=0)
            if not ready:
                return
            try:
                self.local = bool(ray.get(self.pending))
            except ray.exceptions.RayError:
                self.signal = None  # the driver (its owner) is gone: nothing will ask us to stop
            self.pending = None
        now = time.monotonic()
        if self.signal is not None and not self.local and now - self.last_poll >= self.interval_s:
            self.pending, self.last_poll = self.signal.reason.remote(), now

    def requested(self) -> bool:
        self._poll()
        if self.group is None:
            return self.local
        flag = torch.tensor([1.0 if self.local else 0.0])
        dist.all_reduce(flag, group=self.group)
        return bool(flag.item() > 0)


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

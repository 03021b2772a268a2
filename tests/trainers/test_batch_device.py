"""A stream batch stays on the device it arrives on (``device_stage`` of the SR families)."""

from __future__ import annotations

import torch

from trainers.tasks import get_task


def test_device_stage_keeps_the_batch_on_its_device():
    # The meta device stands in for a GPU: copying a meta tensor to the CPU raises.
    task = get_task("sr")(get_task("sr").Config())
    raw = {"lq": torch.zeros(2, 4, 4, 3, dtype=torch.uint8, device="meta"),
           "gt": torch.zeros(2, 16, 16, 3, dtype=torch.uint8, device="meta")}
    batch = task.device_stage(raw)
    assert {k: (v.device.type, v.dtype, tuple(v.shape)) for k, v in batch.items()} == {
        "lq": ("meta", torch.float32, (2, 3, 4, 4)), "gt": ("meta", torch.float32, (2, 3, 16, 16))}

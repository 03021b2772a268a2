"""The loop's random state is a function of (seed, step, rank): a network with dropout resumed
from a checkpoint trains on the very masks an uninterrupted run draws (the checkpoint holds no
RNG state; each step seeds torch from its own position instead)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainers import archs


class _DropoutEDSR(nn.Module):
    """EDSR behind a dropout on its input: every step draws from torch's global generator."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, num_blocks: int, upscale_factor: int):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.body = archs.ARCHS["edsr"](in_channels=in_channels, out_channels=out_channels, mid_channels=mid_channels,
                                        num_blocks=num_blocks, upscale_factor=upscale_factor)

    def forward(self, x):
        return self.body(self.drop(x))


def _config(steps: int):
    from pipelines.schema import ExperimentConfig

    return ExperimentConfig.model_validate({
        "name": "tiny_dropout", "seed": 5,
        "task": {"name": "sr", "data": {"scale": 4, "gt_size": 16}, "eval": {"crop_border": 4}},
        "nets": {"generator": {"name": "edsr_dropout_test", "in_channels": 3, "out_channels": 3, "mid_channels": 8,
                               "num_blocks": 1, "upscale_factor": 4}},
        "data": {"train": "unused", "val": "unused", "batch_size": 2},
        "optim": {"generator": {"lr": 1e-2}},
        "train": {"total_steps": steps, "log_every": 1, "val_every": 100, "checkpoint_every": 2},
    })


def _train(steps: int, resume: Path | None, keep: Path) -> dict[str, torch.Tensor]:
    import ray.train

    from trainers.loop import Recipe, RunContext

    rng = np.random.default_rng(0)
    batches = [{"lq": torch.from_numpy(rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)),
                "gt": torch.from_numpy(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))} for _ in range(steps)]

    def report(metrics, checkpoint=None):
        if checkpoint is not None:
            dest = keep / f"step{recipe.state.step}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(checkpoint.path, dest)

    recipe = Recipe(_config(steps), RunContext(), report=report, val_rows=lambda: [])
    start = ray.train.Checkpoint.from_directory(str(resume)) if resume else None
    recipe.setup(start, batches=iter(batches), wrap=lambda net: net)
    if start is not None:  # the stream resumes where the checkpoint stopped
        recipe.batches = iter(batches[recipe.state.step:])
    recipe.train()
    return {k: v.clone() for k, v in recipe.state.nets["generator"].state_dict().items()}


def test_dropout_run_resumed_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setitem(archs.ARCHS, "edsr_dropout_test", _DropoutEDSR)
    straight = _train(4, None, tmp_path / "a")
    torch.manual_seed(1234)  # a new process's generator is anywhere: nothing may depend on it
    torch.rand(7)
    resumed = _train(4, tmp_path / "a" / "step2", tmp_path / "b")
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    net = _DropoutEDSR(3, 3, 8, 1, 4).train()  # and the masks are drawn: the same input, two outputs
    x = torch.rand(1, 3, 4, 4)
    assert not torch.equal(net(x), net(x))

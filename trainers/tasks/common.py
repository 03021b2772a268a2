"""What every model family shares: batch conversion, optimizer and GAN step helpers, scoring.

Plain functions, no base class: a family's task module imports what it uses.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import nn


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return net.module if hasattr(net, "module") else net


def to_batch(raw: Mapping[str, object], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """A stream batch (uint8 channels-last images, other numeric columns) -> the batch schema.

    uint8 ``[B,H,W,C]`` images become float ``[B,C,H,W]`` in [0, 1]; uint8 ``[B,T,H,W,C]`` clips
    ``[B,T,C,H,W]``. Other columns (float heatmaps, sampled parameters, integer corners) are
    moved to ``device`` unchanged. Validation rows of differing sizes arrive as object arrays of
    per-image arrays and are stacked first (batch size 1). Without ``device`` tensors stay where
    they are (numpy arrays land on the CPU): a training batch arrives on the worker's device
    already, and a fixed ``"cpu"`` default pulled it back off the GPU.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                value = np.stack(list(value))
            if value.dtype.kind not in "biuf":  # sample keys, names: not tensors
                continue
            value = torch.as_tensor(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            continue
        t = value if device is None else value.to(device)
        if t.dtype == torch.uint8 and t.ndim in (4, 5):
            t = t.movedim(-1, -3).float().div_(255.0)
        out[key] = t
    return out


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """The unwrapped ``net`` with gradients off for its parameters (a discriminator during the
    generator's step). The DDP wrapper is bypassed: a wrapped forward whose parameters get no
    gradient would leave DDP waiting for a reduction that never comes."""
    inner = unwrap(net)
    flags = [p.requires_grad for p in inner.parameters()]
    for p in inner.parameters():
        p.requires_grad_(False)
    try:
        yield inner
    finally:
        for p, flag in zip(inner.parameters(), flags):
            p.requires_grad_(flag)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """zero_grad, backward, step. Gradient clipping and frozen windows are hooks the loop put on
    the optimizer, so a family's step never has to remember them."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Dataset score = mean of per-sample scores (mmedit's convention); samples a metric cannot
    score (NaN, e.g. NIQE of an image under one block) are left out of that metric's mean."""
    if not rows:
        return {}
    with np.errstate(all="ignore"):
        return {k: float(np.nanmean([r[k] for r in rows])) if any(r[k] == r[k] for r in rows) else float("nan")
                for k in rows[0]}


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """``[C,H,W]`` float in [0, 1] -> ``HxWxC`` uint8 (for preview pictures)."""
    return (x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def image_batch(image: np.ndarray, key: str = "lq") -> dict[str, torch.Tensor]:
    """One uint8 HxWx3 RGB image -> ``{key: [1,3,H,W]}`` float in [0, 1] (inference input)."""
    return {key: torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)}

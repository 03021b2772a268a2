"""Optimizers and the zoo's learning-rate schedules, stepped once per iteration.

The schedules are written as ``LambdaLR`` factors of the step so their whole
state is the step counter: resuming restores them exactly, with no hidden
per-epoch bookkeeping.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch


def build_optimizer(params, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam with the config's lr, betas and weight decay (the zoo's only choice)."""
    if cfg["name"] != "adam":
        raise ValueError(f"unknown optimizer {cfg['name']!r}")
    return torch.optim.Adam(
        params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
    )


def cosine_restart_factor(
    step: int, periods: list[int], restart_weights: list[float], base_lr: float, min_lr: float
) -> float:
    """mmcv CosineRestart: inside period i, anneal from ``w_i * base_lr`` towards ``min_lr``.

    lr = min_lr + 0.5 * w_i * (base_lr - min_lr) * (1 + cos(pi * t / period_i)); after the
    last period the rate stays at ``min_lr``.
    """
    start = 0
    for period, weight in zip(periods, restart_weights):
        if step < start + period:
            alpha = (step - start) / period
            lr = min_lr + 0.5 * weight * (base_lr - min_lr) * (1 + math.cos(math.pi * alpha))
            return lr / base_lr
        start += period
    return min_lr / base_lr


def onecycle_factor(step: int, total_steps: int, pct_start: float, div_factor: float,
                    final_div_factor: float) -> float:
    """OneCycleLR (cosine): ``1/div_factor`` -> 1 over ``pct_start * total``, then -> the floor.

    Same phase boundaries as ``torch.optim.lr_scheduler.OneCycleLR(three_phase=False)``;
    written as a factor so the schedule's whole state is the step.
    """
    start, floor = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    up_end = float(pct_start * total_steps) - 1
    if step <= up_end:
        lo, hi, pct = start, 1.0, step / max(up_end, 1e-12)
    else:
        lo, hi, pct = 1.0, floor, min((step - up_end) / max(total_steps - 1 - up_end, 1e-12), 1.0)
    return hi + (lo - hi) / 2.0 * (1 + math.cos(math.pi * pct))


def schedule_factor(cfg: dict[str, Any], base_lr: float, total_steps: int | None = None) -> Callable[[int], float]:
    """The multiplicative lr factor at each step for a schedule config."""
    name = cfg["name"]
    if name == "constant":
        warmup = cfg.get("warmup_steps", 0)
        return lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    if name == "onecycle":
        if not total_steps:
            raise ValueError("the onecycle schedule needs train.total_steps")
        args = (total_steps, cfg["pct_start"], cfg["div_factor"], cfg["final_div_factor"])
        return lambda step: onecycle_factor(step, *args)
    if name == "multistep":
        milestones = sorted(cfg["milestones"])
        gamma = cfg["gamma"]
        return lambda step: gamma ** sum(step >= m for m in milestones)
    if name == "cosine_restart":
        periods, weights, min_lr = cfg["periods"], cfg["restart_weights"], cfg["min_lr"]
        return lambda step: cosine_restart_factor(step, periods, weights, base_lr, min_lr)
    raise ValueError(f"unknown schedule {name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], base_lr: float,
                    total_steps: int | None = None):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor(cfg, base_lr, total_steps))

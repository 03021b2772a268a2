"""Optimizers and the zoo's learning-rate schedules, stepped once per iteration.

The schedules are written as ``LambdaLR`` factors of the step so their whole
state is the step counter: resuming restores them exactly, with no hidden
per-epoch bookkeeping. The one exception is ``plateau`` (``trainers/plateau.py``), which
follows the validation metric and checkpoints its own counters.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from trainers.plateau import PlateauScheduler


def build_optimizer(params, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam with the config's lr, betas and weight decay (the zoo's only choice).

    ``params`` may be parameter groups (:func:`param_groups`), each with its own ``lr``.
    """
    if cfg["name"] != "adam":
        raise ValueError(f"unknown optimizer {cfg['name']!r}")
    return torch.optim.Adam(
        params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
    )


def matches(name: str, prefix: str) -> bool:
    """Parameter ``name`` lies under module ``prefix`` (``''`` matches every parameter)."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def param_groups(net: nn.Module, lr: float, lr_mult: Mapping[str, float]) -> list[dict[str, Any]]:
    """Parameter groups with ``lr * mult`` for parameters under each ``lr_mult`` prefix.

    The group of the remaining parameters comes first, so ``param_groups[0]["lr"]`` is the
    network's base rate (logged as ``lr/<role>``). A parameter matching several prefixes takes
    the longest one. Raises ValueError for a prefix that matches no parameter (a typo would
    otherwise train at the wrong rate silently).
    """
    named = list(net.named_parameters())
    for prefix in lr_mult:
        if not any(matches(n, prefix) for n, _ in named):
            raise ValueError(f"lr_mult: {prefix!r} matches no parameter of {type(net).__name__}")
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for name, p in named:
        hits = sorted((pre for pre in lr_mult if matches(name, pre)), key=len)
        groups.setdefault(lr_mult[hits[-1]] if hits else 1.0, []).append(p)
    return [{"params": ps, "lr": lr * mult} for mult, ps in groups.items() if ps or mult == 1.0]


def add_step_hooks(
    optimizer: torch.optim.Optimizer, net: nn.Module, frozen_until_step: Mapping[str, int],
    grad_clip: float | None, current_step: Callable[[], int], train_only_until_step: Mapping[str, int] | None = None,
) -> None:
    """Frozen windows and gradient clipping, run inside ``optimizer.step()``.

    A parameter under a ``frozen_until_step`` prefix has its gradient dropped while the step is
    below its limit, so Adam neither moves it nor starts its moments (as BasicVSR's frozen SPyNet,
    whose parameters get no gradient at all). Being a hook, it needs no help from the family's
    ``train_step``, and DDP still sees every gradient it expects. ``train_only_until_step`` is the
    complement: while the step is below its limit, every parameter *not* under the prefix is frozen
    (EDVR-TSA trains only ``fusion`` for its first ``tsa_iter`` steps).
    """
    named = list(net.named_parameters())
    windows = []
    for prefix, until in frozen_until_step.items():
        params = [p for n, p in named if matches(n, prefix)]
        if not params:
            raise ValueError(f"frozen_until_step: {prefix!r} matches no parameter of {type(net).__name__}")
        windows.append((until, params))
    for prefix, until in (train_only_until_step or {}).items():
        if not any(matches(n, prefix) for n, _ in named):
            raise ValueError(f"train_only_until_step: {prefix!r} matches no parameter of {type(net).__name__}")
        windows.append((until, [p for n, p in named if not matches(n, prefix)]))
    owned = [p for group in optimizer.param_groups for p in group["params"]]

    def hook(opt, args, kwargs):
        step = current_step()
        for until, params in windows:
            if step < until:
                for p in params:
                    p.grad = None
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in owned if p.grad is not None], grad_clip)

    if windows or grad_clip:
        optimizer.register_step_pre_hook(hook)


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


def cosine_factor(step: int, total_steps: int, base_lr: float, min_lr: float, warmup_steps: int,
                  warmup_ratio: float) -> float:
    """mmcv's CosineAnnealing (by iteration) with its linear warm-up (GCA's schedule).

    The regular rate anneals from ``base_lr`` to ``min_lr`` over ``total_steps``:
    ``min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total)) / 2``; during the first
    ``warmup_steps`` mmcv scales that regular rate by ``1 - (1 - step / warmup) * (1 - ratio)``,
    so the warm-up starts at ``ratio`` times the regular rate, not at zero.
    """
    lr = min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)) / 2
    if step < warmup_steps:
        lr *= 1 - (1 - step / warmup_steps) * (1 - warmup_ratio)
    return lr / base_lr


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
    if name == "cosine":
        if not total_steps:
            raise ValueError("the cosine schedule needs train.total_steps")
        args = (total_steps, base_lr, cfg["min_lr"], cfg["warmup_steps"], cfg["warmup_ratio"])
        return lambda step: cosine_factor(step, *args)
    if name == "cosine_restart":
        periods, weights, min_lr = cfg["periods"], cfg["restart_weights"], cfg["min_lr"]
        return lambda step: cosine_restart_factor(step, periods, weights, base_lr, min_lr)
    raise ValueError(f"unknown schedule {name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], base_lr: float,
                    total_steps: int | None = None):
    """The role's scheduler: ``step()`` every iteration; a ``plateau`` one is also fed each
    validation's metric (``PlateauScheduler.step_metric``) by the loop."""
    if cfg["name"] == "plateau":
        if cfg.get("mode") is None:
            raise ValueError("mode: the plateau schedule needs max or min (the experiment config fills it in)")
        return PlateauScheduler(optimizer, **{k: v for k, v in cfg.items() if k != "name"})
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor(cfg, base_lr, total_steps))

"""ReduceLROnPlateau driven by a validation metric: mmedit 0.16.1's ``ReduceLrUpdaterHook``.

The zoo's frame interpolators (CAIN, FLAVR) halve their rate when the validation PSNR stops
improving (``lr_config = dict(policy='Reduce', mode='max', val_metric='PSNR', ...)``). Unlike
the other schedules (``trainers/optim.py``), the rate is not a function of the step, so this
scheduler keeps state of its own; :meth:`PlateauScheduler.state_dict` holds all of it and the
train loop checkpoints it with the optimizer, so a resumed run continues the plateau count
where it stopped.

The decision rules, as mmedit's hook applies them (``after_val_epoch``, then ``get_lr`` at the
next iteration; here both happen in :meth:`PlateauScheduler.step_metric`):

1. ``value`` improves on ``best`` when, with threshold ``t``: ``max``/``rel``: value > best * (1 + t);
   ``max``/``abs``: value > best + t; ``min``/``rel``: value < best * (1 - t); ``min``/``abs``:
   value < best - t. ``best`` starts at -inf (``max``) or +inf (``min``), so the first
   validation always improves. Improving sets ``best`` and clears the bad count, else the bad
   count grows by one.
2. While cooling down (``cooldown_counter > 0``) the counter drops by one and the bad count is
   cleared.
3. When the bad count exceeds ``patience``, the cooldown restarts at ``cooldown``, the bad count
   is cleared and each rate becomes ``max(lr * factor, min_lr)`` -- unless ``lr - lr * factor <=
   eps``, when it stays.

What differs from the reference, on purpose:

* mmedit's hook reduces only the first parameter group of the first optimizer (its ``get_lr``
  clears the bad count while handling that group, so later groups never see it); here every
  group of the role's optimizer is reduced, keeping ``lr_mult`` ratios. The zoo's plateau
  configs have one group, so their rates are the same.
* mmedit evaluates on rank 0 only and only rank 0's hook counts, so with several GPUs (FLAVR
  trained on 8) the other ranks never reduce their rate. The train loop shares rank 0's metric
  with every rank before stepping, so all ranks reduce together.
* mmcv keeps no hook state in its checkpoints: an mmedit run resumed from a checkpoint starts
  again at the base rate with an empty plateau count. Here the state is checkpointed.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.distributed as dist

MODES = ("max", "min")
THRESHOLD_MODES = ("rel", "abs")


class PlateauScheduler:
    """Reduces an optimizer's rates when a validation metric stops improving.

    Args:
        optimizer: The optimizer whose groups' ``lr`` it changes.
        metric: Name of the monitored validation metric (``psnr``; the loop looks up ``val/<metric>``).
        mode: ``max`` when higher is better (PSNR), ``min`` when lower is.
        factor: New rate = rate * factor, in [0, 1).
        patience: Validations without improvement that are tolerated; the next one reduces.
        threshold: How much better than ``best`` a value must be to count as improving.
        threshold_mode: ``rel`` (a fraction of ``best``) or ``abs`` (in the metric's units).
        cooldown: Validations after a reduction during which bad ones are not counted.
        min_lr: Floor of the reduced rate.
        eps: A reduction smaller than this is skipped.
        verbose: The train loop says so (rank 0) when it reduces a rate.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, metric: str, mode: Literal["max", "min"] = "max",
                 factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                 threshold_mode: Literal["rel", "abs"] = "rel", cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8, verbose: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode: {threshold_mode!r} is not one of {', '.join(THRESHOLD_MODES)}")
        if not 0 <= factor < 1:
            raise ValueError(f"factor: {factor} is not in [0, 1)")
        if patience < 0 or cooldown < 0:
            raise ValueError(f"patience and cooldown must be >= 0, got {patience} and {cooldown}")
        self.optimizer, self.metric, self.mode = optimizer, metric, mode
        self.factor, self.patience, self.cooldown = factor, patience, cooldown
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.min_lr, self.eps, self.verbose = min_lr, eps, verbose
        self.best = -math.inf if mode == "max" else math.inf
        self.num_bad_epochs = 0  # mmedit's name: validations since the last improvement
        self.cooldown_counter = 0
        self.num_validations = 0

    def step(self) -> None:
        """Per-iteration hook of the loop's schedulers: the rate only moves at validations."""

    def is_better(self, value: float) -> bool:
        if self.threshold_mode == "rel":
            scale = 1 + self.threshold if self.mode == "max" else 1 - self.threshold
            bar = self.best * scale
        else:
            bar = self.best + self.threshold if self.mode == "max" else self.best - self.threshold
        return value > bar if self.mode == "max" else value < bar

    def step_metric(self, value: float) -> bool:
        """Count one validation's metric; reduce the rates now if the plateau lasted too long.

        Returns True when a rate changed (not when ``min_lr`` or ``eps`` held it).
        """
        self.num_validations += 1
        if self.is_better(value):
            self.best, self.num_bad_epochs = float(value), 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs <= self.patience:
            return False
        self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        reduced = False
        for group in self.optimizer.param_groups:
            old = group["lr"]
            if old - old * self.factor > self.eps:
                group["lr"] = max(old * self.factor, self.min_lr)
                reduced = reduced or group["lr"] != old
        return reduced

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (plain numbers: the checkpoint loads with ``weights_only``)."""
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
                "num_validations": self.num_validations, "last_lr": self.get_last_lr()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters and the rates (the optimizer's own state holds the same rates)."""
        lrs = list(state["last_lr"])
        if len(lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"last_lr: {len(lrs)} rates for {len(self.optimizer.param_groups)} parameter groups")
        self.best = float(state["best"])
        self.num_bad_epochs, self.cooldown_counter = int(state["num_bad_epochs"]), int(state["cooldown_counter"])
        self.num_validations = int(state["num_validations"])
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr


def from_rank0(value: float | None, device: torch.device) -> float | None:
    """Rank 0's metric (None: it has none) on every rank, so that all ranks reduce alike.

    The loop validates on rank 0 only; every rank calls this at the same validation. Without a
    process group the value is returned as is.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([0.0, 0.0] if value is None else [1.0, value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t[1]) if t[0] > 0 else None

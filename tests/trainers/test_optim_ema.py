"""Learning-rate schedules (values from their definitions), EMA, and resumable scheduler state."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.ema import EMA
from trainers.losses import pixel_loss
from trainers.optim import build_optimizer, build_scheduler, cosine_restart_factor


def _lrs(schedule, steps, base=1.0):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "adam", "lr": base, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched = build_scheduler(opt, schedule, base, total_steps=steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_halves_at_milestones():
    lrs = _lrs({"name": "multistep", "milestones": [3, 5], "gamma": 0.5}, 7, base=2e-4)
    assert lrs == pytest.approx([2e-4] * 3 + [1e-4] * 2 + [5e-5] * 2)


def test_cosine_restart_matches_mmcv_definition():
    periods, weights, base, min_lr = [4, 4], [1.0, 0.5], 2e-4, 1e-7
    lrs = _lrs({"name": "cosine_restart", "periods": periods, "restart_weights": weights, "min_lr": min_lr}, 10, base)
    expected = []
    for step in range(10):
        i, t = (0, step) if step < 4 else (1, step - 4) if step < 8 else (None, None)
        if i is None:
            expected.append(min_lr)
        else:
            expected.append(min_lr + 0.5 * weights[i] * (base - min_lr) * (1 + math.cos(math.pi * t / periods[i])))
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(base) and lrs[4] == pytest.approx(min_lr + 0.5 * (base - min_lr))


def test_onecycle_matches_torch_onecyclelr():
    """Our step-factor form gives torch's OneCycleLR rates (cosine, two phases) at every step."""
    steps, base = 50, 3e-4
    ours = _lrs({"name": "onecycle", "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4}, steps, base)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=base)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=base, total_steps=steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
        cycle_momentum=False,
    )
    ref = []
    for _ in range(steps):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_sched.step()
    assert ours == pytest.approx(ref, rel=1e-6)
    assert max(ours) == pytest.approx(base) and ours[0] == pytest.approx(base / 25)


def test_constant_warmup_ramps_linearly_then_holds():
    lrs = _lrs({"name": "constant", "warmup_steps": 4}, 7, base=1e-3)
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-3])
    assert _lrs({"name": "constant", "warmup_steps": 0}, 3, base=1e-3) == pytest.approx([1e-3] * 3)


def test_cosine_restart_factor_is_continuous_within_a_period():
    f = [cosine_restart_factor(s, [100], [1.0], 1.0, 0.0) for s in range(100)]
    assert all(a >= b for a, b in zip(f, f[1:]))


def test_scheduler_state_round_trip_resumes_exactly():
    sched_cfg = {"name": "multistep", "milestones": [2], "gamma": 0.1}
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "adam", "lr": 1.0, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched = build_scheduler(opt, sched_cfg, 1.0)
    for _ in range(3):
        opt.step()
        sched.step()
    state = (opt.state_dict(), sched.state_dict())
    p2 = torch.nn.Parameter(torch.zeros(1))
    opt2 = build_optimizer([p2], {"name": "adam", "lr": 1.0, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched2 = build_scheduler(opt2, sched_cfg, 1.0)
    opt2.load_state_dict(state[0])
    sched2.load_state_dict(state[1])
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1) and sched2.last_epoch == 3


def test_ema_update_follows_definition():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    assert torch.allclose(ema.state["weight"], torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    restored = EMA(torch.nn.Linear(2, 1), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.state["weight"], ema.state["weight"])


def test_pixel_losses():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert pixel_loss("l1", a, b).item() == pytest.approx(0.5)
    assert pixel_loss("mse", a, b).item() == pytest.approx(0.25)
    assert pixel_loss("charbonnier", a, b).item() == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        pixel_loss("huber", a, b)


def _two_part_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Module()
    net.spynet = torch.nn.Linear(2, 2)
    net.body = torch.nn.Linear(2, 2)
    return net


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    (net.spynet(torch.ones(1, 2)).sum() + net.body(torch.ones(1, 2)).sum()).backward()
    opt.step()


def test_param_groups_scale_the_lr_by_prefix():
    from trainers.optim import param_groups

    net = _two_part_net()
    groups = param_groups(net, 1e-3, {"spynet": 0.125})
    assert [g["lr"] for g in groups] == [1e-3, 1.25e-4]  # the base group first: it is the logged lr
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.spynet.parameters()}
    opt = build_optimizer(groups, {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched = build_scheduler(opt, {"name": "multistep", "milestones": [1], "gamma": 0.5}, 1e-3)
    _step(net, opt)
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 6.25e-5]  # the schedule scales every group
    with pytest.raises(ValueError, match="lr_mult: 'spy' matches no parameter"):
        param_groups(net, 1e-3, {"spy": 0.1})  # a prefix is a module path, not a substring


def test_frozen_until_step_and_grad_clip_are_optimizer_hooks():
    from trainers.optim import add_step_hooks, param_groups

    net = _two_part_net()
    opt = build_optimizer(param_groups(net, 1e-2, {}), {"name": "adam", "lr": 1e-2, "betas": (0.9, 0.999),
                                                        "weight_decay": 0.0})
    step = {"now": 0}
    add_step_hooks(opt, net, {"spynet": 2}, grad_clip=1e-3, current_step=lambda: step["now"])
    frozen0 = [p.detach().clone() for p in net.spynet.parameters()]
    body0 = [p.detach().clone() for p in net.body.parameters()]
    for now in (0, 1):
        step["now"] = now
        _step(net, opt)
    assert all(torch.equal(a, b) for a, b in zip(frozen0, net.spynet.parameters()))  # not moved ...
    assert all(id(p) not in opt.state or not opt.state[p] for p in net.spynet.parameters())  # ... no Adam moments
    assert not all(torch.equal(a, b) for a, b in zip(body0, net.body.parameters()))
    step["now"] = 2
    _step(net, opt)
    assert not all(torch.equal(a, b) for a, b in zip(frozen0, net.spynet.parameters()))  # trains from step 2
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert grads.norm() <= 1e-3 * (1 + 1e-5)  # clipped inside step()
    with pytest.raises(ValueError, match="frozen_until_step: 'flow' matches no parameter"):
        add_step_hooks(opt, net, {"flow": 5}, None, lambda: 0)


def test_cosine_with_warmup_matches_mmcv_definition():
    """GCA's schedule: mmcv CosineAnnealing(min_lr=0, by_epoch=False) with warmup='linear',
    warmup_iters=5000, warmup_ratio=0.001 over 200k iterations. mmcv computes the regular
    (annealed) rate at iteration i and, while i < warmup_iters, multiplies it by
    1 - (1 - i / warmup_iters) * (1 - warmup_ratio)."""
    base, total, warmup, ratio = 4e-4, 200_000, 5_000, 0.001
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "adam", "lr": base, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched = build_scheduler(opt, {"name": "cosine", "min_lr": 0.0, "warmup_steps": warmup, "warmup_ratio": ratio},
                            base, total)
    factor = sched.lr_lambdas[0]

    def mmcv(i: int) -> float:
        regular = 0.0 + (base - 0.0) * (math.cos(math.pi * i / total) + 1) / 2
        return regular * (1 - (1 - i / warmup) * (1 - ratio)) if i < warmup else regular

    for i in (0, 1, 2_500, 4_999, 5_000, 100_000, 199_999, 200_000):
        assert factor(i) * base == pytest.approx(mmcv(i), rel=1e-12, abs=1e-20), i
    assert factor(0) == pytest.approx(ratio)
    assert factor(total) == 0.0

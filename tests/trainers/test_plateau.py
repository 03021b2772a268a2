"""The ``plateau`` schedule (ReduceLROnPlateau on a validation metric, CAIN / FLAVR).

Rates and counters are compared with mmedit 0.16.1's ``ReduceLrUpdaterHook`` run on fixed
metric sequences (``tests/golden/make_plateau_golden.py`` -> ``plateau_lrs.json``): its rules,
per validation, are: improve when value > best * (1 + threshold) (``max``/``rel``; ``abs``
adds; ``min`` mirrors), else count a bad validation; during a cooldown count down and forget
the bad ones; past ``patience`` bad ones restart the cooldown, forget them and multiply the
rate by ``factor`` (floored at ``min_lr``, skipped when the change is <= ``eps``).
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.optim import build_optimizer, build_scheduler
from trainers.plateau import PlateauScheduler, from_rank0

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "golden" / "plateau_lrs.json").read_text())
REPO = Path(__file__).resolve().parents[2]
DEFAULTS = {"mode": "max", "factor": 0.1, "patience": 10, "threshold": 1e-4, "threshold_mode": "rel",
            "cooldown": 0, "min_lr": 0.0, "eps": 1e-8, "verbose": False}


def _scheduler(kwargs: dict, base_lr: float, groups: int = 1) -> tuple[torch.optim.Optimizer, PlateauScheduler]:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": base_lr * (i + 1)} for i in range(groups)]
    opt = build_optimizer(params, {"name": "adam", "lr": base_lr, "betas": (0.9, 0.999), "weight_decay": 0.0})
    sched = build_scheduler(opt, {"name": "plateau", "metric": "psnr", **DEFAULTS, **kwargs}, base_lr)
    assert isinstance(sched, PlateauScheduler)
    return opt, sched


def _counters(sched: PlateauScheduler) -> dict:
    return {"lr": sched.get_last_lr()[0], "best": sched.best, "num_bad_epochs": sched.num_bad_epochs,
            "cooldown_counter": sched.cooldown_counter}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_rates_and_counters_match_mmedit_hook(case):
    g = GOLDEN[case]
    _, sched = _scheduler(g["kwargs"], g["base_lr"])
    got = []
    for value in g["values"]:
        sched.step()  # the per-iteration call does nothing
        sched.step_metric(value)
        got.append(_counters(sched))
    for i, (ours, ref) in enumerate(zip(got, g["after"])):
        assert ours["lr"] == pytest.approx(ref["lr"], rel=1e-12), f"validation {i}"
        assert (ours["best"], ours["num_bad_epochs"], ours["cooldown_counter"]) == \
            (ref["best"], ref["num_bad_epochs"], ref["cooldown_counter"]), f"validation {i}"
    assert len({a["lr"] for a in g["after"]}) > 1  # each case reduces at least once


def test_state_dict_round_trip_mid_sequence_continues_identically():
    g = GOLDEN["flavr_like"]
    opt, sched = _scheduler(g["kwargs"], g["base_lr"])
    half = 11  # inside a cooldown, right after a reduction
    for value in g["values"][:half]:
        sched.step_metric(value)
    assert sched.cooldown_counter > 0
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # as the train loop reads checkpoints
    opt2, sched2 = _scheduler(g["kwargs"], g["base_lr"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert sched2.state_dict() == sched.state_dict()
    for value in g["values"][half:]:
        sched.step_metric(value)
        sched2.step_metric(value)
        assert _counters(sched2) == _counters(sched)
    assert sched2.get_last_lr()[0] == pytest.approx(g["after"][-1]["lr"], rel=1e-12)


def test_every_parameter_group_is_reduced_keeping_ratios():
    _, sched = _scheduler({"patience": 0, "factor": 0.5}, 1e-3, groups=2)
    assert not sched.step_metric(30.0)
    assert sched.step_metric(29.0)
    assert sched.get_last_lr() == pytest.approx([5e-4, 1e-3])


def test_constructor_rejects_bad_arguments():
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam(p, lr=1e-3)
    for kwargs, field in [({"mode": "up"}, "mode"), ({"threshold_mode": "x"}, "threshold_mode"),
                          ({"factor": 1.0}, "factor")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            PlateauScheduler(opt, "psnr", **kwargs)
    with pytest.raises(ValueError, match="^mode: "):
        build_scheduler(opt, {"name": "plateau", "metric": "psnr", **DEFAULTS, "mode": None}, 1e-3)


# ------------------------------------------------------------------ config


def _load(overrides: list[str]):
    from pipelines.config import load_experiment

    return load_experiment(REPO / "configs" / "sr" / "edsr_x4c64b16_1x16_300k_div2k.yaml", overrides,
                           check_paths=False)


def test_config_mode_defaults_to_the_metric_direction():
    cfg = _load(["schedule.generator={name: plateau, metric: psnr, factor: 0.5, patience: 5}"])
    s = cfg.schedule["generator"]
    assert (s.name, s.metric, s.mode, s.factor, s.patience, s.cooldown) == ("plateau", "psnr", "max", 0.5, 5, 0)
    assert _load(["schedule.generator={name: plateau, metric: psnr, mode: min}"]).schedule["generator"].mode == "min"


@pytest.mark.parametrize("override, names", [
    ("{name: plateau, metric: lpips}", [": schedule.generator.metric: ", "'lpips'", "psnr, ssim"]),
    ("{name: plateau, metric: psnr, factor: 1.5}", [": schedule.generator.factor: "]),
    ("{name: plateau, metric: psnr, threshold_mode: relative}", [": schedule.generator.threshold_mode: "]),
    ("{name: plateau}", [": schedule.generator.metric: "]),
])
def test_config_errors_are_one_line_naming_the_field(override, names):
    from pipelines.config import ConfigError

    with pytest.raises(ConfigError) as err:
        _load([f"schedule.generator={override}"])
    msg = str(err.value)
    assert "\n" not in msg
    for name in names:
        assert name in msg, msg


# ------------------------------------------------------------------ the real loop


def _tiny_config(steps: int):
    from pipelines.schema import ExperimentConfig

    return ExperimentConfig.model_validate({
        "name": "tiny_plateau", "seed": 3,
        "task": {"name": "sr", "data": {"scale": 4, "gt_size": 16}, "eval": {"crop_border": 4}},
        "nets": {"generator": {"name": "edsr", "in_channels": 3, "out_channels": 3, "mid_channels": 8,
                               "num_blocks": 1, "upscale_factor": 4}},
        "data": {"train": "unused", "val": "unused", "batch_size": 2},
        "optim": {"generator": {"lr": 1e-3}},
        # threshold 10 (rel): no validation after the first counts as better, whatever the PSNR
        "schedule": {"generator": {"name": "plateau", "metric": "psnr", "patience": 0, "factor": 0.5,
                                   "threshold": 10.0, "verbose": True}},
        "train": {"total_steps": steps, "log_every": 1, "val_every": 1, "checkpoint_every": 100},
    })


def _run(steps: int, checkpoint_dir: Path | None, keep: Path | None, rank: int = 0, world: int = 1) -> list[float]:
    """Train ``steps`` in this process from ``checkpoint_dir``; the lrs after each validation.

    With ``world`` > 1 the process group exists already (``_rank_worker``) and the networks get DDP.
    """
    import ray.train

    from trainers.loop import Recipe, RunContext

    wrap = torch.nn.parallel.DistributedDataParallel if world > 1 else (lambda net: net)

    rng = np.random.default_rng(0)
    batch = {"lq": torch.from_numpy(rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)),
             "gt": torch.from_numpy(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))}
    val = [{"lq": rng.integers(0, 256, (1, 5, 6, 3), dtype=np.uint8),
            "gt": rng.integers(0, 256, (1, 20, 24, 3), dtype=np.uint8)}]
    lrs: list[float] = []

    def report(metrics, checkpoint=None):
        lrs.append(recipe.state.optimizers["generator"].param_groups[0]["lr"])
        if keep is not None and checkpoint is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(checkpoint.path, keep)

    recipe = Recipe(_tiny_config(steps), RunContext(), rank, world, report=report, val_rows=lambda: val)
    ckpt = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
    recipe.setup(ckpt, batches=iter([batch] * steps), wrap=wrap)
    recipe.train()
    return lrs


def test_loop_halves_on_plateau_and_resume_keeps_the_count(tmp_path):
    from trainers import checkpoint_io

    first = _run(4, None, tmp_path / "ckpt")
    saved = checkpoint_io.read_training_checkpoint(tmp_path / "ckpt")["schedulers"]["generator"]
    assert saved["num_validations"] == 4 and saved["last_lr"] == pytest.approx([1e-3 / 8])
    assert math.isfinite(saved["best"])
    second = _run(6, tmp_path / "ckpt", None)  # resumes at step 4, trains 2 more
    # the first validation sets best; each later one is a plateau (patience 0): halve, with or without a resume
    assert first + second == pytest.approx([1e-3 * 0.5 ** k for k in range(6)])


# ------------------------------------------------------------------ ranks


def _rank_worker(rank: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP team
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        Path(f"{out}.{rank}").write_text(json.dumps(_run(4, None, None, rank, 2)))
    finally:
        dist.destroy_process_group()


def test_every_rank_reduces_with_rank0_metric(tmp_path):
    """The real loop on two gloo ranks with DDP: only rank 0 validates, rank 1 gets its PSNR.

    The ranks are forked after the loop's modules are imported here: two fresh interpreters
    would spend far longer importing Ray and torch than the run takes.
    """
    import pipelines.schema  # noqa: F401
    import trainers.loop  # noqa: F401

    torch.multiprocessing.start_processes(_rank_worker, args=(str(tmp_path / "init"), str(tmp_path / "out")),
                                          nprocs=2, join=True, start_method="fork")
    r0, r1 = (json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1))
    assert r0 == r1 == pytest.approx([1e-3 * 0.5 ** k for k in range(4)])


def test_from_rank0_without_a_process_group_returns_the_value():
    assert from_rank0(31.5, torch.device("cpu")) == 31.5 and from_rank0(None, torch.device("cpu")) is None

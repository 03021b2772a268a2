"""Rates mmedit 0.16.1's ``ReduceLrUpdaterHook`` sets for fixed metric sequences (tests/trainers/test_plateau.py).

Run from the repo root with the reference interpreter (see ``mmedit_shim.py``)::

    /work/mmedit-venv/bin/python tests/golden/make_plateau_golden.py

The hook is driven as mmedit's iteration-based runner drives it for the zoo's CAIN/FLAVR
configs (``by_epoch=False, epoch_base_valid=True``): ``before_run``, then per "epoch" one
``before_train_iter`` (which sets the rate) and one validation (``log_buffer.output`` filled,
``after_val_epoch``). After validation i the case records the rate the next iteration trains
with, and the hook's ``best`` / ``num_bad_epochs`` / ``cooldown_counter`` at that point.
Writes ``tests/data/golden/plateau_lrs.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mmedit_shim  # noqa: E402

mmedit_shim.install()
from mmedit.core.scheduler import ReduceLrUpdaterHook  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "golden" / "plateau_lrs.json"


def _sequences() -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    walk = 30 + np.cumsum(rng.normal(0.02, 0.05, 40))
    hand = [30.0, 30.5, 30.5, 30.4, 30.502, 30.6, 30.6, 30.6, 30.6, 30.6, 31.0, 30.9, 30.9, 30.9, 30.9, 30.9]
    return {"walk": [round(float(v), 4) for v in walk], "hand": hand,
            "loss": [round(float(v), 5) for v in 0.1 - np.cumsum(rng.normal(0.001, 0.003, 30))]}


CASES = {
    # name: (sequence, hook arguments, base lr)
    "max_rel_p2_c1": ("hand", dict(mode="max", factor=0.5, patience=2, cooldown=1), 1e-4),
    "cain": ("walk", dict(mode="max", factor=0.5, patience=5, cooldown=0), 1e-4),
    "flavr_like": ("walk", dict(mode="max", factor=0.5, patience=2, cooldown=4), 2e-4),
    "max_abs_p0": ("walk", dict(mode="max", factor=0.5, patience=0, threshold=0.03, threshold_mode="abs"), 1e-3),
    "min_rel_minlr": ("loss", dict(mode="min", factor=0.1, patience=1, cooldown=1, threshold=0.02, min_lr=2e-6),
                      1e-3),
    "min_abs_eps": ("loss", dict(mode="min", factor=0.5, patience=0, threshold=0.001, threshold_mode="abs",
                                 eps=2e-5), 1e-4),
}


def run_case(values: list[float], kwargs: dict, base_lr: float) -> list[dict]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=base_lr)
    runner = SimpleNamespace(optimizer=opt, iter=0, epoch=0, log_buffer=SimpleNamespace(output={}))
    hook = ReduceLrUpdaterHook(val_metric="PSNR", by_epoch=False, epoch_base_valid=True, **kwargs)
    hook.before_run(runner)
    out = []
    with contextlib.redirect_stdout(io.StringIO()):  # the hook prints a line per validation
        hook.before_train_iter(runner)
        for value in values:
            runner.log_buffer.output["PSNR"] = value
            hook.after_val_epoch(runner)
            runner.iter += 1
            hook.before_train_iter(runner)
            out.append({"lr": opt.param_groups[0]["lr"], "best": hook.best,
                        "num_bad_epochs": hook.num_bad_epochs, "cooldown_counter": hook.cooldown_counter})
    return out


def main() -> None:
    seqs = _sequences()
    golden = {}
    for name, (seq, kwargs, base_lr) in CASES.items():
        golden[name] = {"values": seqs[seq], "kwargs": kwargs, "base_lr": base_lr,
                        "after": run_case(seqs[seq], kwargs, base_lr)}
        lrs = [a["lr"] for a in golden[name]["after"]]
        print(name, "reductions:", sum(a != b for a, b in zip([base_lr, *lrs], lrs)))
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()

"""``restoray bench train``: the records' shape, in quick mode (tiny networks, a few steps).

No timing assertions: the figures are what the command measures, not what a test can promise
on a shared CI machine.
"""

from __future__ import annotations

import json
import math

import torch

from pipelines.cli import main

KEYS = {"case", "device", "value", "unit", "restoray_s_per_step", "plain_s_per_step", "steps", "reps"}


def test_bench_train_writes_one_record_per_case_and_device(tmp_path, capsys):
    out = tmp_path / "bench_train.json"
    assert main(["bench", "train", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    assert [(r["case"], r["device"]) for r in records] == [(c, d) for d in devices for c in ("edsr", "esrgan")]
    for r in records:
        assert set(r) == KEYS
        assert r["unit"] == "restoray/plain time per step"
        for key in ("value", "restoray_s_per_step", "plain_s_per_step"):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert isinstance(r["steps"], int) and r["steps"] >= 1 and isinstance(r["reps"], int) and r["reps"] >= 1
    table = capsys.readouterr().out
    assert "restoray s/step" in table and "esrgan" in table

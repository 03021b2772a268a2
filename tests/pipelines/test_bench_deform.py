"""``restoray bench deform`` (quick mode): one record per case, backend and device, with its timings."""

from __future__ import annotations

import json

import torch

from pipelines.cli import main
from trainers.archs.deform_conv import deform_conv_backend


def test_bench_deform_quick_writes_records(tmp_path, capsys):
    out = tmp_path / "bench_deform.json"
    threads = torch.get_num_threads()
    assert main(["bench", "deform", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    backends = {"torch"} | ({"torchvision"} if deform_conv_backend() == "torchvision" else set())
    devices = {"cpu"} | ({"cuda"} if torch.cuda.is_available() else set())
    assert {(r["backend"], r["device"]) for r in records} == {(b, d) for b in backends for d in devices}
    for r in records:
        assert set(r) == {"case", "shape", "backend", "deform_ms", "conv_ms", "ratio", "device", "machine"}
        assert r["case"] == "quick" and r["shape"]["deform_groups"] == 4 and r["shape"]["kernel"] == 3
        assert r["deform_ms"] > 0 and r["conv_ms"] > 0
        assert abs(r["ratio"] - r["deform_ms"] / r["conv_ms"]) < 0.01 * r["ratio"] + 0.01
    assert "deform quick 1x16x24x24 dg 4 torch on cpu" in capsys.readouterr().out
    assert torch.get_num_threads() == threads  # the one-thread CPU timing is undone

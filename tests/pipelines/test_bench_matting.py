"""``restoray bench matting``: one record per pipeline and foreground size, and GCA inference time
(quick mode: a smoke test)."""

from __future__ import annotations

import json

from pipelines.cli import main


def test_bench_matting_quick_writes_one_record_per_pipeline(tmp_path, capsys):
    out = tmp_path / "bench_matting.json"
    assert main(["bench", "matting", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    inference = records.pop()
    assert inference["case"] == "gca_inference" and inference["size"] == [256, 256]
    assert inference["unit"] == "s/image" and inference["value"] > 0 and inference["peak_mib"] > 0
    assert [(r["pipeline"], r["out_size"]) for r in records] == [("gca", 512), ("dim", 320), ("indexnet", 320)]
    for r in records:
        assert set(r) == {"pipeline", "fg_size", "fg_png_compression", "out_size", "value", "unit", "machine"}
        assert r["fg_size"] == [512, 512] and r["fg_png_compression"] == 3
        assert r["unit"] == "samples/s/core" and r["value"] > 0
    printed = capsys.readouterr().out
    assert "matting gca fg 512x512 (PNG level 3) -> 512px" in printed and "matting gca inference 256x256" in printed

"""``restoray bench inpainting``: one record per mask type and DeepFill v2 inference time (quick mode:
a smoke test)."""

from __future__ import annotations

import json

from pipelines.cli import main


def test_bench_inpainting_quick_writes_one_record_per_mask(tmp_path, capsys):
    out = tmp_path / "bench_inpainting.json"
    assert main(["bench", "inpainting", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    inference = records.pop()
    assert inference["case"] == "deepfill_v2_inference" and inference["size"] == [128, 128]
    assert inference["unit"] == "s/image" and inference["value"] > 0 and inference["peak_mib"] > 0
    assert [r["mask"] for r in records] == ["bbox", "irregular", "brush", "set"]
    for r in records:
        assert set(r) == {"mask", "img_size", "png_compression", "out_size", "value", "unit", "machine"}
        assert r["out_size"] == 256 and r["png_compression"] == 3 and r["unit"] == "samples/s/core" and r["value"] > 0
    printed = capsys.readouterr().out
    assert "inpainting irregular mask, image 512x680 (PNG level 3) -> crop 384 -> 256px" in printed
    assert "inpainting deepfill_v2 inference 128x128" in printed

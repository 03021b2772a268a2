"""``restoray bench inpainting``: one record per mask type (quick mode: a smoke test)."""

from __future__ import annotations

import json

from pipelines.cli import main


def test_bench_inpainting_quick_writes_one_record_per_mask(tmp_path, capsys):
    out = tmp_path / "bench_inpainting.json"
    assert main(["bench", "inpainting", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    assert [r["mask"] for r in records] == ["bbox", "irregular", "brush", "set"]
    for r in records:
        assert set(r) == {"mask", "img_size", "png_compression", "out_size", "value", "unit", "machine"}
        assert r["out_size"] == 256 and r["png_compression"] == 3 and r["unit"] == "samples/s/core" and r["value"] > 0
    assert "inpainting irregular mask, image 512x680 (PNG level 3) -> crop 384 -> 256px" in capsys.readouterr().out

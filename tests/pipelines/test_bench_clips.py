"""``restoray bench clips``: one record per preset (quick mode: 256 px clips, a smoke test)."""

from __future__ import annotations

import json

from pipelines.cli import main


def test_bench_clips_quick_writes_one_record_per_preset(tmp_path, capsys):
    out = tmp_path / "bench_clips.json"
    assert main(["bench", "clips", "--json", str(out), "--quick"]) == 0
    records = json.loads(out.read_text())
    assert [(r["preset"], r["frames_loaded"], r["frames_out"]) for r in records] == [
        ("bicubic", 30, 30), ("realbasicvsr", 15, 30)]
    for r in records:
        assert set(r) == {"preset", "frame_size", "clip_frames", "frames_loaded", "frames_out", "gt_size", "value",
                          "unit", "s_per_clip", "split_s_per_clip", "target_s_per_clip", "meets_target", "machine"}
        assert r["frame_size"] == 256 and r["clip_frames"] == 30 and r["gt_size"] == 256
        assert r["unit"] == "clips/s/core" and r["value"] > 0
        assert abs(r["s_per_clip"] * r["value"] - 1) < 0.01
        split = r["split_s_per_clip"]
        assert set(split) == {"decode", "degrade", "other", "total"} and split["decode"] > 0 and split["degrade"] > 0
        assert abs(split["decode"] + split["degrade"] + split["other"] - split["total"]) < 1e-3
    assert records[0]["target_s_per_clip"] is None and records[0]["meets_target"] is None
    assert records[1]["target_s_per_clip"] == 0.4 and isinstance(records[1]["meets_target"], bool)
    printed = capsys.readouterr().out
    assert "clips realbasicvsr 256px stored, 15 frames loaded -> 30x256px" in printed

"""``restoray bench frames --quick``: EDVR-M and CAIN inference records, with EDVR's deformable share."""

import json

from pipelines.cli import main


def test_bench_frames_quick_records_both_models(tmp_path):
    out = tmp_path / "frames.json"
    assert main(["bench", "frames", "--quick", "--json", str(out)]) == 0
    edvr, cain = json.loads(out.read_text())
    assert (edvr["model"], cain["model"]) == ("edvrm_x4_8x4_600k_reds", "cain_b5_g1b32_vimeo90k_triplet")
    assert all(r["frames_per_s"] > 0 and r["lq_size"] == [32, 32] for r in (edvr, cain))
    assert 0 < edvr["deform_share"] < 1 and edvr["deform_backend"] in ("torch", "torchvision")
    assert cain["deform_share"] is None

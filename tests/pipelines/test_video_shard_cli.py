"""`restoray shard` drives the video adapters: a tiny REDS layout through the CLI and Ray Data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "preprocessing"))
from video_helpers import make_reds  # noqa: E402

pytestmark = pytest.mark.slow  # starts Ray (CLI subprocess): ~15-30 s here


def test_restoray_shard_reds_sub_clips(tmp_path):
    make_reds(tmp_path / "REDS", train=("000", "001", "002"), val=("000",), n=3)
    cfg = tmp_path / "reds.yaml"
    base = yaml.safe_load((REPO / "configs/data/reds_train_sub.yaml").read_text())
    base.update(source=str(tmp_path / "REDS"), dest=str(tmp_path / "shards"))
    cfg.write_text(yaml.safe_dump(base))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "shard", str(cfg), "params.crop_size=16", "params.step=16"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "shards/manifest.json").read_text())
    assert manifest["adapter"] == "reds" and manifest["params"]["split"] == "all"
    # 4 clips (000-002 and val 000 -> 240), each 32x48 cut into 2x3 regions of 16 px, 3 frames each.
    assert manifest["num_samples"] == 4 * 6 and manifest["num_frames"] == 4 * 6 * 3
    assert len(manifest["shards"]) == 4 and manifest["quarantined"] == 0
    rows = [c for s in manifest["shards"] for c in s["clips"]]
    assert rows[0] == ["000_s001", 3, 16, 16, "train_sharp/000"] and rows[-1][4] == "val_sharp/000"
    assert rows[-1][0] == "240_s006"

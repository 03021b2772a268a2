"""Command-line papercuts a new user met (issue 14, item 11), each with the behaviour wanted."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from pipelines.cli import main
from trainers.archs import build_arch
from trainers.checkpoint_io import RESTORAY_FORMAT, save_training_checkpoint

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "sr" / "edsr_x2c64b16_1x16_300k_div2k.yaml"


def _small_config(tmp_path: Path, **data) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["nets"]["generator"].update(mid_channels=8, num_blocks=1)
    raw["data"].update(data)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_overrides_may_follow_options(tmp_path, capsys):
    cfg = _small_config(tmp_path)
    assert main(["inspect", str(cfg), "--json", "nets.generator.num_blocks=2"]) == 0
    two = json.loads(capsys.readouterr().out)["nets"]["generator"]["num_params"]
    assert main(["inspect", str(cfg), "nets.generator.num_blocks=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nets"]["generator"]["num_params"] == two
    assert main(["inspect", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nets"]["generator"]["num_params"] < two


def test_unknown_option_still_refused(tmp_path, capsys):
    cfg = _small_config(tmp_path)
    try:
        main(["inspect", str(cfg), "--bogus"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an unknown option was accepted")
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_inspect_accepts_a_checkpoint_folder(tmp_path, capsys):
    cfg = _small_config(tmp_path)
    net = build_arch("edsr", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=2)
    folder = tmp_path / "run" / "checkpoint_000001"
    folder.mkdir(parents=True)
    payload = {"format": RESTORAY_FORMAT, "nets": {"generator": net.state_dict()}, "ema": {}, "optimizers": {},
               "schedulers": {}, "step": 1}
    save_training_checkpoint(folder, payload, {"step": 1})
    assert main(["inspect", str(cfg), "--checkpoint", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["loads_strictly"] and info["nets"]["generator"]["source"] == "restoray generator"
    # a folder without checkpoint.pt is named as such, not "not found"
    assert main(["inspect", str(cfg), "--checkpoint", str(tmp_path / "run")]) == 1
    assert "a folder without checkpoint.pt" in capsys.readouterr().err


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnets: [1, 2\ntask: 3\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml: not valid YAML at line 3" in err


def test_eval_reads_only_the_validation_shards(tmp_path, tiny_shards, capsys):
    cfg = _small_config(tmp_path, train=str(tmp_path / "no_such_train_shards"), val=tiny_shards["val"])
    assert main(["eval", str(cfg), "task.data.gt_size=32"]) == 0
    out = capsys.readouterr().out
    assert "psnr:" in out
    # training still needs its shards, and says which field points nowhere
    assert main(["train", str(cfg)]) == 2
    assert "data.train: no manifest.json" in capsys.readouterr().err

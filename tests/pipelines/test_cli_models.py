"""``restoray inspect`` / ``infer`` / ``eval`` on checkpoints laid out as the zoo publishes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, tiny_experiment, write_config, write_photos
from pipelines.cli import main
from trainers.archs import build_arch

CONFIG = REPO / "configs" / "sr" / "edsr_x2c64b16_1x16_300k_div2k.yaml"


def _zoo_checkpoint(path: Path, model: torch.nn.Module, ema: torch.nn.Module | None = None) -> Path:
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        state.update({f"generator_ema.{k}": v for k, v in ema.state_dict().items()})
    torch.save({"meta": {"mmedit_version": "0.16.1"}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def edsr_x2():
    torch.manual_seed(0)
    return build_arch("edsr", in_channels=3, out_channels=3, mid_channels=64, num_blocks=16, upscale_factor=2)


def test_inspect_zoo_checkpoint_loads_strictly(tmp_path, edsr_x2, capsys):
    ckpt = _zoo_checkpoint(tmp_path / "edsr.pth", edsr_x2)
    assert main(["inspect", str(CONFIG), "--checkpoint", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    g = info["nets"]["generator"]
    assert g["num_params"] == 1_369_859 and info["loads_strictly"] and g["source"] == "zoo generator"
    assert info["checkpoint_roles"] == ["generator"] and info["other_roles"] == []


def test_inspect_reports_key_problems_and_fails(tmp_path, edsr_x2, capsys):
    state = dict(edsr_x2.state_dict())
    state.pop("conv_last.bias")
    state["extra.weight"] = torch.zeros(1)
    state["conv_first.weight"] = torch.zeros(64, 3, 5, 5)
    bad = tmp_path / "bad.pth"
    torch.save({"meta": {}, "state_dict": {f"generator.{k}": v for k, v in state.items()}}, bad)
    assert main(["inspect", str(CONFIG), "--checkpoint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "does NOT load strictly" in out
    assert "missing     conv_last.bias" in out and "unexpected  extra.weight" in out
    assert "mismatched  conv_first.weight" in out


def test_inspect_wrong_scale_checkpoint(tmp_path, edsr_x2, capsys):
    ckpt = _zoo_checkpoint(tmp_path / "edsr.pth", edsr_x2)
    x4 = REPO / "configs" / "sr" / "edsr_x4c64b16_1x16_300k_div2k.yaml"
    assert main(["inspect", str(x4), "--checkpoint", str(ckpt), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    g = info["nets"]["generator"]
    assert not info["loads_strictly"] and not g["loads_strictly"]
    assert g["missing"] == ["upsample.1.upsample_conv.weight", "upsample.1.upsample_conv.bias"]


def test_inspect_not_a_checkpoint_is_one_line_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "inspect", str(CONFIG), "--checkpoint", str(junk)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "junk.pth" in proc.stderr


def test_infer_prefers_ema_tiles_and_matches_untiled(tmp_path, edsr_x2):
    small = build_arch("edsr", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=2)
    ema = build_arch("edsr", in_channels=3, out_channels=3, mid_channels=8, num_blocks=1, upscale_factor=2)
    ckpt = _zoo_checkpoint(tmp_path / "small.pth", small, ema)
    photos = write_photos(tmp_path / "in", 2, (40, 52))
    (tmp_path / "in" / "broken.png").write_text("not an image")
    cfg = tmp_path / "cfg.yaml"
    import yaml
    raw = yaml.safe_load(CONFIG.read_text())
    raw["nets"]["generator"].update(mid_channels=8, num_blocks=1)
    cfg.write_text(yaml.safe_dump(raw))
    # the broken file is reported and the exit code says so, but the good images are written
    rc = main(["infer", str(cfg), str(tmp_path / "in"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
               "--tile", "32", "--tile-overlap", "24"])
    assert rc == 1
    for photo in photos:
        out = cv2.imread(str(tmp_path / "out" / photo.name))
        assert out.shape == (80, 104, 3)
    # EMA weights were used, and tiling did not change the result
    lq = torch.from_numpy(cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        ref = (ema.eval()(lq)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    got = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / photos[0].name)), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_eval_scores_bicubic_on_shards(tiny_shards, tmp_path, capsys):
    cfg = write_config(tmp_path / "e.yaml", tiny_experiment(tiny_shards["train"], tiny_shards["val"], str(tmp_path)))
    out = tmp_path / "scores.json"
    assert main(["eval", str(cfg), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num_samples"] == 2 and 15 < result["bicubic_psnr"] < 60
    assert len(result["per_sample"]) == 2 and "bicubic_psnr" in capsys.readouterr().out


def test_unreachable_tracking_server_fails_fast_before_ray(tiny_shards, tmp_path):
    import time

    cfg = write_config(tmp_path / "t.yaml", tiny_experiment(tiny_shards["train"], tiny_shards["val"], str(tmp_path)))
    env = dict(os.environ, MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # discard port: nothing listens
    env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "train", str(cfg)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and time.monotonic() - t0 < 60
    assert proc.stderr.strip().splitlines()[-1].startswith("restoray: error: MLflow tracking server")
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr


KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
GAN_CONFIGS = {
    "srgan_x4c64b16_1x16_1000k_div2k": "srgan_x4c64b16_1x16_1000k_div2k",
    "esrgan_x4c64b23g32_1x16_400k_div2k": "esrgan_x4c64b23g32_1x16_400k_div2k",
    "realesrgan_c64b23g32_12x4_lr1e-4_400k_df2k_ost": "realesrgan_c64b23g32_12x4_lr1e-4_400k_df2k_ost",
}


def _fake_zoo_file(path: Path, keymap: str) -> Path:
    """A file laid out as the zoo's: every key of the real model's state dict (generator, its EMA copy,
    discriminator, step_counter) with the real shapes; the perceptual loss's VGG is cut to one key."""
    full = json.loads((KEYS / f"{keymap}.json").read_text())["full_model_state_dict_keys"]
    state, vgg_kept = {}, False
    for key, shape in full.items():
        if key.startswith("perceptual_loss."):
            if vgg_kept:
                continue
            vgg_kept = True
        dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        state[key] = torch.zeros(shape, dtype=dtype)
    torch.save({"meta": {"mmedit_version": "0.16.1"}, "state_dict": state}, path)
    return path


@pytest.mark.parametrize("name", sorted(GAN_CONFIGS))
def test_inspect_gan_zoo_checkpoint_loads_generator_and_discriminator(tmp_path, capsys, name):
    ckpt = _fake_zoo_file(tmp_path / f"{name}.pth", GAN_CONFIGS[name])
    config = REPO / "configs" / "sr_gan" / f"{name}.yaml"
    assert main(["inspect", str(config), "--checkpoint", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["loads_strictly"] is True
    assert set(info["checkpoint_roles"]) >= {"generator", "discriminator"}
    assert info["other_roles"] == ["perceptual_loss"]
    for role in ("generator", "discriminator"):
        assert info["nets"][role]["present"] and info["nets"][role]["loads_strictly"], role
    expected_source = "zoo generator_ema" if name.startswith("realesrgan") else "zoo generator"
    assert info["nets"]["generator"]["source"] == expected_source
    assert main(["inspect", str(config), "--checkpoint", str(ckpt)]) == 0
    text = capsys.readouterr().out
    assert "discriminator (zoo discriminator): loads strictly" in text
    assert "perceptual_loss: in the checkpoint, not in this config" in text


def test_cli_bad_network_argument_exits_2(tmp_path):
    config = REPO / "configs" / "sr_gan" / "esrgan_x4c64b23g32_1x16_400k_div2k.yaml"
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "inspect", str(config),
                           "nets.discriminator.mid_channels=wide"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"restoray: config error: {config}: nets.discriminator.mid_channels: "
        "Input should be a valid integer, unable to parse string as an integer"]

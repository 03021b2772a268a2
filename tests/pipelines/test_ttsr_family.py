"""TTSR on real parts: both zoo configs against their checkpoint key maps (generator, extractor,
discriminator), then generated CUFED/CUFED5-layout data -> shards (``cufed`` adapter) -> a tiny
TTSR-GAN (LTE started from a torchvision-format VGG19 file, one pixel-only step then one with every
loss) through Ray Data and TorchTrainer -> checkpoint -> ``evaluate`` -> ``restoray infer --ref``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, textured_image, tiny_experiment, write_config

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
CONFIGS = {"ttsr-rec_x4_c64b16_g1_200k_CUFED": REPO / "configs/sr", "ttsr-gan_x4_c64b16_g1_500k_CUFED": REPO / "configs/sr_gan"}


def test_zoo_configs_build_the_checkpoint_networks():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    for name, folder in CONFIGS.items():
        ref = json.loads((KEYS / f"{name}.json").read_text())
        zoo = {"generator": ref["generator"]["keys"], "extractor": ref["other_modules"]["extractor"]["keys"]}
        if ref["discriminator"]:
            zoo["discriminator"] = ref["discriminator"]["keys"]
        cfg = load_experiment(folder / f"{name}.yaml", check_paths=False)
        nets = build_nets(cfg, "meta")
        assert set(nets) == set(zoo), name
        for role, net in nets.items():
            report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in zoo[role].items()})
            assert report.ok, f"{name} {role}: {report.summary()}"


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def cufed(tmp_path_factory) -> dict[str, str]:
    """CUFED training pairs (32 px) and two CUFED5 groups (GT 32x40, references of other sizes),
    sharded with the cufed adapter; and a torchvision-layout VGG19 file of random weights."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("ttsr")
    for i in range(4):
        _png(root / f"raw/CUFED/train/input/{i:06d}.png", textured_image(32, 32, seed=i))
        _png(root / f"raw/CUFED/train/ref/{i:06d}.png", textured_image(32, 32, seed=i + 50))
    for g in range(2):
        _png(root / f"raw/CUFED5/{g:03d}_0.png", textured_image(32, 40, seed=100 + g))
        for level in range(1, 6):
            _png(root / f"raw/CUFED5/{g:03d}_{level}.png", textured_image(36 + 4 * level, 44, seed=110 + 10 * g + level))
    shard_dataset(str(root / "raw/CUFED/train"), str(root / "shards/train"), "cufed", items_per_shard=2)
    shard_dataset(str(root / "raw/CUFED5"), str(root / "shards/val"), "cufed", {"split": "test", "ref_level": 2})
    g = torch.Generator().manual_seed(0)
    vgg = {}
    for i, cin, cout in ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256)):
        vgg[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) / (3 * cin ** 0.5)
        vgg[f"features.{i}.bias"] = torch.zeros(cout)
    torch.save(vgg, root / "vgg19-test.pth")
    return {"root": str(root), "train": str(root / "shards/train"), "val": str(root / "shards/val"),
            "vgg": str(root / "vgg19-test.pth")}


@pytest.fixture(scope="module")
def trained(ray_session, cufed, tmp_path_factory) -> dict:
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    tmp = tmp_path_factory.mktemp("ttsr_runs")
    cfg = tiny_experiment(cufed["train"], cufed["val"], str(tmp / "runs"), name="tiny_ttsr", data={"batch_size": 2},
                          train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
                          scaling={"num_workers": 1, "cpus_per_worker": 0.5})
    nets = {"generator": {"name": "ttsr", "mid_channels": 8, "num_blocks": [1, 1, 1, 1]}, "extractor": {"name": "lte"},
            "discriminator": {"name": "ttsr_disc", "in_size": 32}}
    cfg.update(
        task={"name": "ttsr", "pixel_init_steps": 1, "disc_repeat": 2,
              "perceptual": {"layer_weights": {"2": 1.0}, "perceptual_weight": 1e-2, "style_weight": 0.0,
                             "criterion": "mse", "allow_random_init": True},
              "transferal": {"weight": 1e-2}, "gan": {"type": "vanilla", "weight": 1e-3}},
        nets=nets, optim={"generator": {"lr": 1e-4}, "extractor": {"lr": 1e-5}, "discriminator": {"lr": 1e-4}},
        init_from={"extractor": {"source": cufed["vgg"], "format": "torchvision"}}, ema={})
    path = write_config(tmp / "tiny_ttsr.yaml", cfg)
    return {"out": run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=False),
            "config": path}


def test_tiny_ttsr_gan_trains_every_loss_and_validates(trained):
    out = trained["out"]
    assert out.metrics["step"] == 2
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    assert {"loss/pix", "loss/perceptual", "loss/transferal", "loss/gan", "loss/d_real", "loss/d_fake"} <= set(logged)
    assert np.isfinite(logged["val/psnr"]) and np.isfinite(logged["val/ssim"])
    assert any(a.path.endswith(".png") for a in client.list_artifacts(out.mlflow_run_id, "val"))


def test_eval_scores_cufed5_and_its_bicubic_baseline(trained, cufed):
    from pipelines.config import load_experiment
    from pipelines.evaluate import evaluate
    from pipelines.infer import load_nets

    cfg = load_experiment(trained["config"], check_paths=False)
    nets, source = load_nets(cfg, str(Path(trained["out"].checkpoint_dir) / "checkpoint.pt"))
    assert set(nets) == {"generator", "extractor", "discriminator"}
    report = evaluate(cfg, nets, cufed["val"])
    assert report["num_samples"] == 2
    assert all(np.isfinite(report[k]) for k in ("model_psnr", "model_ssim", "bicubic_psnr"))


def test_infer_with_a_reference_folder_and_a_missing_reference(trained, cufed, tmp_path):
    lr = tmp_path / "lr"
    _png(lr / "a.png", textured_image(16, 20, seed=7))
    _png(tmp_path / "refs/a.png", textured_image(30, 41, seed=8))
    cmd = [*RESTORAY, "infer", str(trained["config"]), str(lr / "a.png"), "--ref", str(tmp_path / "refs"),
           "--checkpoint", str(Path(trained["out"].checkpoint_dir) / "checkpoint.pt"), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert cv2.imread(str(tmp_path / "out/a.png")).shape == (64, 80, 3)
    _png(lr / "b.png", textured_image(16, 20, seed=9))
    done = subprocess.run([*cmd[:5], str(lr / "b.png"), *cmd[6:]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no ref named b.*" in done.stdout + done.stderr
    done = subprocess.run([*cmd[:6], *cmd[8:]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "needs a ref for each image (--ref FILE or FOLDER)" in done.stdout + done.stderr

"""GLEAN on real parts: every glean zoo config against its checkpoint key map, then a tiny GLEAN
(16 -> 64 px, StyleGAN2 widths / 32) trained through FFHQ/CelebA-HQ-layout shards, Ray Data and
TorchTrainer, started from a StyleGAN2 file in mmgen's published layout that the test writes;
then ``restoray eval`` and ``restoray infer`` with the trained checkpoint."""

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

from conftest import REPO, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "sr_gan"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
ZOO = ["glean_in128out1024_4x2_300k_ffhq_celebahq", "glean_ffhq_16x", "glean_cat_8x", "glean_cat_16x"]
TINY_NETS = {
    "generator": {"name": "glean", "in_size": 16, "out_size": 64, "style_channels": 16, "num_mlps": 1,
                  "rrdb_channels": 8, "num_rrdbs": 1, "width_divisor": 32},
    "discriminator": {"name": "stylegan2_disc", "in_size": 64, "width_divisor": 32},
}


def test_every_glean_zoo_config_is_here_and_matches_its_checkpoint():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    present = {p.stem for p in CONFIGS.glob("glean*.yaml")}
    assert present == set(ZOO)
    for name in sorted(present):
        ref = json.loads((KEYS / f"{name}.json").read_text())
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        assert cfg.task.name == "glean" and cfg.task.stylegan2_weights.endswith(".pth")
        nets = build_nets(cfg, "meta")
        for role, net in nets.items():
            keys = ref[role]["keys"]
            report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in keys.items()})
            assert report.ok, f"{name} {role}: {report.summary()}"


def _stylegan2_file(path: Path) -> Path:
    """A tiny StyleGAN2 checkpoint in mmgen's layout, with the tiny config's shapes."""
    from trainers.archs import build_arch

    torch.manual_seed(3)
    bank = build_arch("glean", **{k: v for k, v in TINY_NETS["generator"].items() if k != "name"}).generator
    disc = build_arch("stylegan2_disc", **{k: v for k, v in TINY_NETS["discriminator"].items() if k != "name"})
    state = {f"generator_ema.{k}": v for k, v in bank.state_dict().items()}
    state |= {f"generator.{k}": v * 0 for k, v in bank.state_dict().items()}
    state |= {f"discriminator.{k}": v for k, v in disc.state_dict().items()}
    torch.save({"meta": {"mmgen_version": "0.3.0"}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory) -> dict:
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("glean")
    write_photos(root / "raw/FFHQ/GT", 4, (64, 64), seed=80)
    (root / "raw/FFHQ/meta_info_FFHQ_GT.txt").write_text(
        "".join(f"photo{i:02d}.png (64,64,3)\n" for i in range(4)))
    write_photos(root / "raw/CelebA-HQ/GT", 3, (64, 64), seed=90)
    (root / "raw/CelebA-HQ/meta_info_CelebAHQ_val100_GT.txt").write_text("photo00.png (64,64,3)\nphoto02.png (64,64,3)\n")
    shard_dataset(str(root / "raw/FFHQ"), str(root / "shards/train"), "ffhq", {}, items_per_shard=2)
    shard_dataset(str(root / "raw/CelebA-HQ"), str(root / "shards/val"), "celeba_hq", {"split": "glean_val"},
                  items_per_shard=2)
    weights = _stylegan2_file(root / "stylegan2-tiny.pth")
    zoo = load_experiment(CONFIGS / "glean_ffhq_16x.yaml", check_paths=False).task.model_dump()
    task = zoo | {"data": zoo["data"] | {"scale": 4, "gt_size": 64}, "stylegan2_weights": str(weights),
                  "perceptual": zoo["perceptual"] | {"vgg_weights": None, "allow_random_init": True}}
    cfg = tiny_experiment(str(root / "shards/train"), str(root / "shards/val"), str(root / "runs"), name="tiny_glean",
                          data={"batch_size": 2},
                          train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
                          scaling={"num_workers": 1, "cpus_per_worker": 0.5})
    cfg.update(task=task, nets=TINY_NETS, optim={r: {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.99]} for r in TINY_NETS},
               ema={})
    path = write_config(root / "tiny_glean.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=root, register=False)
    return {"out": out, "config": path, "root": root, "weights": weights}


def test_tiny_glean_trains_from_the_stylegan2_file_with_its_bank_frozen(trained):
    from trainers.checkpoint_io import load_checkpoint_file

    out = trained["out"]
    assert out.metrics["step"] == 2
    logged = MlflowClient(tracking_uri=out.tracking_uri).get_run(out.mlflow_run_id).data.metrics
    assert {"loss/g_pix", "loss/g_percep", "loss/g_gan", "loss/d_real", "loss/d_fake"} <= set(logged)
    assert np.isfinite(logged["val/psnr"]) and np.isfinite(logged["val/ssim"])
    ckpt = load_checkpoint_file(Path(out.checkpoint_dir) / "checkpoint.pt")
    file = load_checkpoint_file(trained["weights"])["state_dict"]
    g, d = ckpt["nets"]["generator"], ckpt["nets"]["discriminator"]
    bank = {k[len("generator."):]: v for k, v in g.items() if k.startswith("generator.")}
    assert bank and all(torch.equal(v, file[f"generator_ema.{k}"]) for k, v in bank.items())  # frozen
    moved = [k for k, v in d.items() if not torch.equal(v, file[f"discriminator.{k}"])]
    assert moved  # the critic started from the file's discriminator and trained


def test_eval_and_infer_use_the_trained_checkpoint(trained, tmp_path):
    ckpt = str(Path(trained["out"].checkpoint_dir) / "checkpoint.pt")
    done = subprocess.run([*RESTORAY, "eval", str(trained["config"]), "--checkpoint", ckpt, "--json",
                           str(tmp_path / "eval.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["num_samples"] == 2 and np.isfinite(scores["model_psnr"]) and "bicubic_psnr" in scores
    src = cv2.imread(str(trained["root"] / "raw/CelebA-HQ/GT/photo01.png"))
    cv2.imwrite(str(tmp_path / "lq16.png"), cv2.resize(src, (16, 16), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(tmp_path / "face.png"), src)  # 64 px: area-resized to in_size first, as the zoo demo
    done = subprocess.run([*RESTORAY, "infer", str(trained["config"]), str(tmp_path / "lq16.png"),
                           str(tmp_path / "face.png"), "--checkpoint", ckpt, "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("lq16.png", "face.png"):
        assert cv2.imread(str(tmp_path / "out" / name)).shape == (64, 64, 3)

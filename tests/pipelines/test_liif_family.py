"""LIIF on real parts: generated photos -> GT-only shards -> a tiny ``liif_edsr`` trained two steps
through the Ray Data stream and TorchTrainer (shared ``ray_session``) -> MLflow metrics per
evaluation scale and the multi-scale preview -> ``restoray eval`` (model and bicubic per scale)
-> ``restoray infer`` at a real-valued scale and at a given size, and its bad-input errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
SCALES = [4, 2, 30]


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory) -> dict:
    from shard_helpers import shard_dataset

    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    root = tmp_path_factory.mktemp("liif")
    write_photos(root / "raw/train", 3, (70, 76), seed=80)
    write_photos(root / "raw/val", 2, (100, 96), seed=90)  # x30 with crop_border 30 leaves 30x30
    for name in ("train", "val"):
        shard_dataset(str(root / f"raw/{name}"), str(root / f"shards/{name}"), "image_folder", {"crop": False},
                      items_per_shard=2)
    cfg = tiny_experiment(str(root / "shards/train"), str(root / "shards/val"), str(root / "runs"), name="tiny_liif",
                          data={"batch_size": 2},
                          train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
                          scaling={"num_workers": 1, "cpus_per_worker": 0.5})
    cfg.update(task={"name": "liif", "data": {"lq_patch": 8, "sample_quantity": 64},
                     "norm": {"rgb_mean": [0.4488, 0.4371, 0.404], "rgb_std": [1, 1, 1]}, "eval": {"scales": SCALES}},
               nets={"generator": {"name": "liif_edsr", "encoder": {"type": "EDSR", "mid_channels": 8, "num_blocks": 1},
                                   "imnet": {"type": "MLPRefiner", "out_dim": 3, "hidden_list": [16]},
                                   "eval_bsize": 500}},
               ema={})
    path = write_config(root / "tiny_liif.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=root, register=False)
    return {"out": out, "config": path, "root": root, "checkpoint": str(Path(out.checkpoint_dir) / "checkpoint.pt")}


def test_trains_and_logs_every_scale(trained):
    out = trained["out"]
    assert out.metrics["step"] == 2
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    assert "loss/l1" in logged
    for s in SCALES:
        for m in ("psnr", "ssim"):
            assert np.isfinite(logged[f"val/{m}_x{s}"]), (m, s)
    previews = [a.path for a in client.list_artifacts(out.mlflow_run_id, "val") if a.path.endswith(".png")]
    assert previews
    picture = cv2.imread(client.download_artifacts(out.mlflow_run_id, previews[0], str(trained["root"])))
    assert picture.shape == (100, 96 * (len(SCALES) + 1), 3)  # one panel per scale, then GT


def test_eval_scores_model_and_bicubic_per_scale(trained, tmp_path):
    import json

    from pipelines.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", str(trained["config"]), "--checkpoint", trained["checkpoint"], "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["num_samples"] == 2
    assert {f"{w}_{m}_x{s}" for w in ("model", "bicubic") for m in ("psnr", "ssim") for s in SCALES} <= set(res)
    assert res["bicubic_psnr_x2"] > res["bicubic_psnr_x30"]  # the per-scale inputs really differ


def test_infer_at_a_real_scale_and_at_a_size(trained, tmp_path):
    from pipelines.cli import main

    image = trained["root"] / "raw/val/photo00.png"
    base = ["infer", str(trained["config"]), str(image), "--checkpoint", trained["checkpoint"]]
    assert main([*base, "--out", str(tmp_path / "a"), "--scale", "2.5"]) == 0
    assert cv2.imread(str(tmp_path / "a/photo00.png")).shape == (250, 240, 3)  # round(100 * 2.5), round(96 * 2.5)
    assert main([*base, "--out", str(tmp_path / "b"), "--size", "97x131"]) == 0
    assert cv2.imread(str(tmp_path / "b/photo00.png")).shape == (131, 97, 3)


@pytest.mark.parametrize("option, value, msg", [("--scale", "0.5", "--scale must be a real number >= 1"),
                                                ("--scale", "-2", "--scale must be a real number >= 1"),
                                                ("--scale", "zero", "--scale must be a real number >= 1"),
                                                ("--size", "0x10", "--size must be WxH")])
def test_bad_scale_or_size_is_one_line_exit_2(option, value, msg, tmp_path, capsys):
    from pipelines.cli import main

    cfg = REPO / "configs/sr/liif_edsr_norm_c64b16_g1_1000k_div2k.yaml"
    rc = main(["infer", str(cfg), "x.png", "--checkpoint", "c.pth", "--out", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_scale_on_a_fixed_scale_model_is_refused(tmp_path, capsys):
    from pipelines.cli import main

    cfg = REPO / "configs/sr/edsr_x4c64b16_1x16_300k_div2k.yaml"
    rc = main(["infer", str(cfg), "x.png", "--checkpoint", "c.pth", "--out", str(tmp_path), "--scale", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "arbitrary-scale models (liif), not sr" in err and err.count("\n") == 1

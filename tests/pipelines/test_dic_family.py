"""DIC on real parts: generated faces with 68 landmarks -> ``restoray shard`` (celeba_hq with a
landmark file) -> training through Ray Data and TorchTrainer (DIC's recipe at tiny widths: every
step's pixel and heatmap losses) -> checkpoint -> ``restoray eval`` -> ``restoray infer``; and a
landmark file with a wrong point count stops ``restoray shard`` with one line naming the file and
the image. DIC-GAN's extra parts (LightCNN feature and GAN losses, discriminator updates) cost
~8 s a step on CPU here; their step is tested in tests/trainers/test_dic_task.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, textured_image, tiny_experiment, write_config

pytestmark = pytest.mark.slow
ZOO = REPO / "configs" / "sr" / "dic_x8c48b6_g4_150k_CelebAHQ.yaml"
TINY_NET = dict(in_channels=3, out_channels=3, mid_channels=8, num_blocks=2, hg_mid_channels=16, num_steps=2,
                num_fusion_blocks=1)


def _faces(folder: Path, n: int, seed: int) -> dict[str, list[list[float]]]:
    """``n`` 40 x 48 (h x w) images and 68 landmarks each (pixels of that image)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, table = np.random.default_rng(seed), {}
    for i in range(n):
        cv2.imwrite(str(folder / f"face{i}.png"), cv2.cvtColor(textured_image(40, 48, seed + i), cv2.COLOR_RGB2BGR))
        table[f"face{i}.png"] = (rng.uniform(0, 1, (68, 2)) * [47, 39]).round(2).tolist()
    return table


def _shard_config(path: Path, source: Path, dest: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump({"source": str(source), "dest": str(dest), "adapter": "celeba_hq",
                                    "params": {"split": "train", **params}, "items_per_shard": 2}))
    return path


@pytest.fixture(scope="module")
def dic_run(ray_session, tmp_path_factory) -> dict:
    from pipelines.cli import main
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    root = tmp_path_factory.mktemp("dic")
    table = _faces(root / "raw/train", 4, seed=11)
    _faces(root / "raw/val", 2, seed=31)
    (root / "raw/landmarks.json").write_text(json.dumps(table))
    assert main(["shard", str(_shard_config(root / "train.yaml", root / "raw", root / "shards/train",
                                            {"image_dir": "train", "landmarks": "landmarks.json"}))]) == 0
    assert main(["shard", str(_shard_config(root / "val.yaml", root / "raw", root / "shards/val",
                                            {"image_dir": "val", "ann_file": ""}))]) == 0
    task = yaml.safe_load(ZOO.read_text())["task"]
    cfg = tiny_experiment(str(root / "shards/train"), str(root / "shards/val"), str(root / "runs"), name="tiny_dic",
                          data={"batch_size": 2},
                          train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
                          scaling={"num_workers": 1, "cpus_per_worker": 0.5})
    cfg.update(task=task, nets={"generator": {"name": "dicnet", **TINY_NET}},
               optim={"generator": {"name": "adam", "lr": 1e-4}}, ema={})
    path = write_config(root / "tiny_dic.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=root)
    return {"root": root, "config": path, "out": out, "checkpoint": str(Path(out.checkpoint_dir) / "checkpoint.pt")}


def test_dic_trains_on_landmark_shards_and_logs_its_losses_and_preview(dic_run):
    out = dic_run["out"]
    assert out.metrics["step"] == 2
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    want = {"loss/pixel_v0", "loss/pixel_v1", "loss/align_v0", "loss/align_v1", "val/psnr", "val/ssim"}
    assert want <= set(logged), sorted(logged)
    assert np.isfinite(logged["val/psnr"])
    previews = [a.path for a in client.list_artifacts(out.mlflow_run_id, "val") if a.path.endswith(".png")]
    assert previews
    picture = cv2.imread(client.download_artifacts(out.mlflow_run_id, previews[0], str(dic_run["root"])))
    assert picture.shape == (128, 4 * 128, 3)  # LQ | output | output + landmarks | GT


def test_eval_and_infer_with_the_trained_checkpoint(dic_run, capsys):
    from pipelines.cli import main

    root, config, ckpt = dic_run["root"], str(dic_run["config"]), dic_run["checkpoint"]
    assert main(["eval", config, "--checkpoint", ckpt, "--json", str(root / "eval.json")]) == 0
    result = json.loads((root / "eval.json").read_text())
    assert result["num_samples"] == 2 and np.isfinite(result["model_psnr"]) and "bicubic_psnr" in result
    assert main(["infer", config, str(root / "raw/val/face0.png"), "--checkpoint", ckpt, "--out",
                 str(root / "out")]) == 0
    assert cv2.imread(str(root / "out/face0.png")).shape == (128, 128, 3)


def test_wrong_landmark_count_stops_shard_with_one_line(tmp_path, capsys):
    from pipelines.cli import main

    table = _faces(tmp_path / "raw/train", 2, seed=3)
    table["face1.png"] = table["face1.png"][:67]
    (tmp_path / "raw/lm.json").write_text(json.dumps(table))
    cfg = _shard_config(tmp_path / "s.yaml", tmp_path / "raw", tmp_path / "shards",
                        {"image_dir": "train", "landmarks": "lm.json"})
    assert main(["shard", str(cfg)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lm.json: image face1.png has 67 points, expected 68" in err[0], err

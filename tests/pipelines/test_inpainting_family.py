"""The inpainting family on real parts: every zoo config against its checkpoint key map, DeepFill v2
and PConv trained through image shards, Ray Data and TorchTrainer (tiny widths, two steps), then
``restoray eval`` and ``restoray infer --mask`` with the trained checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
CONFIGS = REPO / "configs" / "inpainting"
KEYS = REPO / "tests" / "data" / "mmedit_checkpoint_keys"
KEY_MAP = {  # CelebA and stage-1 configs build the networks of the Places / stage-2 key maps
    "deepfillv1_256x256_8x2_places": "deepfillv1_256x256_8x2_places",
    "deepfillv1_256x256_4x4_celeba": "deepfillv1_256x256_8x2_places",
    "deepfillv2_256x256_8x2_places": "deepfillv2_256x256_8x2_places",
    "deepfillv2_256x256_8x2_celeba": "deepfillv2_256x256_8x2_places",
    "gl_256x256_8x12_places": "gl_256x256_8x12_places",
    "gl_256x256_8x12_celeba": "gl_256x256_8x12_places",
    "pconv_256x256_stage1_8x1_places": "pconv_256x256_stage2_4x2_places",
    "pconv_256x256_stage1_8x1_celeba": "pconv_256x256_stage2_4x2_places",
    "pconv_256x256_stage2_4x2_places": "pconv_256x256_stage2_4x2_places",
    "pconv_256x256_stage2_4x2_celeba": "pconv_256x256_stage2_4x2_places",
    "AOT-GAN_512x512_4x12_places": "AOT-GAN_512x512_4x12_places",
}


def test_every_inpainting_zoo_config_is_here_and_matches_its_checkpoint():
    from pipelines.config import load_experiment
    from pipelines.train_job import build_nets
    from trainers.checkpoint_io import compare_state_dict

    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(KEY_MAP)
    for name, key_map in KEY_MAP.items():
        ref = json.loads((KEYS / f"{key_map}.json").read_text())
        zoo = {"generator": ref["generator"]["keys"]} | ({"disc": ref["discriminator"]["keys"]} if ref["discriminator"] else {})
        cfg = load_experiment(CONFIGS / f"{name}.yaml", check_paths=False)
        nets = build_nets(cfg, "meta")
        assert set(nets) == set(zoo), name
        for role, net in nets.items():
            report = compare_state_dict(net, {k: torch.empty(s, device="meta") for k, s in zoo[role].items()})
            assert report.ok, f"{name} {role}: {report.summary()}"


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory) -> dict[str, str]:
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("inpainting")
    write_photos(root / "raw/train", 4, (72, 88), seed=60)
    write_photos(root / "raw/val", 2, (80, 80), seed=70)
    out = {"root": str(root)}
    for name in ("train", "val"):
        shard_dataset(str(root / f"raw/{name}"), str(root / f"shards/{name}"), "image_folder", {"crop": False},
                      items_per_shard=2)
        out[name] = str(root / f"shards/{name}")
    return out


SMALL_IRREGULAR = {"type": "irregular", "num_vertices": [4, 8], "length_range": [5, 20], "brush_width": [4, 10]}


def inpainting_experiment(shards, storage: str, name: str, zoo: str, nets: dict, size: int, **task) -> dict:
    zoo_cfg = yaml.safe_load((CONFIGS / f"{zoo}.yaml").read_text())
    t = zoo_cfg["task"] | task
    t["data"] = {"size": [size, size], "crop_size": [size, size], "mask": SMALL_IRREGULAR}
    if "perceptual" in t:
        t["perceptual"] = t["perceptual"] | {"vgg_weights": None, "allow_random_init": True}
    cfg = tiny_experiment(shards["train"], shards["val"], storage, name=name, data={"batch_size": 2},
                          train={"total_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
                          scaling={"num_workers": 1, "cpus_per_worker": 0.5})
    cfg.update(task=t, nets=nets, optim={r: {"name": "adam", "lr": 1e-4} for r in nets}, ema={})
    return cfg


@pytest.fixture(scope="module")
def trained(ray_session, image_shards, tmp_path_factory) -> dict:
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    tmp = tmp_path_factory.mktemp("inpainting_runs")
    runs = {}
    for key, zoo, nets, task in (
        ("deepfill_v2", "deepfillv2_256x256_8x2_places",
         {"generator": {"name": "deepfill_v2", "channel_factor": 0.125, "stage2_decoder_channel_factor": 0.25},
          "disc": {"name": "deepfill_v2_disc", "max_channels": 8}}, {"size": 80}),
        ("pconv", "pconv_256x256_stage2_4x2_places", {"generator": {"name": "pconv", "num_layers": 4}},
         {"size": 64, "pad_multiple": 16}),
    ):
        path = write_config(tmp / f"{key}.yaml", inpainting_experiment(image_shards, str(tmp / "runs"), key, zoo, nets, **task))
        runs[key] = {"out": run_train(load_experiment(path), config_file=str(path), workdir=tmp, register=True),
                     "config": path}
    return runs


def test_deepfill_v2_and_pconv_train_and_report_their_metrics(trained):
    for key, losses in (("deepfill_v2", {"loss/d_fake", "loss/d_real", "loss/g_gan", "loss/stage2_l1_hole"}),
                        ("pconv", {"loss/l1_hole", "loss/l1_valid", "loss/percep", "loss/comp_style", "loss/tv"})):
        out = trained[key]["out"]
        assert out.metrics["step"] == 2
        client = MlflowClient(tracking_uri=out.tracking_uri)
        logged = client.get_run(out.mlflow_run_id).data.metrics
        assert losses <= set(logged), (key, sorted(logged))
        for metric in ("val/l1", "val/psnr", "val/ssim"):
            assert metric in logged and np.isfinite(logged[metric]), (key, metric)
        assert any(a.path.endswith(".png") for a in client.list_artifacts(out.mlflow_run_id, "val")), key


def test_validation_masks_are_fixed_so_eval_repeats_exactly(trained, image_shards):
    from pipelines.config import load_experiment
    from pipelines.evaluate import evaluate
    from pipelines.infer import load_nets

    run = trained["pconv"]
    cfg = load_experiment(run["config"], check_paths=False)
    nets, _ = load_nets(cfg, str(Path(run["out"].checkpoint_dir) / "checkpoint.pt"))
    first = evaluate(cfg, nets, image_shards["val"])
    again = evaluate(cfg, nets, image_shards["val"])
    assert first["num_samples"] == 2 and first["directions"] == {"l1": "min", "psnr": "max", "ssim": "max"}
    assert first["per_sample"] == again["per_sample"]
    # scores per hole-area bucket as well (AOT-GAN's tables): every sample in exactly one
    assert sum(g["num_samples"] for g in first["by_group"].values()) == 2
    assert all(g.endswith("%") and set(s) == {"num_samples", "model_l1", "model_psnr", "model_ssim"}
               for g, s in first["by_group"].items())


def test_infer_with_a_mask_fills_only_the_hole(trained, image_shards, tmp_path):
    run = trained["deepfill_v2"]
    image = Path(image_shards["root"]) / "raw/val/photo00.png"
    mask = np.zeros((80, 80), np.uint8)
    mask[20:40, 16:44] = 255
    cv2.imwrite(str(tmp_path / "photo00.png"), mask)
    cmd = [*RESTORAY, "infer", str(run["config"]), str(image), "--mask", str(tmp_path),
           "--checkpoint", str(Path(run["out"].checkpoint_dir) / "checkpoint.pt"), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out, src = cv2.imread(str(tmp_path / "out/photo00.png")), cv2.imread(str(image))
    assert out.shape == src.shape and (out[mask == 0] == src[mask == 0]).all()

    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "photo00.png"), (mask > 0).astype(np.uint8) * 100)
    done = subprocess.run([*cmd[:7], str(bad), *cmd[8:]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "not binary" in done.stdout + done.stderr


def test_global_local_killed_inside_a_phase_resumes_bit_identical(ray_session, image_shards, tmp_path):
    """Global&Local with phase boundaries at steps 2 and 4 of 6, SIGKILLed after its first committed
    checkpoint (step 3: the discriminator-only phase), then resumed by the same command: the
    phases continue where they were and every weight, optimizer state and the step equal an
    uninterrupted run's (one worker, CPU)."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    from conftest import kill_after_first_checkpoint

    nets = {"generator": {"name": "gl"},
            "disc": {"name": "gl_disc", "max_channels": 16, "global_num_convs": 5, "local_num_convs": 4,
                     "global_fc_in_channels": 64, "local_fc_in_channels": 64}}

    def experiment(storage: Path) -> dict:
        cfg = inpainting_experiment(image_shards, str(storage), "tiny_gl", "gl_256x256_8x12_celeba", nets, size=64,
                                    local_size=32, iter_tc=2, iter_td=4, start_iter=0)
        cfg["task"]["data"]["mask"] = {"type": "bbox", "max_bbox_shape": [24, 24], "max_bbox_delta": 4, "min_margin": 4}
        cfg["train"].update(total_steps=6, val_every=6, checkpoint_every=3)
        return cfg

    path_a = write_config(tmp_path / "a.yaml", experiment(tmp_path / "a"))
    state_a = torch.load(Path(run_train(load_experiment(path_a), workdir=tmp_path / "a", register=False).checkpoint_dir)
                         / "checkpoint.pt", map_location="cpu", weights_only=True)
    storage_b = tmp_path / "b"
    path_b = write_config(tmp_path / "b.yaml", experiment(storage_b))
    cmd = [*RESTORAY, "train", str(path_b), "--workdir", str(storage_b), "--no-register"]
    kill_after_first_checkpoint(cmd, storage_b, "tiny_gl", tmp_path / "b.log")
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert "resuming run 'tiny_gl' from step 3" in second.stdout
    final = json.loads(second.stdout[second.stdout.index("{\n"):])
    state_b = torch.load(Path(final["checkpoint"]) / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state_a["step"] == state_b["step"] == 6
    for section in ("nets", "optimizers"):
        for role in state_a[section]:
            a, b = state_a[section][role], state_b[section][role]
            flat_a = a if section == "nets" else {f"{k}.{j}": t for k, st in a["state"].items() for j, t in st.items()}
            flat_b = b if section == "nets" else {f"{k}.{j}": t for k, st in b["state"].items() for j, t in st.items()}
            assert flat_a.keys() == flat_b.keys(), (section, role)
            for k in flat_a:
                assert torch.equal(torch.as_tensor(flat_a[k]), torch.as_tensor(flat_b[k])), (section, role, k)

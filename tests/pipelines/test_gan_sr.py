"""The GAN SR family on real parts: shards -> Ray Data -> 2-worker TorchTrainer, every loss term in
MLflow, a v2 checkpoint, SIGKILL + resume that ends bit-identical to an uninterrupted run (one
worker), and ``init_from`` from a file, from S3 (moto) and from an MLflow alias.

Networks are tiny (RRDBNet 8 channels, U-Net discriminator 4 channels, the first VGG19 layers with
random weights) so a run costs seconds; the step is the real one (``trainers/tasks/sr_gan.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, kill_after_first_checkpoint, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
GENERATOR = {"name": "rrdbnet", "in_channels": 3, "out_channels": 3, "mid_channels": 8, "num_blocks": 1,
             "growth_channels": 4, "upscale_factor": 4}


@pytest.fixture(scope="module")
def niqe_val_shards(tmp_path_factory) -> str:
    """Held-out photos big enough for NIQE's 96 px blocks after x4 and the crop border."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("gan_val")
    write_photos(root / "raw", 2, (208, 224), seed=200)
    shard_dataset(str(root / "raw"), str(root / "shards"), "image_folder", {"crop": False}, items_per_shard=2)
    return str(root / "shards")


@pytest.fixture(scope="module")
def zoo_generator(tmp_path_factory) -> tuple[Path, dict]:
    """A zoo-layout file (generator. and generator_ema. prefixes) with seeded tiny RRDBNet weights."""
    from trainers.archs import build_arch

    torch.manual_seed(123)
    net = build_arch(**GENERATOR)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path_factory.mktemp("zoo") / "tiny_realesrnet.pth"
    zoo = {f"generator.{k}": v for k, v in state.items()} | {f"generator_ema.{k}": v * 0.5 for k, v in state.items()}
    torch.save({"meta": {}, "state_dict": zoo}, path)
    return path, {k: v * 0.5 for k, v in state.items()}  # EMA copies are preferred


def gan_experiment(train: str, val: str, storage: str, **sections) -> dict:
    cfg = tiny_experiment(
        train, val, storage, name="tiny_gan",
        task={"name": "sr_gan",
              "data": {"scale": 4, "gt_size": 48, "out_size": 32, "use_rot": False,
                       "degradation": {"preset": "realesrgan"}},
              "pixel": {"name": "l1", "weight": 1.0},
              "perceptual": {"layer_weights": {"2": 0.1, "7": 0.1}, "vgg_type": "vgg19", "style_weight": 0.0,
                             "norm_img": False, "allow_random_init": True},
              "gan": {"type": "vanilla", "weight": 0.1},
              "sharpened_gt_in": ["pixel", "perceptual"],
              "eval": {"crop_border": 4}},
        nets={"generator": GENERATOR, "discriminator": {"name": "unet_disc_sn", "in_channels": 3, "mid_channels": 4}},
        optim={"generator": {"lr": 1e-4, "betas": [0.9, 0.99]}, "discriminator": {"lr": 1e-4, "betas": [0.9, 0.99]}},
        data={"pool_size": 8},
        train={"total_steps": 12, "log_every": 2, "val_every": 6, "checkpoint_every": 3},
    )
    for section, values in sections.items():
        cfg[section] = values if not isinstance(values, dict) else {**cfg.get(section, {}), **values}
    return cfg


def _state(checkpoint_dir: str) -> dict:
    return torch.load(Path(checkpoint_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)


def _assert_same_tensors(a, b, where: str = "") -> None:
    """Nested dicts/lists of tensors and numbers are equal, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_gan_run_logs_every_term_and_a_killed_run_resumes_bit_identical(
        ray_session, tiny_shards, niqe_val_shards, zoo_generator, tmp_path):
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    init = {"generator": str(zoo_generator[0])}
    # A: uninterrupted, in this process
    cfg_a = gan_experiment(tiny_shards["train"], niqe_val_shards, str(tmp_path / "a"), init_from=init)
    path_a = write_config(tmp_path / "a.yaml", cfg_a)
    out = run_train(load_experiment(path_a), config_file=str(path_a), workdir=tmp_path / "a", register=True)
    assert out.metrics["step"] == 12
    client = MlflowClient(tracking_uri=out.tracking_uri)
    logged = client.get_run(out.mlflow_run_id).data.metrics
    for key in ("loss/g_pix", "loss/g_percep", "loss/g_gan", "loss/d_real", "loss/d_fake", "disc/real_pred",
                "disc/fake_pred", "lr/generator", "lr/discriminator", "val/psnr", "val/ssim"):
        assert key in logged and logged[key] == logged[key], key  # logged, and not NaN
    # NIQE is logged too; a 12-step generator's output is nearly flat, which has no NIQE (NaN):
    # tests/trainers/test_sr_gan_task.py checks the score on textured outputs
    assert "val/niqe" in logged
    state_a = _state(out.checkpoint_dir)
    assert state_a["format"] == "restoray/2" and set(state_a["nets"]) == {"generator", "discriminator"}
    assert set(state_a["optimizers"]) == {"generator", "discriminator"} and set(state_a["ema"]) == {"generator"}
    assert state_a["arch"]["discriminator"] == {"name": "unet_disc_sn", "kwargs": {"in_channels": 3, "mid_channels": 4}}
    assert len(state_a["pair_pool"]) == 2
    # registered: both networks as state dicts, no pickled module
    version = client.search_model_versions("name='tiny_gan'")[0]
    from pipelines import registry

    payload = registry.load(out.tracking_uri, f"models:/tiny_gan/{version.version}")
    assert payload["task"] == "sr_gan" and set(payload["nets"]) == {"generator", "discriminator"}
    _assert_same_tensors(payload["nets"]["generator"], state_a["ema"]["generator"])

    # One worker, so that which samples make up each step is fixed (with several, Ray Data's
    # streaming_split hands blocks to whichever worker asks first): A1 uninterrupted here, B the
    # same run from the CLI, SIGKILLed after its first committed checkpoint, then resumed.
    one = {"num_workers": 1, "cpus_per_worker": 0.5}
    path_a1 = write_config(tmp_path / "a1.yaml", gan_experiment(
        tiny_shards["train"], niqe_val_shards, str(tmp_path / "a1"), init_from=init, scaling=one))
    state_a = _state(run_train(load_experiment(path_a1), workdir=tmp_path / "a1", register=False).checkpoint_dir)
    storage_b = tmp_path / "b"
    path_b = write_config(tmp_path / "b.yaml", gan_experiment(
        tiny_shards["train"], niqe_val_shards, str(storage_b), init_from=init, scaling=one))
    cmd = [*RESTORAY, "train", str(path_b), "--workdir", str(storage_b), "--no-register"]
    kill_after_first_checkpoint(cmd, storage_b, "tiny_gan", tmp_path / "b.log")
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert "resuming run 'tiny_gan' from step" in second.stdout
    final = json.loads(second.stdout[second.stdout.index("{\n"):])
    state_b = _state(final["checkpoint"])
    resumed_at = int(second.stdout.split("resuming run 'tiny_gan' from step ")[1].split()[0])
    assert 0 < resumed_at < 12
    # generator, discriminator, both optimizers, EMA, schedulers and pools: as if never killed
    for key in ("nets", "ema", "optimizers", "schedulers", "pair_pool", "step", "samples_seen"):
        _assert_same_tensors(state_a[key], state_b[key], key)


def test_init_from_file_s3_and_registry(ray_session, s3_bucket, zoo_generator, tiny_shards, tmp_path, monkeypatch):
    """The three kinds of source give the same weights on the driver (EMA preferred), checked
    against the network before anything is shipped; a source that does not fit is one line."""
    import boto3
    import ray

    from pipelines import registry
    from pipelines.schema import ExperimentConfig
    from pipelines.train_job import resolve_init
    from trainers.checkpoint_io import CheckpointError

    path, expected = zoo_generator
    boto3.client("s3").upload_file(str(path), s3_bucket, "zoo/tiny.pth")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())).info.run_id
    registry.register(uri, run_id, "tiny", "sr", {}, {"generator": expected})
    client.set_registered_model_alias("tiny", "champion", "1")

    def cfg_with(source, **init):
        raw = tiny_experiment(tiny_shards["train"], tiny_shards["val"], "runs", nets={"generator": GENERATOR},
                              init_from={"generator": {"source": source, **init}})
        return ExperimentConfig.model_validate(raw)

    for source in (str(path), f"s3://{s3_bucket}/zoo/tiny.pth", "models:/tiny@champion"):
        ref, strict = resolve_init(cfg_with(source), uri)["generator"]
        assert strict
        _assert_same_tensors(ray.get(ref), expected, source)

    wrong = tiny_experiment(tiny_shards["train"], tiny_shards["val"], "runs",
                            nets={"generator": {**GENERATOR, "mid_channels": 16}},
                            init_from={"generator": str(path)})
    with pytest.raises(CheckpointError, match=r"init_from\.generator: .* does not fit: .*shape mismatches"):
        resolve_init(ExperimentConfig.model_validate(wrong), uri)
    loose = ExperimentConfig.model_validate(wrong | {"init_from": {"generator": {"source": str(path), "strict": False}}})
    ref, strict = resolve_init(loose, uri)["generator"]
    assert not strict and "conv_first.weight" not in ray.get(ref)  # the shapes that do not fit are left out
    with pytest.raises(ValueError, match="models:/nobody@champion: not in the registry"):
        resolve_init(cfg_with("models:/nobody@champion"), uri)


def test_v1_checkpoint_resumes_under_v2(ray_session, tiny_shards, tmp_path):
    """A run checkpointed by restoray/1 (one network, model/optimizer/scheduler keys) continues."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    storage = tmp_path / "runs"
    raw = tiny_experiment(tiny_shards["train"], tiny_shards["val"], str(storage), name="tiny_v1",
                          train={"total_steps": 4, "log_every": 2, "val_every": 100, "checkpoint_every": 4})
    path = write_config(tmp_path / "v1.yaml", raw)
    out = run_train(load_experiment(path), workdir=tmp_path, register=False)
    ckpt = Path(out.checkpoint_dir) / "checkpoint.pt"
    v2 = torch.load(ckpt, map_location="cpu", weights_only=True)
    v1 = {"format": "restoray/1", "model": v2["nets"]["generator"], "ema": v2["ema"]["generator"],
          "optimizer": v2["optimizers"]["generator"], "scheduler": v2["schedulers"]["generator"],
          "step": v2["step"], "samples_seen": v2["samples_seen"], "last_val": v2["last_val"],
          "data_position": v2["data_position"], "config": {}, "pair_pool": None}
    torch.save(v1, ckpt)
    path = write_config(tmp_path / "v1.yaml", raw | {"train": {**raw["train"], "total_steps": 6}})
    again = run_train(load_experiment(path), workdir=tmp_path, register=False)
    assert again.metrics["step"] == 6 and again.metrics["samples_seen"] == 6 * 8
    assert torch.load(Path(again.checkpoint_dir) / "checkpoint.pt", weights_only=True)["format"] == "restoray/2"

"""End-to-end training on real parts: Ray Train, S3 (moto server), an MLflow server, SIGKILL + resume.

These are the slow tests (a 2-worker TorchTrainer costs ~30 s here); each
checks several things of one run to keep the suite short.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, kill_after_first_checkpoint, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]


def test_shard_to_s3_train_from_s3_track_on_mlflow_server(ray_session, s3_bucket, tiny_shards, mlflow_server,
                                                          tmp_path, monkeypatch):
    from pipelines.config import ShardConfig, load_experiment
    from pipelines.shard_job import run_shard
    from pipelines.train_job import run_train

    raw = Path(tiny_shards["root"]) / "raw"
    train_uri, val_uri = f"s3://{s3_bucket}/shards/train", f"s3://{s3_bucket}/shards/val"
    # the training set in QOI (image_codec), the validation set in PNG: one run reads both
    manifest = run_shard(ShardConfig(source=str(raw / "train"), dest=train_uri, adapter="image_folder",
                                     params={"crop_size": 48, "step": 24, "image_codec": "qoi"}, items_per_shard=2))
    run_shard(ShardConfig(source=str(raw / "val"), dest=val_uri, adapter="image_folder",
                          params={"crop": False}, items_per_shard=2))
    assert manifest["num_samples"] > 0 and manifest["members"] == ["gt.qoi"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    cfg_path = write_config(tmp_path / "s3.yaml", tiny_experiment(
        train_uri, val_uri, f"s3://{s3_bucket}/runs", name="tiny_s3", mlflow={"experiment": "s3-test"}))
    cfg = load_experiment(cfg_path)
    out = run_train(cfg, config_file=str(cfg_path), workdir=tmp_path)

    assert out.tracking_uri == mlflow_server
    assert out.metrics["step"] == 12 and out.metrics["samples_seen"] == 12 * 8
    # checkpoints landed in the bucket
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="runs/")["Contents"]]
    assert any(k.endswith("/checkpoint.pt") for k in keys)

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(out.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["nets.generator.name"] == "edsr" and run.data.params["data.train"] == train_uri
    for metric in ("loss/l1", "lr/generator", "data/samples_per_s", "data/wait_fraction", "val/psnr", "val/ssim"):
        assert metric in run.data.metrics, metric
    history = client.get_metric_history(out.mlflow_run_id, "val/psnr")
    assert sorted(m.step for m in history) == [6, 12]
    artifacts = {a.path for a in client.list_artifacts(out.mlflow_run_id, "val")}
    assert {"val/preview_step0000006.png", "val/preview_step0000012.png"} <= artifacts
    assert [a.path for a in client.list_artifacts(out.mlflow_run_id, "config")] == ["config/s3.yaml"]
    versions = client.search_model_versions("name='tiny_s3'")
    assert len(versions) == 1 and versions[0].run_id == out.mlflow_run_id


def test_sigkill_driver_then_resume_continues_from_checkpoint(ray_session, tiny_shards, tmp_path):
    storage = tmp_path / "runs"
    # with the training-pair pool on: its state must come back from the checkpoint too
    cfg = tiny_experiment(tiny_shards["train"], tiny_shards["val"], str(storage), name="tiny_resume",
                          train={"total_steps": 40, "checkpoint_every": 4, "val_every": 40, "log_every": 4},
                          data={"pool_size": 8})
    cfg_path = write_config(tmp_path / "resume.yaml", cfg)
    cmd = [*RESTORAY, "train", str(cfg_path), "--workdir", str(tmp_path)]
    kill_after_first_checkpoint(cmd, storage, "tiny_resume", tmp_path / "first.log")
    from pipelines.train_job import latest_state

    killed_at = latest_state(str(storage), "tiny_resume")["step"]
    assert 0 < killed_at < 40

    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    resumed = [line for line in output.splitlines() if "resuming run 'tiny_resume' from step" in line]
    assert resumed, output[-3000:]
    step = int(resumed[0].split("from step ")[1].split()[0])
    assert step >= killed_at and step % 4 == 0
    assert f"({step * 8} samples seen)" in resumed[0]
    assert f"resumed at step {step} ({step * 8} samples seen)" in output  # the workers got the checkpoint
    assert "the pool refills" not in output  # ... and their pair pools
    final, _ = json.JSONDecoder().raw_decode(second.stdout[second.stdout.index("{\n"):])
    assert final["metrics"]["step"] == 40 and final["metrics"]["samples_seen"] == 40 * 8
    # one MLflow run across both attempts, with loss logged before and after the kill
    client = MlflowClient(tracking_uri=final["tracking_uri"])
    steps = [m.step for m in client.get_metric_history(final["mlflow_run_id"], "loss/l1")]
    assert min(steps) <= step and max(steps) == 40

    # running the finished command again is a no-op that keeps the run and its checkpoint
    third = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "already finished (40 steps); nothing to train" in third.stdout
    again, _ = json.JSONDecoder().raw_decode(third.stdout[third.stdout.index("{\n"):])
    assert again["mlflow_run_id"] == final["mlflow_run_id"] and again["checkpoint"] == final["checkpoint"]

    # the same run name with another architecture is refused before Ray starts (exit 2, one line),
    # and the finished run keeps its status
    fourth = subprocess.run([*cmd, "nets.generator.num_blocks=2"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert fourth.returncode == 2, fourth.stderr[-2000:]
    err = fourth.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("restoray: config error: nets.generator: run 'tiny_resume'"), err
    assert "num_blocks=1" in err[0] and "num_blocks=2" in err[0] and "another run.name" in err[0]
    assert "ray" not in fourth.stdout.lower()
    assert client.get_run(final["mlflow_run_id"]).info.status == "FINISHED"


def test_corrupt_inputs_are_quarantined_by_the_ray_shard_job(ray_session, tmp_path):
    from pipelines.config import ShardConfig
    from pipelines.shard_job import run_shard

    raw = tmp_path / "raw"
    good = write_photos(raw, 3, (40, 40))
    (raw / "empty.png").write_bytes(b"")
    (raw / "notes.png").write_text("not an image")
    (raw / "cut.png").write_bytes(good[0].read_bytes()[:200])
    cfg = ShardConfig(source=str(raw), dest=str(tmp_path / "out"), adapter="image_folder",
                      params={"crop_size": 32, "step": 16}, items_per_shard=2)
    manifest = run_shard(cfg)
    quarantine = json.loads((tmp_path / "out" / "quarantine.json").read_text())
    reasons = {Path(q["uri"]).name: q["reason"] for q in quarantine["quarantined"]}
    assert manifest["quarantined"] == 3 and set(reasons) == {"empty.png", "notes.png", "cut.png"}
    assert manifest["num_samples"] == 3 * 4
    listing = subprocess.run(["tar", "-tf", str(tmp_path / "out" / manifest["shards"][0]["name"])],
                             capture_output=True, text=True, check=True).stdout.split()
    assert any(name.endswith(".gt.png") for name in listing)
    # a re-run reuses every finished shard
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*.tar")}
    again = run_shard(cfg)
    assert again["shards"] == manifest["shards"]
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*.tar")}


def test_demo_command_end_to_end_short(ray_session, tmp_path):
    """`restoray demo` with a few steps: every stage runs and summary.json has its fields."""
    work = tmp_path / "demo"
    proc = subprocess.run(
        [*RESTORAY, "demo", "--workdir", str(work), "train.total_steps=20", "train.log_every=10",
         "train.val_every=20", "train.checkpoint_every=20"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads((work / "summary.json").read_text())
    for key in ("psnr_model", "psnr_bicubic", "mlflow_run_id", "tracking_uri"):
        assert key in summary
    assert summary["tracking_uri"] == f"sqlite:///{work / 'mlflow.db'}"
    assert 20 < summary["psnr_bicubic"] < 40 and len(summary["per_sample"]) == 2
    assert "mlflow ui --backend-store-uri" in proc.stdout
    run = MlflowClient(tracking_uri=summary["tracking_uri"]).get_run(summary["mlflow_run_id"])
    assert run.data.metrics["val/psnr"] == pytest.approx(summary["psnr_model"], abs=1e-6)

    # README "Restore a whole bucket": the registered model over a folder in one command, then a no-op
    restore = [*RESTORAY, "restore", "--model", "models:/edsr_x4c32b4_demo/1", "--tracking-uri",
               summary["tracking_uri"], str(work / "raw" / "val"), str(work / "restored")]
    proc = subprocess.run(restore, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "items 2: 2 written, 0 skipped" in proc.stdout
    assert sorted(p.name for p in (work / "restored").glob("*.png")) == ["chelsea.png", "coffee.png"]
    again = subprocess.run(restore, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nothing to do: every output exists" in again.stdout, again.stderr[-2000:]
    client = MlflowClient(tracking_uri=summary["tracking_uri"])
    jobs = client.search_runs([client.get_experiment_by_name("restoray-restore").experiment_id])
    assert sorted(r.data.metrics["restore/written"] for r in jobs) == [0, 2]


def test_realesrgan_degradation_trains_rrdbnet_through_the_stream(ray_session, tiny_shards, tmp_path):
    """Real-ESRNet-style run on CPU: on-the-fly realesrgan preset, final paired crop, USM target, EMA."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    cfg = tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], str(tmp_path / "runs"), name="tiny_realesrnet",
        nets={"generator": {"name": "rrdbnet", "in_channels": 3, "out_channels": 3, "mid_channels": 8,
                            "num_blocks": 1, "growth_channels": 4, "upscale_factor": 4}},
        task={"name": "sr", "sharpened_gt_in": ["pixel"], "eval": {"crop_border": 4},
              "data": {"scale": 4, "gt_size": 48, "out_size": 32, "use_rot": False,
                       "degradation": {"preset": "realesrgan"}}},
        train={"total_steps": 6, "val_every": 6, "checkpoint_every": 6, "log_every": 3},
        ema={"generator": {"decay": 0.999}},
        optim={"generator": {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.99]}},
    )
    path = write_config(tmp_path / "realesrnet.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=tmp_path, register=False)
    assert out.metrics["step"] == 6 and out.metrics["samples_seen"] == 6 * 8
    assert 0 < out.metrics["val/psnr"] < 60  # scored (an untrained net is far from GT)


def test_realesrgan_degradation_on_the_worker_device_with_pair_pool(ray_session, tiny_shards, tmp_path):
    """``data.degradation.device=gpu`` on CPU workers: the stream ships GT + packed parameters,
    the loop degrades with the torch path (CPU torch here) and swaps pairs through the pool,
    whose state lands in the checkpoint (every rank's, gathered over gloo)."""
    import math

    import torch

    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    cfg = tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], str(tmp_path / "runs"), name="tiny_realesrnet_dev",
        nets={"generator": {"name": "rrdbnet", "in_channels": 3, "out_channels": 3, "mid_channels": 8,
                            "num_blocks": 1, "growth_channels": 4, "upscale_factor": 4}},
        task={"name": "sr", "sharpened_gt_in": ["pixel"], "eval": {"crop_border": 4},
              "data": {"scale": 4, "gt_size": 48, "out_size": 32, "use_rot": False,
                       "degradation": {"preset": "realesrgan", "device": "gpu"}}},
        data={"pool_size": 8},
        train={"total_steps": 6, "val_every": 100, "checkpoint_every": 6, "log_every": 3},
        optim={"generator": {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.99]}},
    )
    cfg["ema"] = {}
    path = write_config(tmp_path / "realesrnet_dev.yaml", cfg)
    out = run_train(load_experiment(path), config_file=str(path), workdir=tmp_path, register=False)
    assert out.metrics["step"] == 6 and out.metrics["samples_seen"] == 6 * 8

    losses = MlflowClient(tracking_uri=out.tracking_uri).get_metric_history(out.mlflow_run_id, "loss/l1")
    assert sorted(m.step for m in losses) == [3, 6] and all(math.isfinite(m.value) for m in losses)
    ckpt = Path(out.checkpoint_dir) / "checkpoint.pt"
    assert ckpt.is_file()
    pools = torch.load(ckpt, map_location="cpu", weights_only=True)["pair_pool"]
    assert len(pools) == 2  # one per worker
    for pool in pools:  # 2 steps filled it, 4 swapped batches through it
        assert pool["filled"] == 8
        # the pool holds stream samples (GT patch, sampled parameters, crop corner), degraded on leaving
        t = pool["tensors"]
        assert set(t) == {"gt", "params", "crop"} and t["gt"].shape == (8, 48, 48, 3)
        assert t["gt"].dtype == torch.uint8 and t["gt"].float().std() > 0 and t["params"].shape[0] == 8
    assert not torch.equal(pools[0]["tensors"]["gt"], pools[1]["tensors"]["gt"])  # each rank pools its own share

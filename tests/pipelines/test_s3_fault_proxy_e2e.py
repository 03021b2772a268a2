"""The shard job and training through a misbehaving S3 endpoint (issue 14, fault 4).

A fault proxy (``tests/fault_proxy.py``) in front of the session's moto server resets
connections, answers 500/503/SlowDown and cuts bodies off on a seeded fraction of requests, with
added latency. ``restoray shard`` and ``restoray train`` run as real subprocesses (joining the
shared Ray instance) with ``AWS_ENDPOINT_URL`` pointing at the proxy; the endpoint reaches their
Ray workers with the job (``pipelines/cluster.py``).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import torch
import yaml

from conftest import REPO, tiny_experiment, write_config
from fault_proxy import FaultProxy
from shard_helpers import shard_dataset

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]


def _shard_entries(manifest: dict) -> list:
    return [(s["name"], s["num_samples"], s["bytes"], s["sha256"]) for s in manifest["shards"]]


def _json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_shard_and_train_through_a_faulty_endpoint_then_a_dead_one(ray_session, s3_endpoint, s3_bucket, tiny_shards,
                                                                   tmp_path):
    s3 = boto3.client("s3")
    raw = Path(tiny_shards["root"]) / "raw"
    params = {"crop_size": 48, "step": 24}
    reference = shard_dataset(str(raw / "train"), f"s3://{s3_bucket}/reference", "image_folder", params,
                              items_per_shard=2)  # fault-free, straight to moto
    shard_dataset(str(raw / "val"), f"s3://{s3_bucket}/shards/val", "image_folder", {"crop": False},
                  items_per_shard=2)
    shard_cfg = tmp_path / "shard.yaml"
    shard_cfg.write_text(yaml.safe_dump({"source": str(raw / "train"), "dest": f"s3://{s3_bucket}/shards/train",
                                         "adapter": "image_folder", "params": params, "items_per_shard": 2}))
    train_cfg = write_config(tmp_path / "train.yaml", tiny_experiment(
        f"s3://{s3_bucket}/shards/train", f"s3://{s3_bucket}/shards/val", f"s3://{s3_bucket}/runs", name="tiny_faulty",
        train={"total_steps": 6, "checkpoint_every": 3, "val_every": 6, "log_every": 3}))

    with FaultProxy(s3_endpoint, fraction=0.1, seed=7, latency_s=0.003) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
        shard = subprocess.run([*RESTORAY, "shard", str(shard_cfg)], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=600)
        assert shard.returncode == 0, (shard.stdout + shard.stderr)[-3000:]
        faults_while_sharding = sum(v for k, v in proxy.counts.items() if k != "requests")

        train = subprocess.run([*RESTORAY, "train", str(train_cfg), "--workdir", str(tmp_path)], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
        output = train.stdout + train.stderr
        assert train.returncode == 0, output[-3000:]
        final, _ = json.JSONDecoder().raw_decode(train.stdout[train.stdout.index("{\n"):])
        assert final["metrics"]["step"] == 6 and final["metrics"]["samples_seen"] == 6 * 8
        faults = sum(v for k, v in proxy.counts.items() if k != "requests")
        assert faults_while_sharding >= 3 and faults - faults_while_sharding >= 3, dict(proxy.counts)

        # (a) the same shards as the fault-free run, and nothing half-written left behind
        manifest = _json(s3, s3_bucket, "shards/train/manifest.json")
        assert _shard_entries(manifest) == _shard_entries(reference) and manifest["digest"] == reference["digest"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="shards/train/")["Contents"]]
        assert not [k for k in keys if "/_tmp/" in k]
        for name, _, size, _ in _shard_entries(manifest):
            assert s3.head_object(Bucket=s3_bucket, Key=f"shards/train/{name}")["ContentLength"] == size
        # (c) every checkpoint the run committed is whole: its state loads and its meta parses
        snapshot = _json(s3, s3_bucket, "runs/tiny_faulty/checkpoint_manager_snapshot.json")
        listed = [k for k in (o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")["Contents"])
                  if k.endswith("/checkpoint.pt")]
        assert listed
        for key in listed:
            if key.split("/")[-2] not in json.dumps(snapshot):
                continue  # a folder the manager never committed (none expected, harmless if present)
            state = torch.load(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()),
                               weights_only=True)
            meta = _json(s3, s3_bucket, key.replace("checkpoint.pt", "meta.json"))
            assert state["step"] == meta["step"] in (3, 6)

        # (d) the endpoint gone for good: a bounded wait, then one line naming it
        proxy.down = True
        dead = subprocess.run([*RESTORAY, "train", str(train_cfg), "train.total_steps=9", "--workdir", str(tmp_path)],
                              cwd=REPO, env={**env, "RESTORAY_S3_MAX_ATTEMPTS": "2"}, capture_output=True, text=True,
                              timeout=300)
    assert dead.returncode != 0
    last = dead.stderr.strip().splitlines()[-1]
    assert last.startswith("restoray: error: S3 endpoint " + proxy.url) and "2 attempt(s)" in last, dead.stderr[-2000:]

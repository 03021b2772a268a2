"""Training on damaged shards, then into a checkpoint folder that cannot be written (issue 14,
faults 6 and 7), with real ``restoray train`` subprocesses on the shared Ray instance.

Damage: one shard cut off in the middle, one member of another overwritten with garbage, and a
validation sample garbled. The run finishes, counts what it skipped (MLflow ``data/skipped``,
``data/val_skipped``) and names shard and sample once each;
with ``data.max_skipped_fraction=0`` it stops with one line naming the shard. Then the run's
checkpoint folder is made unwritable (read-only for a user; immutable, ``chattr +i``, for root,
whom permissions do not stop): the next command stops before Ray starts with one line naming
the folder, and once the folder is fixed the same command resumes from the last good checkpoint,
although Ray Train's checkpoint list was left half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, tiny_experiment, write_config
from preprocessing.shards import read_manifest

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]


def _damage(train: Path) -> tuple[str, str, str]:
    """Cuts the first shard in the middle and garbles a PNG of the second; returns their names and
    the garbled sample's key."""
    shards = read_manifest(str(train))["shards"]
    cut = train / shards[0]["name"]
    cut.write_bytes(cut.read_bytes()[: shards[0]["bytes"] // 2])
    garbled = train / shards[1]["name"]
    with tarfile.open(garbled) as tar:
        member = [m for m in tar.getmembers() if m.name.endswith(".png")][0]
    data = bytearray(garbled.read_bytes())
    data[member.offset_data:member.offset_data + member.size] = b"\x00" * member.size
    garbled.write_bytes(bytes(data))
    return shards[0]["name"], shards[1]["name"], member.name.split(".", 1)[0]


def _lock(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)


def _unlock(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def _train(cfg_path: Path, workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RESTORAY, "train", str(cfg_path), *overrides, "--workdir", str(workdir)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def _train_worker_ids() -> set[str]:
    """Every Ray Train worker actor the shared Ray instance has had, dead ones included: one
    attempt of a 2-worker run adds two."""
    from ray.util.state import list_actors

    return {a.actor_id for a in list_actors(filters=[("class_name", "=", "RayTrainWorker")], limit=10000)}


def test_damaged_shards_are_skipped_then_an_unwritable_checkpoint_folder_is_named(ray_session, tiny_shards,
                                                                                   tmp_path):
    train = tmp_path / "train"
    shutil.copytree(tiny_shards["train"], train)
    cut, garbled, key = _damage(train)
    val = tmp_path / "val"  # and one validation sample garbled: left out of the scores, counted
    shutil.copytree(tiny_shards["val"], val)
    val_shard = val / read_manifest(str(val))["shards"][0]["name"]
    with tarfile.open(val_shard) as tar:
        member = [m for m in tar.getmembers() if m.name.endswith(".png")][-1]
    data = bytearray(val_shard.read_bytes())
    data[member.offset_data:member.offset_data + member.size] = b"\x00" * member.size
    val_shard.write_bytes(bytes(data))
    storage = tmp_path / "runs"
    cfg_path = write_config(tmp_path / "damaged.yaml", tiny_experiment(
        str(train), str(val), str(storage), name="tiny_damaged",
        data={"max_skipped_fraction": 0.9},
        train={"total_steps": 6, "checkpoint_every": 3, "val_every": 6, "log_every": 3}))

    first = _train(cfg_path, tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-3000:]
    assert f"skipped a sample of shard {cut}:" in output and "its manifest says" in output
    assert f"skipped a sample of shard {garbled}: sample {key!r}: gt.png: not a PNG" in output
    final, _ = json.JSONDecoder().raw_decode(first.stdout[first.stdout.index("{\n"):])
    skipped = MlflowClient(final["tracking_uri"]).get_metric_history(final["mlflow_run_id"], "data/skipped")
    assert skipped and max(m.value for m in skipped) >= 1
    val_key = member.name.split(".", 1)[0]
    assert f"validation: skipped sample {val_key!r} of shard {val_shard.name}" in output
    assert "validation scored 1 of 2 samples; 1 damaged were left out" in output
    val_skipped = MlflowClient(final["tracking_uri"]).get_metric_history(final["mlflow_run_id"], "data/val_skipped")
    assert [m.value for m in val_skipped] == [1.0]

    # above the configured fraction: one line naming the shard, nothing else at the end, and no
    # worker-group restart (the default train.max_failures would re-read the same bytes 3 times)
    workers_before = _train_worker_ids()
    strict = _train(cfg_path, tmp_path, "run.name=tiny_strict", "data.max_skipped_fraction=0")
    assert len(_train_worker_ids() - workers_before) == 2, "the worker group was restarted"
    assert strict.returncode == 1, (strict.stdout + strict.stderr)[-3000:]
    # (Ray forwards the failed task's traceback asynchronously: the closing line need not be last)
    closing = [ln for ln in strict.stderr.splitlines() if ln.startswith("restoray: error:")]
    assert len(closing) == 1 and "data.max_skipped_fraction=0" in closing[0], strict.stderr[-3000:]
    assert cut in closing[0] or garbled in closing[0]

    # fault 7: the run's folder cannot be written -> one line naming it, before Ray starts
    folder = storage / "tiny_damaged"
    _lock(folder)
    try:
        blocked = _train(cfg_path, tmp_path, "train.total_steps=9")
    finally:
        _unlock(folder)
    assert blocked.returncode == 1
    assert blocked.stderr.strip().splitlines() == [
        line for line in blocked.stderr.strip().splitlines() if line.startswith("restoray: error:")]
    assert f"checkpoint storage is not writable: {folder}" in blocked.stderr

    # fixed: the same command resumes from the last good checkpoint, even with Ray Train's
    # checkpoint list half-written (Ray writes it in place: a driver killed mid-write leaves this)
    snapshot = folder / "checkpoint_manager_snapshot.json"
    snapshot.write_bytes(snapshot.read_bytes()[: snapshot.stat().st_size // 2])
    resumed = _train(cfg_path, tmp_path, "train.total_steps=9")
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-3000:]
    assert "Ray Train's checkpoint list of run 'tiny_damaged' is damaged" in output
    assert len(list(folder.glob("checkpoint_manager_snapshot.json.damaged-*"))) == 1
    assert "resuming run 'tiny_damaged' from step 6 (48 samples seen)" in output
    assert "resumed at step 6 (48 samples seen)" in output  # the workers, from the folder found by listing
    again, _ = json.JSONDecoder().raw_decode(resumed.stdout[resumed.stdout.index("{\n"):])
    assert again["metrics"]["step"] == 9 and again["mlflow_run_id"] == final["mlflow_run_id"]

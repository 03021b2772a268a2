"""Fixtures for pipeline tests: one shared local Ray instance, tiny shard sets and configs.

Ray costs ~6 s to start here, so the whole session shares one instance. It is
started after the moto server so Ray workers inherit the ``AWS_*`` variables,
and its address is exported as ``RAY_ADDRESS`` so ``restoray`` subprocesses
join it instead of starting their own.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_session(s3_endpoint):
    import ray

    ray.init(num_cpus=2, logging_level=logging.WARNING)
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    try:
        yield ray
    finally:
        os.environ.pop("RAY_ADDRESS", None)
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_idle_after_test(request):
    """After a test that used the shared Ray instance, wait (up to 120 s) until every CPU is free
    again, else warn naming what still runs: a leaked actor or placement group would otherwise
    leave a later test's actors pending. (A warning, not a failure: on a heavily loaded machine
    Ray takes its time to reap actor processes; restore jobs plan around busy CPUs anyway.)"""
    yield
    if "ray_session" not in request.fixturenames:
        return
    import ray

    if not ray.is_initialized():
        return
    total = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0.0) < total - 1e-6:
        if time.monotonic() > deadline:
            from ray.util.state import list_actors, list_placement_groups

            actors = [f"{a.class_name}({a.state})" for a in list_actors(filters=[("state", "!=", "DEAD")])]
            groups = [g.placement_group_id[:8] for g in list_placement_groups(filters=[("state", "!=", "REMOVED")])]
            warnings.warn(f"{request.node.nodeid}: Ray CPUs still reserved 120 s after the test: free "
                          f"{ray.available_resources().get('CPU', 0.0)} of {total}; actors {actors}; placement groups {groups}")
            return
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ServerURL(str):
    """The server's URL (a plain str to every user) with ``.root``: the folder holding its
    sqlite backend store and artifacts, for tests that inspect what the server stored."""

    root: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` process on loopback (sqlite backend, proxied artifacts).

    Yields its URL; ``mlflow_server.root`` is the folder of its store (``mlflow.db``, ``artifacts/``).
    """
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"), start_new_session=True,
    )
    deadline = time.monotonic() + 240  # a loaded CI machine: the server has taken > 90 s to start
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start: " + (root / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    served = _ServerURL(url)
    served.root = root
    yield served
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def textured_image(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like test image: smooth colour gradients plus a few sharp shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(2 * np.pi * (f * xx + g * yy) + p) for f, g, p in rng.uniform(0.5, 3, (3, 3))], -1)
    img = (img * 0.35 + 0.5) * 255
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, h // 4)), c, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"photo{i:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(textured_image(*size, seed + i), cv2.COLOR_RGB2BGR))
        out.append(path)
    return out


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> dict[str, str]:
    """Local train/val shard folders (built without Ray: the shard job has its own tests)."""
    from shard_helpers import shard_dataset

    root = tmp_path_factory.mktemp("tiny")
    write_photos(root / "raw" / "train", 4, (96, 128), seed=0)
    write_photos(root / "raw" / "val", 2, (64, 80), seed=100)
    shard_dataset(str(root / "raw" / "train"), str(root / "shards" / "train"), "image_folder",
                  {"crop_size": 48, "step": 24}, items_per_shard=1)
    shard_dataset(str(root / "raw" / "val"), str(root / "shards" / "val"), "image_folder",
                  {"crop": False}, items_per_shard=2)
    return {"train": str(root / "shards" / "train"), "val": str(root / "shards" / "val"), "root": str(root)}


def tiny_experiment(train_uri: str, val_uri: str, storage: str, **sections) -> dict:
    """A 2-worker EDSR config small enough to train a few steps in seconds on 2 CPUs.

    ``sections`` replace (non-dict values) or update (dicts, one level deep) the sections.
    """
    cfg = {
        "name": "tiny_edsr",
        "seed": 7,
        "task": {"name": "sr", "data": {"scale": 4, "gt_size": 32}, "eval": {"crop_border": 4}},
        "nets": {"generator": {"name": "edsr", "in_channels": 3, "out_channels": 3, "mid_channels": 8,
                               "num_blocks": 1, "upscale_factor": 4}},
        "data": {"train": train_uri, "val": val_uri, "batch_size": 4,
                 "transform_actors": 1, "cpus_per_actor": 0.25, "prefetch_batches": 1},
        "optim": {"generator": {"name": "adam", "lr": 1e-3}},
        "ema": {"generator": {"decay": 0.9}},
        "train": {"total_steps": 12, "log_every": 2, "val_every": 6, "checkpoint_every": 3},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
        "run": {"storage_path": storage},
        "mlflow": {"experiment": "tests"},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg


def kill_after_first_checkpoint(cmd: list[str], storage: Path, run_name: str, log: Path, timeout: float = 240) -> None:
    """Start ``cmd`` (a ``restoray train``), SIGKILL it and everything it spawned, with no
    clean-up, as soon as Ray Train has committed its first checkpoint of ``run_name``.

    A checkpoint counts once listed in the run's snapshot file (checkpoint folders appear
    earlier, while they are still being registered).
    """
    snapshot = storage / run_name / "checkpoint_manager_snapshot.json"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (snapshot.exists() and "checkpoint_" in snapshot.read_text()):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no checkpoint within {timeout:.0f} s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def write_config(path: Path, cfg: dict) -> Path:
    """Writes an experiment config; with ``RESTORAY_TEST_GPU=1`` (``make gpu-check``) it asks for
    one GPU worker (NCCL, DDP with one worker) and bf16 autocast instead of CPU workers."""
    if os.environ.get("RESTORAY_TEST_GPU") == "1" and "scaling" in cfg:
        cfg = {**cfg, "scaling": {**cfg["scaling"], "use_gpu": True, "num_workers": 1},
               "train": {**cfg.get("train", {}), "amp": "bf16"}}
    path.write_text(yaml.safe_dump(cfg))
    return path

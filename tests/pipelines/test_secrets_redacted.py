"""Secrets never reach MLflow or the logs: a canary password in the tracking URI (in the config
file) and canary AWS credentials in the environment, a real training run against the real
MLflow server, then a byte search of the whole server store (sqlite backend + artifacts), the
run's storage folder and the run's stdout/stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, tiny_experiment, write_config
from pipelines.cli import main

RESTORAY = [sys.executable, "-m", "pipelines.cli"]


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path} holds {n.decode()}" for n in needles if n in data]
    return found


@pytest.mark.slow
def test_canary_secrets_reach_neither_mlflow_nor_logs(ray_session, tiny_shards, mlflow_server, tmp_path):
    password = f"CanaryPw{uuid.uuid4().hex}"
    env_secret, env_token = f"CanaryAwsSecret{uuid.uuid4().hex}", f"CanaryAwsToken{uuid.uuid4().hex}"
    port = urlparse(mlflow_server).port
    uri = f"http://restoray:{password}@127.0.0.1:{port}"
    storage = tmp_path / "runs"
    cfg = tiny_experiment(tiny_shards["train"], tiny_shards["val"], str(storage), name="tiny_canary",
                          mlflow={"experiment": "secrets", "tracking_uri": uri},
                          train={"total_steps": 4, "log_every": 2, "val_every": 4, "checkpoint_every": 4})
    cfg_path = write_config(tmp_path / "canary.yaml", cfg)
    assert password in cfg_path.read_text()  # the logged config file holds it before redaction
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY=env_secret, AWS_SESSION_TOKEN=env_token)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([*RESTORAY, "train", str(cfg_path), "--workdir", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]

    needles = [s.encode() for s in (password, env_secret, env_token)]
    assert not [n for n in needles if n.decode() in output], "a canary is in the run's stdout/stderr"
    assert not _files_holding(mlflow_server.root, needles)
    assert not _files_holding(storage, needles)  # checkpoints (their config) and Ray Train's files
    # the run was really tracked through the password-carrying URI, and says where, redacted
    assert f'"tracking_uri": "http://***@127.0.0.1:{port}"' in proc.stdout
    assert f"[restoray] MLflow run: http://***@127.0.0.1:{port}/#/experiments/" in proc.stdout
    assert "View run" not in output  # MLflow's own line would print the URI as given
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.search_runs([client.get_experiment_by_name("secrets").experiment_id])[0]
    assert run.info.status == "FINISHED" and "val/psnr" in run.data.metrics
    assert run.data.params["mlflow.tracking_uri"] == f"http://***@127.0.0.1:{port}"
    logged = Path(client.download_artifacts(run.info.run_id, "config/canary.yaml", str(tmp_path)))
    assert f"http://***@127.0.0.1:{port}" in logged.read_text()


def test_storage_path_credentials_refused_without_repeating_them(tiny_shards, tmp_path, capsys):
    secret = f"CanaryS3{uuid.uuid4().hex}"
    cfg_path = write_config(tmp_path / "s3cred.yaml", tiny_experiment(tiny_shards["train"], tiny_shards["val"],
                                                                      str(tmp_path / "runs")))
    assert main(["train", str(cfg_path), f"run.storage_path=s3://AKIDCANARY:{secret}@bucket/runs"]) == 2
    err = capsys.readouterr().err
    assert secret not in err and "AKIDCANARY" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run.storage_path" in lines[0] and "s3://***@bucket/runs" in lines[0]
    assert "AWS_SECRET_ACCESS_KEY" in lines[0]  # says where credentials go instead

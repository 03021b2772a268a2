"""`restoray train` submitted as a Ray job to a real two-node Ray cluster on this machine.

The cluster is what an operator runs: `ray start --head` plus `ray start --address=...`
(two raylets, each with its own object store, one GCS and dashboard), token auth on,
the job sent through the Jobs REST API with the repo as its working directory. The
two train workers cannot fit on one node, so the run exercises DDP across raylets.

It does not touch the session's shared Ray instance (the ``ray_session`` fixture):
the cluster has its own ports, ``--temp-dir`` and token, ``RAY_ADDRESS`` is cleared
for its processes, and it is stopped by signalling exactly the processes it started
(see ``_stop_cluster``: ``ray stop`` would kill every Ray process on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, tiny_experiment, write_config

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).with_name("ray")
CPUS_PER_NODE = 2
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LocalCluster:
    dashboard: str  # http://127.0.0.1:<port>, the Jobs API address
    token: str
    procs: list[subprocess.Popen]
    logs: list[Path]

    @property
    def headers(self) -> dict[str, str]:
        # The Jobs/State SDK clients take `headers` (meant for authenticating to a remote
        # cluster). Without an Authorization header they send this process's own token,
        # and only when RAY_AUTH_MODE=token is set here; this cluster has its own token.
        return {"Authorization": f"Bearer {self.token}"}

    def log_tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in self.logs if p.exists())


def _short_temp_dir(base: Path) -> Path:
    """A fresh --temp-dir short enough for Ray's unix sockets.

    Ray puts sockets at <temp-dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store
    (~62 characters below temp-dir) and AF_UNIX paths are limited to 107 bytes, so
    pytest's tmp_path (often 60+ characters) is too long; pytest's base temp is short
    enough in the usual /tmp/pytest-of-<user>/pytest-<n> layout, else /tmp is used.
    """
    parent = base if len(str(base)) <= 36 else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="rc", dir=parent))


def _node_args(temp_dir: Path, ports) -> list[str]:
    """Ports a node opens, each chosen free: the defaults (e.g. 52365 for the dashboard
    agent) would collide with the second node and with the session's own Ray.

    No --node-ip-address: Ray replaces a loopback one with the machine's address anyway
    (services.resolve_ip_for_localhost), so both nodes register under the host's IP and
    only the dashboard (--dashboard-host) is bound to 127.0.0.1.
    """
    return [
        "--block", f"--num-cpus={CPUS_PER_NODE}", "--num-gpus=0",
        f"--node-manager-port={next(ports)}", f"--object-manager-port={next(ports)}",
        f"--dashboard-agent-listen-port={next(ports)}", f"--dashboard-agent-grpc-port={next(ports)}",
        f"--runtime-env-agent-port={next(ports)}", f"--metrics-export-port={next(ports)}",
        "--min-worker-port=0", "--max-worker-port=0",  # workers bind any free port
        f"--object-store-memory={200 * 1024 * 1024}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]


def _wait(predicate, timeout: float, what: str, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in cluster.procs:
            assert proc.poll() is None, f"`ray start` exited with {proc.returncode} while waiting for {what}:\n" \
                + cluster.log_tail()
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s:\n" + cluster.log_tail()
        time.sleep(0.5)


def _alive_nodes(cluster: LocalCluster) -> int:
    req = urllib.request.Request(f"{cluster.dashboard}/nodes?view=summary", headers=cluster.headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            summary = json.load(resp)["data"]["summary"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for node in summary if node.get("raylet", {}).get("state") == "ALIVE")


def _cluster_procs(token: str) -> list[psutil.Process]:
    """Every live process of this cluster, and only those.

    Each of them (GCS, raylets, dashboard and its agents, workers, the job's driver)
    descends from our two `ray start` commands and so inherited RAY_AUTH_TOKEN=<our
    token> in its environment; the session's own Ray reads its token from
    ~/.ray/auth_token and has no such variable.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("RAY_AUTH_TOKEN") == token:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def _stop_cluster(cluster: LocalCluster) -> None:
    """Stop this cluster without touching any other Ray on the machine.

    Not `ray stop`: in Ray 2.60 it takes no address and finds its victims by process
    name (raylet, gcs_server, default_worker, dashboard, ...) across the whole machine,
    so it would also kill the test session's shared Ray instance and any other test
    run's. Instead: SIGTERM to each `ray start --block` we launched (worker node first),
    which drains its node and terminates the processes it spawned (its Node object's
    SIGTERM handler); then SIGKILL to whatever still carries our token (see
    ``_cluster_procs``), e.g. workers that outlived their raylet.
    """
    for proc in reversed(cluster.procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(cluster.procs):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    leftovers = _cluster_procs(cluster.token)
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=10)


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """Head node (GCS, dashboard, Jobs API) plus one worker node, CPUS_PER_NODE CPUs each."""
    logs_dir = tmp_path_factory.mktemp("cluster-logs")
    token = secrets.token_hex(32)  # what `ray get-auth-token --generate` writes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    # Token auth explicitly on, with this cluster's own token: `ray start --head` only
    # turns it on by itself when a token already exists (~/.ray/auth_token), and a
    # node joining by address never does.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    # On SIGTERM a `ray start --block` node first drains for up to 30 s (meant for Serve
    # replicas behind a load balancer); nothing here needs that grace period.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    ports = iter(_free_ports(20))
    gcs_port, dashboard_port = next(ports), next(ports)
    cluster = LocalCluster(f"http://127.0.0.1:{dashboard_port}", token, [], [])

    def start(name: str, args: list[str]) -> None:
        # Each node gets its own --temp-dir, as on separate machines: nodes sharing one
        # also share <session>/runtime_resources, and the worker node's runtime-env agent
        # then deletes the job's unpacked working dir (the driver's cwd on the head) when
        # its own last reference to it goes away.
        temp_dir = _short_temp_dir(tmp_path_factory.getbasetemp())
        log = logs_dir / f"{name}.log"
        cluster.logs.append(log)
        with open(log, "wb") as out:
            cluster.procs.append(subprocess.Popen(
                [str(RAY), "start", *args, *_node_args(temp_dir, ports)], env=env, cwd=temp_dir,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            ))

    try:
        start("head", ["--head", f"--port={gcs_port}", "--include-dashboard=true",
                       "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                       f"--ray-client-server-port={next(ports)}"])
        _wait(lambda: _alive_nodes(cluster) >= 1, 120, "head node", cluster)
        start("worker", [f"--address=127.0.0.1:{gcs_port}"])
        _wait(lambda: _alive_nodes(cluster) >= 2, 120, "worker node", cluster)
        yield cluster
    finally:
        _stop_cluster(cluster)
        assert not _cluster_procs(token), "cluster processes survived the stop"


def test_train_job_on_two_node_cluster(ray_cluster, tiny_shards, tmp_path, monkeypatch):
    from ray.job_submission import JobSubmissionClient
    from ray.util.state.api import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    # token auth is on: the Jobs API refuses a request without the token
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{ray_cluster.dashboard}/api/jobs/", timeout=10)
    assert refused.value.code == 401

    storage = tmp_path / "runs"
    # 1.5 CPUs per worker: two workers do not fit on one 2-CPU node, so one runs on each
    cfg = tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], str(storage), name="tiny_cluster",
        train={"total_steps": 4, "log_every": 2, "val_every": 4, "checkpoint_every": 2},
        scaling={"num_workers": 2, "cpus_per_worker": 1.5},
    )
    cfg_path = write_config(tmp_path / "cluster.yaml", cfg)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The Jobs and State clients take RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, over the address
    # they are given; the session's shared Ray exports RAY_ADDRESS, so without this they would
    # talk to the session's dashboard (8265) and be refused there with this cluster's token.
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", ray_cluster.dashboard)
    client = JobSubmissionClient(ray_cluster.dashboard, headers=ray_cluster.headers)
    job_id = client.submit_job(
        entrypoint=shlex.join([sys.executable, "-m", "pipelines.cli", "train", str(cfg_path),
                               "--workdir", str(tmp_path)]),
        # Ray 2.60 zips the working dir without .git, .venv and what .gitignore names
        # (demo_out, runs, mlflow.db, ...): a few MB here.
        runtime_env={"working_dir": str(REPO), "env_vars": {
            "MLFLOW_TRACKING_URI": tracking, "PYTHONUNBUFFERED": "1", "RESTORAY_DEBUG": "1"}},
    )
    deadline = time.monotonic() + 600
    while (status := client.get_job_status(job_id).value) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
    logs = client.get_job_logs(job_id)
    if status not in TERMINAL:
        client.stop_job(job_id)
    assert status == "SUCCEEDED", f"job {job_id} ended {status}:\n{logs[-6000:]}\n{ray_cluster.log_tail()}"

    # the two train workers ran on different nodes
    state = StateApiClient(ray_cluster.dashboard, headers=ray_cluster.headers)
    workers = state.list(StateResource.ACTORS, options=ListApiOptions(
        filters=[("class_name", "=", "RayTrainWorker")], detail=True), raise_on_missing_output=False)
    assert len({w.node_id for w in workers}) == 2, workers

    # real effects: a committed checkpoint and a finished MLflow run with validation scores
    snapshot = storage / "tiny_cluster" / "checkpoint_manager_snapshot.json"
    assert snapshot.exists() and "checkpoint_" in snapshot.read_text(), logs[-3000:]
    final, _ = json.JSONDecoder().raw_decode(logs[logs.index("{\n"):])
    assert final["tracking_uri"] == tracking and final["metrics"]["step"] == 4
    run = MlflowClient(tracking_uri=tracking).get_run(final["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert "val/psnr" in run.data.metrics and run.data.metrics["val/psnr"] > 0

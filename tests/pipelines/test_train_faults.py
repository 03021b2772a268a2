"""Faults injected into whole training runs (issue 14, Faults 1, 2, 3, 5 and new-user items 3, 4).

Each run records the sample keys every rank trains on (``RESTORAY_DEBUG_KEYS_FILE``, see
``trainers/control.py``); an uninterrupted run of the same config, shared by the module, is
the reference for keys and final weights. Faults are real: a SIGKILLed Ray Train worker
process, a SIGKILLed Ray Data transform actor, SIGTERM to the ``restoray train`` driver, and a
dedicated ``mlflow server`` process stopped and started again mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, _free_port, tiny_experiment, write_config

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]
STEPS, EVERY, BATCH, WORLD = 16, 4, 4, 2
SLEEP = "0.5"  # seconds per step (test hook): 16 steps take long enough for a fault to land mid-run


def fault_config(shards: dict, storage: Path, name: str) -> dict:
    """The tiny 2-worker EDSR run of every test here; ``train.max_failures`` is left at its default."""
    return tiny_experiment(shards["train"], shards["val"], str(storage), name=name,
                           train={"total_steps": STEPS, "checkpoint_every": EVERY, "val_every": STEPS,
                                  "log_every": 2},
                           data={"exact_split": True})  # per-worker batches compared after a new-process resume


def batches(prefix: Path, rank: int) -> list[tuple[int, tuple[str, ...]]]:
    """(step, keys) of each batch a rank trained on, in order (restarts included)."""
    from trainers.control import read_key_records

    records = read_key_records(str(prefix), rank)
    assert len(records) % BATCH == 0, f"rank {rank}: a partial batch record"
    out = []
    for i in range(0, len(records), BATCH):
        chunk = records[i:i + BATCH]
        assert len({s for s, _ in chunk}) == 1
        out.append((chunk[0][0], tuple(k for _, k in chunk)))
    return out


def effective(prefix: Path) -> tuple[dict, int]:
    """rank -> {step: keys} as finally trained (a redone step counts once, its last time),
    and how many batches were trained twice (redone after a restart)."""
    result, redone = {}, 0
    for rank in range(WORLD):
        steps: dict[int, tuple[str, ...]] = {}
        for step, keys in batches(prefix, rank):
            redone += step in steps
            steps[step] = keys
        result[rank] = steps
    return result, redone // WORLD


def final_state(storage: Path, name: str) -> dict:
    from pipelines.train_job import latest_state
    from trainers import checkpoint_io

    meta = latest_state(str(storage), name)
    state = checkpoint_io.read_training_checkpoint(meta["checkpoint_path"])
    return {"step": state["step"], "samples_seen": state["samples_seen"], "nets": state["nets"], "ema": state["ema"],
            "optimizers": state["optimizers"]}


def assert_same_weights(a: dict, b: dict) -> None:
    assert (a["step"], a["samples_seen"]) == (b["step"], b["samples_seen"])
    for part in ("nets", "ema"):
        for role in a[part]:
            for key, value in a[part][role].items():
                assert torch.equal(value, b[part][role][key]), f"{part}.{role}.{key} differs"


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {what}: "
                                 + (log.read_text()[-3000:] if log else ""))
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.1)


def closing_line(output: str) -> str:
    """restoray's one closing line (Ray's forwarded worker logs may still arrive after it)."""
    ours = [line for line in output.splitlines() if line.startswith("restoray: ")]
    assert len(ours) == 1, ours or output[-3000:]
    return ours[0]


def committed(storage: Path, name: str) -> bool:
    snapshot = storage / name / "checkpoint_manager_snapshot.json"
    return snapshot.exists() and "checkpoint_" in snapshot.read_text()


def alive_actors(name_part: str) -> list:
    from ray.util.state import list_actors

    return [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000) if name_part in a.class_name]


@pytest.fixture(scope="module")
def reference(ray_session, tiny_shards, tmp_path_factory):
    """The uninterrupted run: its key records and final state."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    root = tmp_path_factory.mktemp("reference")
    path = write_config(root / "ref.yaml", fault_config(tiny_shards, root / "runs", "fault_ref"))
    os.environ["RESTORAY_DEBUG_KEYS_FILE"] = str(root / "keys")
    try:
        out = run_train(load_experiment(path), workdir=root, register=False)
    finally:
        del os.environ["RESTORAY_DEBUG_KEYS_FILE"]
    assert out.metrics["step"] == STEPS
    steps, redone = effective(root / "keys")
    assert redone == 0 and all(sorted(s) == list(range(STEPS)) for s in steps.values())
    return {"keys": steps, "state": final_state(root / "runs", "fault_ref")}


def test_reference_stream_is_exact(reference):
    """Sanity of the reference itself: within an epoch no sample is trained on twice."""
    seen: dict[str, int] = {}
    for rank, steps in reference["keys"].items():
        for keys in steps.values():
            for key in keys:
                seen[key] = seen.get(key, 0) + 1
    assert seen and max(seen.values()) == 1, [k for k, n in seen.items() if n > 1]


def test_killed_transform_actor_then_killed_train_worker_recover_inside_fit(reference, tiny_shards, tmp_path,
                                                                           monkeypatch):
    """Faults 1 and 2 in one run (each a whole run on this machine). First the Ray Data
    transform actor is SIGKILLed once training has its first batch (Fault 2: the stream
    recovers); then one RayTrainWorker is SIGKILLed after the first committed checkpoint
    (Fault 1 / new-user 3: the default ``train.max_failures`` restarts the group inside the same
    ``fit()`` and the loop skips forward to the checkpoint's position)."""
    from pipelines.config import load_experiment
    from pipelines.train_job import run_train

    storage = tmp_path / "runs"
    keys = tmp_path / "keys"
    path = write_config(tmp_path / "kill.yaml", fault_config(tiny_shards, storage, "fault_kill"))
    monkeypatch.setenv("RESTORAY_DEBUG_KEYS_FILE", str(keys))
    monkeypatch.setenv("RESTORAY_DEBUG_STEP_SLEEP_S", SLEEP)
    killed: dict = {}

    def inject():
        try:
            # the whole tiny stream is made within seconds: kill the actor as soon as it works
            found: list = []
            wait_for(lambda: found.extend(alive_actors("TrainTransform")) or found, 300,
                     "a live transform actor")
            for actor in found:
                os.kill(actor.pid, signal.SIGKILL)
            killed["actors"] = len(found)
            worker = alive_actors("RayTrainWorker")[-1]
            wait_for(lambda: committed(storage, "fault_kill"), 300, "first checkpoint")
            os.kill(worker.pid, signal.SIGKILL)
            killed["worker_at_batch"] = len(batches(keys, 0))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            killed["error"] = exc

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    out = run_train(load_experiment(path), workdir=tmp_path, register=False)
    injector.join(10)
    assert "error" not in killed, killed
    assert killed["actors"] >= 1 and killed["worker_at_batch"] < STEPS, killed
    assert out.metrics["step"] == STEPS and out.metrics["samples_seen"] == STEPS * BATCH * WORLD

    steps, redone = effective(keys)
    assert steps == reference["keys"]  # nothing skipped, nothing trained twice in the end
    assert redone <= EVERY  # at most one checkpoint interval redone
    assert_same_weights(final_state(storage, "fault_kill"), reference["state"])


def _start_mlflow(root: Path, port: int) -> subprocess.Popen:
    """A dedicated ``mlflow server`` (not the session one: this test stops it)."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "ab"), start_new_session=True,
    )

    def healthy() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(healthy, 240, "mlflow server", proc, root / "server.log")
    return proc


def test_sigterm_stops_then_resume_survives_the_mlflow_server_going_away(reference, tiny_shards, tmp_path):
    """Fault 3 / new-user 4, then Fault 5, on one run tracked by a dedicated MLflow server.

    SIGTERM to the ``restoray train`` driver (what a spot reclaim and ``ray job stop`` send):
    the run checkpoints at the next step boundary, exits 143 quickly with one line saying how
    to resume, and its MLflow run is KILLED, not left RUNNING. The same command resumes it;
    during the resume the MLflow server process is SIGKILLed and started again: training goes
    on, the gap is reported once (not once per step), every metric arrives, the run FINISHES.
    Keys and weights equal the uninterrupted run's."""
    root = tmp_path / "mlflow"
    root.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_mlflow(root, port)
    client = MlflowClient(tracking_uri=url)
    storage = tmp_path / "runs"
    cfg_path = write_config(tmp_path / "term.yaml", fault_config(tiny_shards, storage, "fault_term"))
    cmd = [*RESTORAY, "train", str(cfg_path), "--workdir", str(tmp_path), "--no-register"]
    keys = tmp_path / "keys"
    env = {**os.environ, "RESTORAY_DEBUG_KEYS_FILE": str(keys), "MLFLOW_TRACKING_URI": url,
           "RESTORAY_DEBUG_STEP_SLEEP_S": SLEEP}
    try:
        log = tmp_path / "first.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
            wait_for(lambda: Path(f"{keys}.rank0").exists(), 300, "first trained batch", proc, log)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=180)
            took = time.monotonic() - t0
        output = log.read_text()
        assert rc == 143, output[-3000:]
        last = closing_line(output)
        assert last.startswith("restoray: stopped: stopped by SIGTERM at step "), output[-3000:]
        stopped_at = int(last.split("at step ")[1].split()[0])
        assert 0 < stopped_at < STEPS
        assert last.endswith(f"resume with the same command: restoray train {cfg_path} --workdir {tmp_path} "
                             "--no-register")
        assert final_state(storage, "fault_term")["step"] == stopped_at  # checkpointed where it stopped
        print(f"SIGTERM to exit: {took:.1f} s (stopped at step {stopped_at})")
        assert took < 90, f"{took:.0f} s from SIGTERM to exit"
        run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
        assert run.info.status == "KILLED"

        log = tmp_path / "resume.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
            logged_before = len(client.get_metric_history(run.info.run_id, "loss/l1"))
            wait_for(lambda: len(client.get_metric_history(run.info.run_id, "loss/l1")) > logged_before, 300,
                     "a loss logged by the resumed run", proc, log)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            wait_for(lambda: "is not answering" in log.read_text(), 300, "the gap report", proc, log)
            server = _start_mlflow(root, port)
            rc = proc.wait(timeout=300)
        output = log.read_text()
        assert rc == 0, output[-3000:]
        assert f"resuming run 'fault_term' from step {stopped_at}" in output
        assert output.count("is not answering") == 1 and output.count("answers again") == 1, output[-3000:]
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        losses = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss/l1"))
        assert set(range(2, STEPS + 1, 2)) <= set(losses)  # every logged step arrived, the gap's too

        steps, redone = effective(keys)
        assert steps == reference["keys"]  # each worker resumed on the batches it would have had
        assert redone == 0  # the stop step was checkpointed: nothing redone
        assert_same_weights(final_state(storage, "fault_term"), reference["state"])
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_spent_restart_budget_ends_with_one_line(tiny_shards, tmp_path, ray_session):
    """New-user 3: with ``train.max_failures=0`` a lost worker ends the job with one line that
    says the budget is spent and how to resume; the checkpoint stays."""
    storage = tmp_path / "runs"
    cfg_path = write_config(tmp_path / "budget.yaml", fault_config(tiny_shards, storage, "fault_budget"))
    cmd = [*RESTORAY, "train", str(cfg_path), "train.max_failures=0", "--workdir", str(tmp_path)]
    log = tmp_path / "budget.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "RESTORAY_DEBUG_STEP_SLEEP_S": SLEEP})
        wait_for(lambda: alive_actors("RayTrainWorker"), 240, "train workers", proc, log)
        worker = alive_actors("RayTrainWorker")[-1]
        wait_for(lambda: committed(storage, "fault_budget"), 240, "first checkpoint", proc, log)
        os.kill(worker.pid, signal.SIGKILL)
        rc = proc.wait(timeout=180)
    output = log.read_text()
    assert rc == 1, output[-3000:]
    last = closing_line(output)
    assert last.startswith("restoray: error: training failed, no restarts allowed (train.max_failures=0): "
                           "worker rank "), last
    assert "the checkpoint of step " in last
    assert last.endswith(f"resume with the same command: restoray train {cfg_path} train.max_failures=0 "
                         f"--workdir {tmp_path}")

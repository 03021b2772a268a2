"""``restoray tune`` and ``restoray retrain`` end to end, on the shared Ray instance and a real MLflow server.

The tune test interrupts a real ASHA sweep (SIGINT) and resumes it; the retrain
test runs the cron workflow three times (first champion, no-op, new data with
the gate refusing) and checks what changed in the registry and on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, _free_port, tiny_experiment, write_config, write_photos

pytestmark = pytest.mark.slow
RESTORAY = [sys.executable, "-m", "pipelines.cli"]


def _run(args, timeout=600, **kw):
    return subprocess.run([*RESTORAY, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)


def _tune_config(tiny_shards, tmp_path, **sections):
    return tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], str(tmp_path / "runs"), name="tiny_tune",
        train={"total_steps": 6, "val_every": 2, "checkpoint_every": 2, "log_every": 2},
        # Tune resumes every unfinished trial at once (max_concurrent_trials throttles
        # only new ones), so two trials must fit on the 2-CPU test cluster together.
        scaling={"num_workers": 1, "cpus_per_worker": 0.25},
        tune={"num_samples": 2, "grace_period": 1, "reduction_factor": 2,
              "space": {"optim.generator.lr": {"loguniform": [1e-4, 3e-3]},
                        "schedule.generator": {"choice": [{"name": "constant", "warmup_steps": 2},
                                                          {"name": "onecycle"}]},
                        "data.batch_size": {"choice": [2, 4]},
                        "ema.generator.decay": {"uniform": [0.8, 0.95]}}},
        **sections,
    )


def _results_so_far(sweep_dir: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in sweep_dir.glob("*/result.json"))


def test_asha_sweep_interrupted_then_resumed(ray_session, tiny_shards, mlflow_server, tmp_path):
    cfg_path = write_config(tmp_path / "tune.yaml", _tune_config(tiny_shards, tmp_path))
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server)
    cmd = [*RESTORAY, "tune", str(cfg_path), "--workdir", str(tmp_path)]
    log = open(tmp_path / "first.log", "wb")
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sweep_dir = tmp_path / "runs" / "tiny_tune-sweep"
    deadline = time.monotonic() + 300
    while _results_so_far(sweep_dir) < 1:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial result within 300 s"
        time.sleep(0.5)
    # Ctrl-C / a graceful stop: Tune saves the sweep state and stops the trials cleanly
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=180) != 0

    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    assert "resuming sweep 'tiny_tune-sweep'" in out

    summary = json.loads((tmp_path / "sweeps" / "tiny_tune-sweep" / "summary.json").read_text())
    assert summary["num_trials"] == 2 and summary["metric"] == "val/psnr"
    trials = summary["trials"]
    assert all(t["status"] in ("finished", "stopped") for t in trials), trials
    assert any(t["status"] == "finished" and t["last_step"] == 6 for t in trials)
    best = trials[0]
    assert summary["best_trial"] == best["trial_id"]
    assert best["best_val/psnr"] == max(t["best_val/psnr"] for t in trials if t["best_val/psnr"] is not None)
    # the best config is ready to train: validated, no tune section, best values applied
    best_yaml = tmp_path / "sweeps" / "tiny_tune-sweep" / "best_config.yaml"
    from pipelines.config import load_experiment

    best_cfg = load_experiment(best_yaml)
    assert best_cfg.tune is None and best_cfg.run.name is None
    assert best_cfg.optim["generator"].lr == pytest.approx(best["params"]["optim.generator.lr"])
    assert best_cfg.data.batch_size == best["params"]["data.batch_size"]
    assert best_cfg.schedule["generator"].name == best["params"]["schedule.generator"]["name"]
    png = (tmp_path / "sweeps" / "tiny_tune-sweep" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # MLflow: one parent run, each trial a child with its sampled values as params
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("tests")
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`restoray.sweep` = 'tiny_tune-sweep'")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert parent[0].data.metrics["best/val/psnr"] == pytest.approx(best["best_val/psnr"])
    assert {a.path for a in client.list_artifacts(parent[0].info.run_id)} >= {
        "best_config.yaml", "summary.json", "curves.png"}
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {t["run_name"] for t in trials}
    for t in trials:
        run = by_name[t["run_name"]]
        assert float(run.data.params["optim.generator.lr"]) == pytest.approx(t["params"]["optim.generator.lr"])
        assert run.data.params["data.batch_size"] == str(t["params"]["data.batch_size"])
        assert run.info.status == ("FINISHED" if t["status"] == "finished" else "KILLED")

    # --summary reads the sweep from its Tune state, without MLflow or a running sweep
    summ = _run(["tune", str(cfg_path), "--summary", "--json", str(tmp_path / "s.json")],
                env=dict(os.environ, MLFLOW_TRACKING_URI="http://127.0.0.1:9"))
    assert summ.returncode == 0, summ.stderr[-2000:]
    assert all(t["trial_id"] in summ.stdout for t in trials)
    assert json.loads((tmp_path / "s.json").read_text())["best_trial"] == best["trial_id"]


def test_tune_bad_input_fails_fast_with_one_line(ray_session, tiny_shards, tmp_path):
    cfg = _tune_config(tiny_shards, tmp_path)
    cfg["tune"]["space"]["optim.learning_rate"] = {"choice": [1e-3]}
    bad = _run(["tune", str(write_config(tmp_path / "bad.yaml", cfg))], timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"restoray: config error: {tmp_path / 'bad.yaml'}: tune.space.optim.learning_rate: "
        "unknown config field 'optim.learning_rate' (optim takes a network: generator)"]

    good = write_config(tmp_path / "good.yaml", _tune_config(tiny_shards, tmp_path))
    huge = _run(["tune", str(good), "scaling.num_workers=64", "--workdir", str(tmp_path)], timeout=180)
    assert huge.returncode == 2
    err = huge.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("restoray: config error: scaling.cpus_per_worker: a trial of sweep")
    assert "can never start on this cluster" in err[0] and "scaling.num_workers=64" in err[0]
    assert not (tmp_path / "runs" / "tiny_tune-sweep").exists()


def _retrain_config(tiny_shards, tmp_path, **retrain):
    raw = tmp_path / "incoming"
    if not raw.exists():
        write_photos(raw, 2, (96, 128), seed=0)
    return tiny_experiment(
        str(tmp_path / "shards"), tiny_shards["val"], str(tmp_path / "runs"), name="tiny_retrain",
        train={"total_steps": 6, "val_every": 3, "checkpoint_every": 3, "log_every": 3},
        scaling={"num_workers": 1, "cpus_per_worker": 0.5},
        retrain={"source": str(raw), "adapter": "image_folder", "params": {"crop_size": 48, "step": 24},
                 "items_per_shard": 1, "finetune": ["train.total_steps=3"], **retrain},
    )


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_retrain_promotes_then_noops_then_gates(ray_session, tiny_shards, mlflow_server, tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server)
    cfg_path = write_config(tmp_path / "retrain.yaml", _retrain_config(tiny_shards, tmp_path))
    client = MlflowClient(tracking_uri=mlflow_server)

    # 1: no champion yet -> shard everything, train from scratch, promote
    first = _run(["retrain", str(cfg_path), "--workdir", str(tmp_path)], env=env)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    r1 = json.loads(first.stdout[first.stdout.index("{\n"):])
    assert r1["status"] == "promoted" and r1["fine_tuned"] is False and r1["champion_before"] is None
    assert r1["data"]["manifest_version"] == 1 and r1["data"]["new_items"] == 2
    champion = client.get_model_version_by_alias("tiny_retrain", "champion")
    assert champion.version == r1["challenger_version"] and champion.run_id == r1["challenger_run_id"]
    run = client.get_run(r1["challenger_run_id"])
    assert run.data.tags["restoray.retrain.decision"] == "promoted" and run.data.metrics["retrain/promoted"] == 1.0
    reports = tmp_path / "runs" / "retrain"
    assert json.loads((reports / "latest.json").read_text()) == r1

    # 2: nothing new -> nothing done, nothing changed
    before = _snapshot(tmp_path / "shards") | _snapshot(reports)
    versions = len(client.search_model_versions("name = 'tiny_retrain'"))
    second = _run(["retrain", str(cfg_path), "--workdir", str(tmp_path)], env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing to do" in second.stdout and json.loads(second.stdout[second.stdout.index("{\n"):])["status"] == "noop"
    assert _snapshot(tmp_path / "shards") | _snapshot(reports) == before
    assert len(client.search_model_versions("name = 'tiny_retrain'")) == versions
    assert client.get_model_version_by_alias("tiny_retrain", "champion").version == champion.version

    # 3: new data -> fine-tune the champion; a margin it cannot clear keeps the champion
    write_photos(tmp_path / "more", 1, (96, 128), seed=40)
    shutil.copy(tmp_path / "more" / "photo00.png", tmp_path / "incoming" / "new00.png")
    third = _run(["retrain", str(cfg_path), "retrain.margin=50", "--workdir", str(tmp_path)], env=env)
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    r3 = json.loads(third.stdout[third.stdout.index("{\n"):])
    assert r3["status"] == "kept" and r3["fine_tuned"] is True and r3["champion_before"] == champion.version
    assert r3["champion_after"] == champion.version and "does not beat champion" in r3["reason"]
    assert r3["data"]["manifest_version"] == 2 and r3["data"]["new_items"] == 1
    assert set(r3["scores"]) == {"challenger", "champion"}
    assert client.get_model_version_by_alias("tiny_retrain", "champion").version == champion.version
    kept = client.get_model_version("tiny_retrain", r3["challenger_version"])
    assert kept.tags["restoray.retrain.decision"] == "kept"
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["version"] == 2 and len(manifest["shards"]) == 3
    # the challenger started from the champion's weights and ran the fine-tune length
    assert client.get_run(r3["challenger_run_id"]).data.params["train.total_steps"] == "3"

    # faults: each exits non-zero with one line, and the champion stays where it was
    gone = _run(["retrain", str(cfg_path), f"retrain.source={tmp_path / 'vanished'}", "--workdir", str(tmp_path)],
                env=env, timeout=300)
    assert gone.returncode == 1 and "does not exist" in gone.stderr.strip().splitlines()[-1]
    nobody = _run(["retrain", str(cfg_path), "mlflow.register_as=nobody", "retrain.require_champion=true",
                   "--workdir", str(tmp_path)], env=env, timeout=300)
    assert nobody.returncode == 1
    assert "registered model 'nobody' has no version with alias @champion" in nobody.stderr
    down = _run(["retrain", str(cfg_path), "--workdir", str(tmp_path)],
                env=dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{_free_port()}"), timeout=120)
    assert down.returncode == 1 and "is not reachable" in down.stderr
    assert client.get_model_version_by_alias("tiny_retrain", "champion").version == champion.version


def test_retrain_gate_decisions():
    from pipelines.retrain import decide

    assert decide({"challenger": 30.0}, "psnr", "max", 0.1, "champion", None)[0] is True
    worse = decide({"challenger": 29.0, "champion": 30.0}, "psnr", "max", 0.0, "champion", "3")
    assert worse[0] is False and "does not beat champion v3" in worse[1]
    assert decide({"challenger": 30.05, "champion": 30.0}, "psnr", "max", 0.1, "champion", "3")[0] is False
    assert decide({"challenger": 30.2, "champion": 30.0}, "psnr", "max", 0.1, "champion", "3")[0] is True
    assert decide({"challenger": 30.0, "champion": 30.0}, "psnr", "max", 0.0, "champion", "3")[0] is False
    assert decide({"challenger": float("nan"), "champion": 30.0}, "psnr", "max", 0.0, "champion", "3")[0] is False


def test_retrain_gate_on_a_lower_is_better_metric():
    """NIQE, SAD, MSE: the challenger must be LOWER by more than the margin."""
    from pipelines.retrain import decide

    better = decide({"challenger": 3.5, "champion": 4.0}, "niqe", "min", 0.1, "champion", "2")
    assert better[0] is True and "lower is better" in better[1]
    assert decide({"challenger": 4.5, "champion": 4.0}, "niqe", "min", 0.0, "champion", "2")[0] is False
    assert decide({"challenger": 3.95, "champion": 4.0}, "niqe", "min", 0.1, "champion", "2")[0] is False
    assert decide({"challenger": 4.0, "champion": 4.0}, "niqe", "min", 0.0, "champion", "2")[0] is False
    assert decide({"challenger": float("nan"), "champion": 4.0}, "niqe", "min", 0.0, "champion", "2")[0] is False

"""``restoray retrain``: the scheduled-retraining workflow (cron / RayCronJob).

One invocation does, in order, and stops at the first failure:

(a) shard what is new under ``retrain.source`` into ``data.train`` (a new
    manifest version that references the old shards plus the new ones);
(b) train a challenger: fine-tune the registered version holding the
    ``retrain.alias`` alias (default ``champion``) with ``retrain.finetune``
    overrides, or train from scratch when there is no champion;
(c) score challenger and champion on the same fixed ``data.val`` shards;
(d) move the alias to the challenger only if it beats the champion by more
    than ``retrain.margin`` on ``retrain.metric``; otherwise record why not;
(e) write a JSON report (``<report_dir>/report-<data digest>.json`` and
    ``latest.json``) and log it, with the scores and decision, to the
    challenger's MLflow run.

Idempotent: the report is keyed by the training data's digest, so running
again with no new data finds it and does nothing. The alias is moved by the
last step that changes anything, so a failure anywhere before it leaves the
previous champion in place; a re-run after a crash resumes the same
challenger run (same run name) instead of training another.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Any

from pipelines import registry
from pipelines.config import apply_overrides, validate
from pipelines.evaluate import evaluate
from pipelines.schema import ExperimentConfig
from pipelines.tracking import tracking_uri
from preprocessing.redact import redact_config, redact_text
from preprocessing.storage import open_storage

DECISION_TAG = "restoray.retrain.decision"
DATA_TAG = "restoray.retrain.data_digest"


def model_name(cfg: ExperimentConfig) -> str:
    return cfg.mlflow.register_as or cfg.name


def _report_store(cfg: ExperimentConfig):
    root = cfg.retrain.report_dir or f"{cfg.run.storage_path.rstrip('/')}/retrain"
    return open_storage(root if root.startswith("s3://") else os.path.abspath(root), create=True)


def challenger_config(cfg: ExperimentConfig, digest: str, version: int, fine_tune: bool) -> ExperimentConfig:
    """The experiment that trains this data version's challenger (fine-tune overrides applied)."""
    raw = cfg.model_dump(mode="json", exclude={"retrain", "tune"})
    if fine_tune:
        raw = apply_overrides(raw, list(cfg.retrain.finetune))
    out = validate(ExperimentConfig, raw, "retrain.finetune")
    out.run.name = f"{cfg.run_name}-retrain-v{version}-{digest[:8]}"
    return out


def run_retrain(cfg: ExperimentConfig, *, config_file: str | None = None, workdir: str | os.PathLike = ".") -> dict[str, Any]:
    """Run the workflow once; returns the report (``status`` noop | promoted | kept)."""
    from mlflow.tracking import MlflowClient

    from pipelines.shard_job import append_new

    r = cfg.retrain
    if r is None:
        raise ValueError("this config has no retrain section (see configs/retrain/)")
    t0 = time.time()
    uri = tracking_uri(cfg.mlflow.tracking_uri, workdir)
    name = model_name(cfg)
    champion = registry.find_version(uri, name, r.alias)
    if champion is None and r.require_champion:
        raise ValueError(f"registered model {name!r} has no version with alias @{r.alias} "
                         f"(retrain.require_champion is set); nothing was changed")
    store = _report_store(cfg)

    # (a) new data -> new manifest version
    manifest, new_items = append_new(r.source, cfg.data.train, r.adapter, r.params, r.items_per_shard)
    digest, version = manifest["digest"], int(manifest.get("version", 1))
    report_key = f"report-{digest[:16]}.json"
    if store.exists(report_key):
        previous = json.loads(store.read_bytes(report_key))
        print(f"[restoray] retrain: data v{version} ({digest[:8]}) was already handled on {previous['finished']} "
              f"({previous['status']}); nothing to do", flush=True)
        return {**previous, "status": "noop", "noop_reason": "no new data since the last retrain"}

    # (b) challenger, fine-tuned from the champion's networks when there is one
    fine_tune = champion is not None
    ccfg = challenger_config(cfg, digest, version, fine_tune)
    champion_nets = registry.load(uri, f"models:/{name}/{champion['version']}")["nets"] if champion else None
    if fine_tune:
        print(f"[restoray] retrain: fine-tuning {name} v{champion['version']} (@{r.alias}) on data v{version} "
              f"({new_items} new item(s)) as run {ccfg.run_name!r}", flush=True)
    else:
        print(f"[restoray] retrain: no @{r.alias} for {name!r}; training from scratch as run {ccfg.run_name!r}",
              flush=True)
    outcome, checkpoint, challenger_nets = _train_challenger(ccfg, champion_nets, config_file, workdir)

    # (c) both on the same fixed validation shards
    metric, direction = cfg.retrain_objective()
    scores = _scores(cfg, metric, challenger_nets, champion_nets)

    # (d) gate; register first (a version without the alias changes nothing users read)
    client = MlflowClient(tracking_uri=uri)
    challenger_version = _register_challenger(client, uri, name, ccfg, outcome.mlflow_run_id, checkpoint)
    promote, reason = decide(scores, metric, direction, r.margin, r.alias, champion["version"] if champion else None)
    client.set_model_version_tag(name, challenger_version, DATA_TAG, digest)
    client.set_model_version_tag(name, challenger_version, DECISION_TAG, "promoted" if promote else "kept")
    if promote:
        client.set_registered_model_alias(name, r.alias, challenger_version)
    print(f"[restoray] retrain: {'PROMOTED' if promote else 'kept champion'}: {reason}", flush=True)

    # (e) report
    report = {
        "status": "promoted" if promote else "kept", "reason": reason,
        "model": name, "alias": r.alias, "metric": metric, "direction": direction, "margin": r.margin,
        "champion_before": champion["version"] if champion else None,
        "champion_after": challenger_version if promote else (champion["version"] if champion else None),
        "challenger_version": challenger_version, "challenger_run_id": outcome.mlflow_run_id,
        "challenger_run_name": ccfg.run_name, "fine_tuned": fine_tune,
        "scores": scores, "val_shards": cfg.data.val,
        "data": {"shards": cfg.data.train, "manifest_version": version, "digest": digest,
                 "new_items": new_items, "num_samples": manifest["num_samples"]},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
    }
    _publish(report, client, outcome.mlflow_run_id, store, report_key)
    return report


def _train_challenger(ccfg: ExperimentConfig, champion_nets: dict | None, config_file: str | None, workdir):
    """Train the challenger run (starting from ``champion_nets`` where given); returns the train
    outcome, its final checkpoint and its networks (EMA weights where kept)."""
    import ray
    import ray.train

    from pipelines.cluster import init_ray
    from pipelines.train_job import load_final_nets, run_train

    init = None
    if champion_nets is not None:
        init_ray()
        init = {role: ray.put(state) for role, state in champion_nets.items() if role in ccfg.nets}
    outcome = run_train(ccfg, config_file=config_file, workdir=workdir, register=False, init_states=init)
    if outcome.checkpoint_dir is None:
        raise ValueError(f"challenger run {ccfg.run_name!r} produced no checkpoint")
    checkpoint = ray.train.Checkpoint(outcome.checkpoint_dir, _filesystem(ccfg))
    return outcome, checkpoint, load_final_nets(checkpoint, ccfg)


def _scores(cfg: ExperimentConfig, metric: str, challenger_nets: dict, champion_nets: dict | None) -> dict[str, float]:
    """``metric`` of challenger (and champion) on the fixed ``data.val`` shards."""
    from pipelines.train_job import build_nets

    scores = {"challenger": evaluate(cfg, challenger_nets)[f"model_{metric}"]}
    if champion_nets is not None:
        nets = build_nets(cfg)
        for role, state in champion_nets.items():
            nets[role].load_state_dict(state, strict=True)
        scores["champion"] = evaluate(cfg, {k: v.eval() for k, v in nets.items()})[f"model_{metric}"]
    return scores


def decide(scores: dict[str, float], metric: str, direction: str, margin: float, alias: str,
           champion_version: str | None) -> tuple[bool, str]:
    """The gate: (promote?, why). ``direction`` is the task's for ``metric``: ``max`` (PSNR, SSIM)
    or ``min`` (NIQE, SAD); the challenger must be better by more than ``margin``; ties keep the champion."""
    if champion_version is None:
        return True, f"no @{alias} yet: the first model becomes champion"
    ch, cp = scores["challenger"], scores["champion"]
    if ch != ch:  # NaN: a diverged challenger never wins
        return False, f"challenger {metric} is NaN"
    better = ch > cp + margin if direction == "max" else ch < cp - margin
    side = "higher" if direction == "max" else "lower"
    verb = "beats" if better else "does not beat"
    return better, (f"challenger {metric} {ch:.4f} {verb} champion v{champion_version} "
                    f"{cp:.4f} by more than {margin:g} ({side} is better)")


def _filesystem(cfg: ExperimentConfig):
    from pipelines.train_job import storage_location

    return storage_location(cfg.run.storage_path)[1]


def _register_challenger(client, uri: str, name: str, ccfg: ExperimentConfig, run_id: str, checkpoint) -> str:
    """The challenger's registered version: the one a crashed earlier attempt made, else a new one."""
    from pipelines.train_job import arch_spec, final_weights

    return _registered_version_of(client, name, run_id) or registry.register(
        uri, run_id, name, ccfg.task.name, arch_spec(ccfg), final_weights(checkpoint),
        task_config=ccfg.task.model_dump(mode="json"))


def _registered_version_of(client, name: str, run_id: str) -> str | None:
    """A version already registered from this run (a re-run after a crash must not add another)."""
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return str(max(int(v.version) for v in found)) if found else None


def _publish(report: dict[str, Any], client, run_id: str, store, report_key: str) -> None:
    """The report to the challenger's MLflow run, then to ``report-<digest>.json`` and ``latest.json``."""
    _log_report(client, run_id, report)
    body = json.dumps(report, indent=1).encode()
    store.write_bytes(report_key, body)
    store.write_bytes("latest.json", body)
    print(f"[restoray] retrain report: {store.uri(report_key)}", flush=True)


def _log_report(client, run_id: str, report: dict[str, Any]) -> None:
    """The decision as metrics, tags and the report artifact on the challenger run."""
    for who, value in report["scores"].items():
        client.log_metric(run_id, f"retrain/{who}_{report['metric']}", value)
    client.log_metric(run_id, "retrain/promoted", 1.0 if report["status"] == "promoted" else 0.0)
    client.set_tag(run_id, DECISION_TAG, report["status"])
    client.set_tag(run_id, "restoray.retrain.reason", redact_text(report["reason"])[:5000])
    client.log_dict(run_id, redact_config(report), "retrain/report.json")

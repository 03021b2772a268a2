"""``restoray tune``: a Ray Tune sweep over the one train job.

Ray Train V2 does not run as a Tune trainable itself; Tune runs a small driver
function per trial (``_trial``) that applies the trial's sampled values to the
experiment and calls :func:`pipelines.train_job.run_train` with
``TuneReportCallback``, so every trial is an ordinary restoray training run
(same stream, loop, checkpoints and resume) named ``<sweep>-<trial id>``.

MLflow: one parent run for the sweep; each trial's run is its child with the
trial's full config as params. At the end the sweep writes, next to its Tune
state and into the parent run: ``best_config.yaml`` (ready for ``restoray
train``), ``summary.json`` and ``curves.png``.

Resume: re-running the same command finds the Tune experiment under
``run.storage_path/<sweep>`` and continues it with ``Tuner.restore``;
unfinished trials resume from their last Train checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.cluster import check_fits, run_resources
from pipelines.config import flatten, try_overrides
from pipelines.schema import ExperimentConfig, SearchDist
from pipelines.tracking import RUN_NAME_TAG, log_redacted_artifact, start_or_resume_run, terminate, tracking_uri

SWEEP_TAG = "restoray.sweep"


def sweep_name(cfg: ExperimentConfig) -> str:
    return cfg.tune.name or f"{cfg.name}-sweep"


def tune_space(space: dict[str, SearchDist]) -> dict[str, Any]:
    """Our typed distributions -> Tune's search primitives (keys stay config paths)."""
    from ray import tune

    makers = {
        "choice": tune.choice, "grid": tune.grid_search,
        "uniform": lambda v: tune.uniform(*v), "loguniform": lambda v: tune.loguniform(*v),
        "randint": lambda v: tune.randint(*v),
    }
    return {key: makers[d.kind](getattr(d, d.kind)) for key, d in space.items()}


def trial_config(raw: dict[str, Any], params: dict[str, Any], run_name: str) -> ExperimentConfig:
    """The experiment a trial trains: the sampled values applied, reports at every validation.

    Tune schedulers read the metric from each report; a report comes with every
    checkpoint, so trials checkpoint exactly when they validate.
    """
    cfg = try_overrides(raw, params, f"trial {run_name}")
    cfg.run.name = run_name
    cfg.train.checkpoint_every = cfg.train.val_every
    return cfg


def _trial(params: dict[str, Any], *, raw: dict[str, Any], workdir: str, parent_run_id: str, sweep: str) -> None:
    """One trial, run by Tune in its own actor."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipelines.train_job import run_train

    run_name = f"{sweep}-{tune.get_context().get_trial_id()}"
    cfg = trial_config(raw, params, run_name)
    run_train(cfg, workdir=workdir, register=False, callbacks=[TuneReportCallback()], parent_run_id=parent_run_id)


def concurrent_trials(cfg: ExperimentConfig) -> int:
    """How many trials the cluster holds at once (``tune.max_concurrent_trials`` caps it)."""
    import ray

    need, have = run_resources(cfg), ray.cluster_resources()
    fits = [math.floor(have.get(k, 0.0) / need[k] + 1e-9) for k in ("CPU", "GPU") if need[k] > 0]
    n = max(min(fits), 1)
    return min(n, cfg.tune.max_concurrent_trials) if cfg.tune.max_concurrent_trials else n


def _scheduler(cfg: ExperimentConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    t = cfg.tune
    reports = math.ceil(cfg.train.total_steps / cfg.train.val_every)
    if t.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=max(reports, t.grace_period),
                             grace_period=t.grace_period, reduction_factor=t.reduction_factor)
    if t.scheduler == "median":
        return MedianStoppingRule(time_attr="training_iteration", grace_period=t.grace_period,
                                  min_samples_required=2)
    return FIFOScheduler()


@dataclass
class SweepOutcome:
    sweep: str
    parent_run_id: str
    summary: dict[str, Any]
    best_config: str | None
    curves: str | None


def _sweep_location(cfg: ExperimentConfig) -> tuple[str, Any]:
    from pipelines.train_job import storage_location

    return storage_location(cfg.run.storage_path)


def run_tune(
    cfg: ExperimentConfig, *, config_file: str | None = None, workdir: str | os.PathLike = ".",
) -> SweepOutcome:
    """Run (or resume) the sweep; write and log the best config, summary and curves."""
    from ray import tune

    if cfg.tune is None:
        raise ValueError("this config has no tune section (see configs/tune/)")
    raw = cfg.model_dump(mode="json")
    sweep = sweep_name(cfg)
    check_fits(cfg, what=f"a trial of sweep {sweep!r}")
    uri = tracking_uri(cfg.mlflow.tracking_uri, workdir)
    # Trials run in actors that do not see this process's MLFLOW_TRACKING_URI: pin it.
    raw["mlflow"]["tracking_uri"] = uri
    parent = start_or_resume_run(
        uri, cfg.mlflow.experiment, sweep, workdir,
        {**{f"tune.{k}": v for k, v in flatten(cfg.tune.model_dump(mode="json")).items()}}, config_file,
        tags={SWEEP_TAG: sweep},
    )
    path, fs = _sweep_location(cfg)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, raw=raw, workdir=str(Path(workdir).resolve()), parent_run_id=parent, sweep=sweep),
        # The trial's driver only waits on the TorchTrainer; its workers and the
        # stream's actors ask for their own resources.
        {"CPU": 0.01},
    )
    exp_path = f"{path}/{sweep}"
    if tune.Tuner.can_restore(exp_path, storage_filesystem=fs):
        print(f"[restoray] resuming sweep {sweep!r} from {exp_path}", flush=True)
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        concurrency = concurrent_trials(cfg)
        print(f"[restoray] sweep {sweep!r}: {cfg.tune.num_samples} sample(s), {cfg.tune.scheduler}, "
              f"up to {concurrency} trial(s) at once -> {exp_path}", flush=True)
        tuner = tune.Tuner(
            trainable,
            param_space=tune_space(cfg.tune.space),
            tune_config=tune.TuneConfig(
                metric=cfg.tune_objective()[0], mode=cfg.tune_objective()[1], scheduler=_scheduler(cfg),
                num_samples=cfg.tune.num_samples, max_concurrent_trials=concurrency,
            ),
            run_config=tune.RunConfig(name=sweep, storage_path=path, storage_filesystem=fs, verbose=1),
        )
    # Tune's own Ctrl-C handler ends fit() normally with the running trials marked as
    # errors, which would publish a partial sweep as if it had finished; without it
    # Ctrl-C raises KeyboardInterrupt here and the saved state resumes on the next run.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        grid = tuner.fit()
    except BaseException:
        _close_runs(uri, cfg, parent, sweep, final_status="FAILED")
        raise
    expected = cfg.tune.num_samples * math.prod(len(d.grid) for d in cfg.tune.space.values() if d.grid)
    done = grid.num_terminated + grid.num_errors
    if len(grid) < expected or done < len(grid):
        # Tune returns early (no exception) when interrupted with Ctrl-C / SIGINT.
        _close_runs(uri, cfg, parent, sweep, final_status="KILLED")
        raise KeyboardInterrupt(f"sweep {sweep!r} interrupted with {done} of {expected} trials done; "
                                f"re-run the same command to resume")
    summary = summarize(grid, cfg, sweep)
    return _publish(cfg, raw, uri, parent, sweep, summary, workdir)


def summarize(grid, cfg: ExperimentConfig, sweep: str) -> dict[str, Any]:
    """A plain-data view of a Tune ResultGrid: one record per trial, best first."""
    metric, mode = cfg.tune_objective()
    trials = []
    for result in grid:
        df = result.metrics_dataframe
        curve = []
        if df is not None and metric in df.columns:
            curve = [[int(s), float(v)] for s, v in zip(df["step"], df[metric]) if v == v]
        values = [v for _, v in curve]
        best = (max(values) if mode == "max" else min(values)) if values else None
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        trials.append({
            "trial_id": trial_id, "run_name": f"{sweep}-{trial_id}",
            "params": {k: v for k, v in (result.config or {}).items()},
            # A trial the scheduler stopped early ends "done" too, but short of total_steps.
            "status": "error" if result.error else (
                "finished" if int(metrics.get("step", 0) or 0) >= cfg.train.total_steps else "stopped"),
            "reports": len(curve), "last_step": int(metrics.get("step", 0) or 0),
            f"best_{metric}": best, f"last_{metric}": values[-1] if values else None,
            "error": str(result.error).splitlines()[0][:300] if result.error else None,
            "curve": curve,
        })
    key = f"best_{metric}"
    scored = [t for t in trials if t[key] is not None]
    scored.sort(key=lambda t: t[key], reverse=(mode == "max"))
    ordered = scored + [t for t in trials if t[key] is None]
    return {"sweep": sweep, "metric": metric, "mode": mode, "scheduler": cfg.tune.scheduler,
            "num_trials": len(trials), "best_trial": scored[0]["trial_id"] if scored else None,
            "trials": ordered}


def best_config_yaml(raw: dict[str, Any], params: dict[str, Any], sweep: str, trial_id: str, metric: str,
                     value: float) -> str:
    """A ready-to-run experiment YAML: the base config with the best trial's values, no tune section."""
    cfg = try_overrides(raw, params, f"best trial {trial_id}")
    out = cfg.model_dump(mode="json", exclude={"tune"})
    out["run"]["name"] = None
    header = (f"# Best trial {trial_id} of sweep {sweep} ({metric} {value:.4f}).\n"
              f"# Searched values: {json.dumps(params)}\n"
              f"# Train it: restoray train <this file>\n")
    return header + yaml.safe_dump(out, sort_keys=False)


def plot_curves(summary: dict[str, Any], out: Path) -> Path:
    """One line per trial: the metric at each report (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for t in summary["trials"]:
        if not t["curve"]:
            continue
        xs, ys = zip(*t["curve"])
        label = f"{t['trial_id']} " + ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in t["params"].items())
        style = "-" if t["status"] == "finished" else "--"
        ax.plot(xs, ys, style, marker="o", ms=3, label=label[:70] + (" (stopped)" if t["status"] == "stopped" else ""))
    ax.set_xlabel("step")
    ax.set_ylabel(summary["metric"])
    ax.set_title(f"sweep {summary['sweep']} ({summary['scheduler']}; dashed = stopped early)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return str(v.get("name", v))
    return str(v)


def _publish(cfg, raw, uri, parent, sweep, summary, workdir) -> SweepOutcome:
    from mlflow.tracking import MlflowClient

    out_dir = Path(workdir) / "sweeps" / sweep
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    curves = plot_curves(summary, out_dir / "curves.png")
    best_path = None
    client = MlflowClient(tracking_uri=uri)
    if summary["best_trial"] is not None:
        best = summary["trials"][0]
        value = best[f"best_{summary['metric']}"]
        best_path = out_dir / "best_config.yaml"
        user_raw = {**raw, "mlflow": {**raw["mlflow"], "tracking_uri": cfg.mlflow.tracking_uri}}
        best_path.write_text(best_config_yaml(user_raw, best["params"], sweep, best["trial_id"], summary["metric"], value))
        log_redacted_artifact(client, parent, best_path)
        client.log_metric(parent, f"best/{summary['metric']}", value)
        client.set_tag(parent, "restoray.best_trial", best["trial_id"])
    for path in (out_dir / "summary.json", curves):
        log_redacted_artifact(client, parent, path)
    _close_runs(uri, cfg, parent, sweep, summary=summary)
    print(format_summary(summary), flush=True)
    if best_path:
        print(f"[restoray] best config: {best_path}", flush=True)
    return SweepOutcome(sweep, parent, summary, str(best_path) if best_path else None, str(curves))


def _close_runs(uri, cfg, parent, sweep, summary=None, final_status="FINISHED") -> None:
    """Set each trial's MLflow run status from the sweep's outcome.

    Tune ends a trial (reached ``max_t``, or stopped by the scheduler) by killing
    its actor, often before ``run_train`` can close the run, so the sweep does it.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    outcome = {t["run_name"]: t["status"] for t in (summary or {}).get("trials", [])}
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    for run in runs:
        status = outcome.get(run.data.tags.get(RUN_NAME_TAG, ""))
        if status == "stopped":
            client.set_tag(run.info.run_id, "restoray.tune.stopped_early", "true")
        mlflow_status = {"finished": "FINISHED", "stopped": "KILLED", "error": "FAILED"}.get(status)
        if summary is None:
            mlflow_status = final_status if run.info.status == "RUNNING" else None
        if mlflow_status and mlflow_status != run.info.status:
            terminate(client, uri, run.info.run_id, mlflow_status)
    terminate(client, uri, parent, final_status)


def format_summary(summary: dict[str, Any]) -> str:
    """The sweep as a text table, best first (what ``restoray tune --summary`` prints)."""
    metric = summary["metric"]
    lines = [f"sweep {summary['sweep']}: {summary['num_trials']} trial(s), {summary['scheduler']}, "
             f"{metric} ({summary['mode']})"]
    lines.append(f"  {'trial':<14}{'status':<10}{'reports':>8}{'step':>8}{'best':>10}{'last':>10}  params")
    for t in summary["trials"]:
        best, last = t[f"best_{metric}"], t[f"last_{metric}"]
        params = ", ".join(f"{k}={_short(v)}" for k, v in t["params"].items())
        lines.append(f"  {t['trial_id']:<14}{t['status']:<10}{t['reports']:>8}{t['last_step']:>8}"
                     f"{'-' if best is None else f'{best:.4f}':>10}{'-' if last is None else f'{last:.4f}':>10}  {params}")
        if t["error"]:
            lines.append(f"      error: {t['error']}")
    return "\n".join(lines)


def read_summary(cfg: ExperimentConfig) -> dict[str, Any]:
    """The sweep's state from its Tune folder (no MLflow needed; works while it runs)."""
    from ray import tune

    sweep = sweep_name(cfg)
    path, fs = _sweep_location(cfg)
    exp_path = f"{path}/{sweep}"
    if not tune.Tuner.can_restore(exp_path, storage_filesystem=fs):
        raise FileNotFoundError(f"no sweep {sweep!r} under {cfg.run.storage_path} (run `restoray tune` first)")
    tuner = tune.Tuner.restore(exp_path, _trial, storage_filesystem=fs)
    return summarize(tuner.get_results(), cfg, sweep)

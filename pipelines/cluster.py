"""Connecting to Ray: a local in-process cluster by default, or an existing one.

``RAY_ADDRESS`` (set by ``ray job submit`` and by users of ``ray://``) wins;
otherwise Ray starts on this machine. Local paths in configs are made absolute
by the driver before anything is shipped to workers, which change directory.
"""

from __future__ import annotations

import logging
import os

import ray

# Where S3 is and how hard to try: settings of the submitting shell that every Ray worker of the
# job needs too (a worker of an existing cluster does not inherit the driver's environment).
# Credentials are deliberately not forwarded: they would show in the job's runtime_env.
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "RESTORAY_S3_MAX_ATTEMPTS")


def job_env() -> dict[str, str]:
    """The :data:`FORWARDED_ENV` variables set in this process; none inside a ``ray job submit``
    entrypoint, whose own runtime_env already reaches every worker (Ray refuses the same key
    from both)."""
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    if RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ:
        return {}
    return {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}


def init_ray(num_cpus: int | None = None) -> None:
    import warnings

    # Ray Data raises this deprecation from its own DataConfig; Ray's import resets filters set
    # before it, so the filter goes here
    warnings.filterwarnings("ignore", message=".*ExecutionOptions.exclude_resources.*")
    if ray.is_initialized():
        return
    # Ray's own INFO lines (worker-group start, resource requests, Ray Data plans, "Reporting
    # training result" dicts) stay in Ray's log files (/tmp/ray/session_latest/logs): LoggingConfig
    # sets the level in every worker and actor of the job, not only this driver. restoray's
    # progress lines are prints of rank 0, which log_to_driver still forwards.
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": True,
              "logging_config": ray.LoggingConfig(log_level="WARNING")}
    if job_env():
        kwargs["runtime_env"] = {"env_vars": job_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
    else:
        # The dashboard process backs the State API, which Ray Train's placement-group
        # cleaner polls; without it the controller logs errors forever.
        ray.init(num_cpus=num_cpus, **kwargs)


def run_resources(cfg) -> dict[str, float]:
    """CPUs/GPUs one training run holds: its workers, the decode actors and one light task.

    The stream's read and re-cut tasks (``pipelines.stream.LIGHT_TASK_CPUS`` each) are short and
    need not wait for each other's output, so one such slot kept free lets both go on in turn."""
    from pipelines.stream import LIGHT_TASK_CPUS

    workers = cfg.scaling.num_workers
    # + a light task + a Tune trial's driver actor (0.01)
    cpus = workers * cfg.scaling.cpus_per_worker + cfg.data.transform_actors * cfg.data.cpus_per_actor \
        + LIGHT_TASK_CPUS + 0.01
    return {"CPU": cpus, "GPU": float(workers if cfg.scaling.use_gpu else 0)}


def _shortfall(cfg) -> tuple[str, str] | None:
    """(the field to change, what is short) when the cluster can never hold this run, else None."""
    need, have = run_resources(cfg), ray.cluster_resources()
    sc, data = cfg.scaling, cfg.data
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if sc.use_gpu and need["GPU"] > have.get("GPU", 0.0) + 1e-9:
        field = "scaling.use_gpu" if not have.get("GPU") else "scaling.num_workers"
        return field, f"it needs {need['GPU']:g} GPU (one per worker)"
    if need["CPU"] > have.get("CPU", 0.0) + 1e-9:
        workers, actors = sc.num_workers * sc.cpus_per_worker, data.transform_actors * data.cpus_per_actor
        field = "scaling.cpus_per_worker" if workers >= actors else "data.cpus_per_actor"
        return field, (f"it needs {need['CPU']:g} CPU ({sc.num_workers} x {sc.cpus_per_worker:g} for the workers + "
                       f"{data.transform_actors} x {data.cpus_per_actor:g} for the decode actors + 0.26)")
    per_worker = {"CPU": sc.cpus_per_worker, "GPU": 1.0 if sc.use_gpu else 0.0}
    if not any(all(node.get(k, 0.0) >= v for k, v in per_worker.items() if v) for node in nodes):
        gpu = " + 1 GPU" if sc.use_gpu else ""
        return "scaling.cpus_per_worker", f"no node has {sc.cpus_per_worker:g} CPU{gpu} for one worker"
    return None


def check_fits(cfg, what: str = "training") -> None:
    """Fail at once (one line, exit 2, the field to change first) when the cluster can never hold this run.

    Ray Train retries unsatisfiable resource requests forever; a typo such as
    ``scaling.num_workers=64`` on a 2-GPU cluster would hang a job all night.
    Skipped with ``scaling.autoscaling: true`` (the cluster may still grow).
    """
    from pipelines.config import ConfigError

    if cfg.scaling.autoscaling or (problem := _shortfall(cfg)) is None:
        return
    field, detail = problem
    have = ray.cluster_resources()
    cluster = ", ".join(f"{have.get(k, 0.0):g} {k}" for k in ("CPU", "GPU"))
    sc, data = cfg.scaling, cfg.data
    raise ConfigError(
        f"{field}: {what} can never start on this cluster: {detail}; the cluster has {cluster} "
        f"(scaling.num_workers={sc.num_workers}, scaling.cpus_per_worker={sc.cpus_per_worker:g}, "
        f"scaling.use_gpu={sc.use_gpu}, data.transform_actors={data.transform_actors}, "
        f"data.cpus_per_actor={data.cpus_per_actor:g}). Lower them, run `restoray train --fit` to shrink them to "
        "this cluster (a local trial), or set scaling.autoscaling=true if the cluster grows on demand"
    )


def fit_to_cluster(cfg):
    """``cfg`` with its resource requests shrunk to the cluster Ray is connected to, and the
    changes as ``field=old->new`` strings (``restoray train --fit``: a zoo config as shipped asks
    for GPUs and many CPUs; a laptop or CI machine has neither).

    Without GPUs, ``use_gpu`` goes off; with fewer GPUs than workers, the workers go down to the
    GPUs. CPU reservations (worker and decode-actor CPUs) are scaled by one factor until they fit
    and no worker asks for more than the largest node has. Reservations are Ray's bookkeeping:
    the processes still run, only slower, so the run's results do not change; worker count and
    batch size, which do change them, are kept unless GPUs force the count down.
    """
    have = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    raw = cfg.model_dump(mode="json")
    sc, data = raw["scaling"], raw["data"]
    gpus = int(have.get("GPU", 0))
    if sc["use_gpu"] and gpus == 0:
        sc["use_gpu"] = False
    elif sc["use_gpu"] and sc["num_workers"] > gpus:
        sc["num_workers"] = gpus
    from pipelines.stream import LIGHT_TASK_CPUS

    budget = have.get("CPU", 1.0) - LIGHT_TASK_CPUS - 0.01  # what run_resources adds
    asked = sc["num_workers"] * sc["cpus_per_worker"] + data["transform_actors"] * data["cpus_per_actor"]
    if asked > budget:
        factor = budget / asked
        sc["cpus_per_worker"] = max(0.01, int(sc["cpus_per_worker"] * factor * 100) / 100)
        data["cpus_per_actor"] = max(0.01, int(data["cpus_per_actor"] * factor * 100) / 100)
    largest = max((n.get("CPU", 0.0) for n in nodes), default=have.get("CPU", 1.0))
    sc["cpus_per_worker"] = min(sc["cpus_per_worker"], largest)
    fitted = type(cfg).model_validate(raw)
    old = cfg.model_dump(mode="json")
    changes = [f"{sec}.{k}={old[sec][k]}->{raw[sec][k]}" for sec in ("scaling", "data")
               for k in raw[sec] if raw[sec][k] != old[sec][k]]
    return fitted, changes

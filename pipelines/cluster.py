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
    if ray.is_initialized():
        return
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": True}
    if job_env():
        kwargs["runtime_env"] = {"env_vars": job_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
    else:
        # The dashboard process backs the State API, which Ray Train's placement-group
        # cleaner polls; without it the controller logs errors forever.
        ray.init(num_cpus=num_cpus, **kwargs)


def run_resources(cfg) -> dict[str, float]:
    """CPUs/GPUs one training run holds: its workers, the decode actors and a read task."""
    workers = cfg.scaling.num_workers
    # + a read task (0.25) + a Tune trial's driver actor (0.01)
    cpus = workers * cfg.scaling.cpus_per_worker + cfg.data.transform_actors * cfg.data.cpus_per_actor + 0.26
    return {"CPU": cpus, "GPU": float(workers if cfg.scaling.use_gpu else 0)}


def check_fits(cfg, what: str = "training") -> None:
    """Fail at once (one line) when the cluster can never hold this run.

    Ray Train retries unsatisfiable resource requests forever; a typo such as
    ``scaling.num_workers=64`` on a 2-GPU cluster would hang a job all night.
    Skipped with ``scaling.autoscaling: true`` (the cluster may still grow).
    """
    if cfg.scaling.autoscaling:
        return
    need = run_resources(cfg)
    have = ray.cluster_resources()
    short = [f"{need[k]:g} {k}" for k in ("CPU", "GPU") if need[k] > have.get(k, 0.0) + 1e-9]
    per_worker = {"CPU": cfg.scaling.cpus_per_worker, "GPU": 1.0 if cfg.scaling.use_gpu else 0.0}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    fits_a_node = any(all(node.get(k, 0.0) >= v for k, v in per_worker.items() if v) for node in nodes)
    if short or not fits_a_node:
        cluster = ", ".join(f"{have.get(k, 0.0):g} {k}" for k in ("CPU", "GPU"))
        detail = (f"needs {' and '.join(short)}" if short else
                  f"no node has {per_worker['CPU']:g} CPU" + (" + 1 GPU" if per_worker["GPU"] else "") + " for one worker")
        raise ValueError(
            f"{what} can never start on this cluster: it {detail} "
            f"(scaling.num_workers={cfg.scaling.num_workers}, scaling.cpus_per_worker={cfg.scaling.cpus_per_worker:g}, "
            f"scaling.use_gpu={cfg.scaling.use_gpu}, data.transform_actors={cfg.data.transform_actors}); "
            f"the cluster has {cluster}. Lower them, or set scaling.autoscaling=true if the cluster grows on demand"
        )

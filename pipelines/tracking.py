"""Driver-side MLflow: tracking URI resolution, a quick reachability probe, the run of a job.

Workers only log metrics and images to the run the driver created (rank 0, via
``trainers/tracking.py``); the driver owns run creation, params and the config artifact
(and ``pipelines/registry.py`` the registered models), so a resumed job continues the same run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

RUN_NAME_TAG = "restoray.run_name"


def tracking_uri(configured: str | None, workdir: str | os.PathLike) -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<abs workdir>/mlflow.db``.

    The default must be absolute: Ray workers change directory, and a relative
    URI would put a second database in each worker's cwd.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
        return uri
    return f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def _experiment_id(client: MlflowClient, name: str, uri: str, workdir: str | os.PathLike) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:"):
        artifacts = (Path(workdir).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def check_reachable(uri: str) -> None:
    """Fail fast (one line) when a tracking server is down, before Ray starts.

    MLflow's client retries an unreachable server for minutes by default; this probe
    allows one quick attempt.
    """
    # patch.dict restores the environment however the probe ends.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    with mock.patch.dict(os.environ, quick):
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any failure here means "cannot track"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConnectionError(f"MLflow tracking server {uri} is not reachable: {first[:200]}") from None


def start_or_resume_run(
    uri: str, experiment: str, run_name: str, workdir: str | os.PathLike, params: dict[str, Any],
    config_file: str | None, parent_run_id: str | None = None, tags: dict[str, str] | None = None,
) -> str:
    """The MLflow run for ``run_name``: the existing one on resume, else a new one with params.

    ``parent_run_id`` nests the run under another (a sweep's trials under the sweep),
    which the MLflow UI shows as a tree.
    """
    client = MlflowClient(tracking_uri=uri)
    exp_id = _experiment_id(client, experiment, uri, workdir)
    found = client.search_runs(
        [exp_id], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        if found[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run_id
    new_tags = {RUN_NAME_TAG: run_name, **(tags or {})}
    if parent_run_id:
        new_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=new_tags)
    run_id = run.info.run_id
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])
    if config_file:
        client.log_artifact(run_id, config_file, artifact_path="config")
    return run_id


def finish_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    MlflowClient(tracking_uri=uri).set_terminated(run_id, status=status)

"""Driver-side MLflow: tracking URI resolution, a quick reachability probe, the run of a job.

Workers only log metrics and images to the run the driver created (rank 0, via
``trainers/tracking.py``); the driver owns run creation, params and the config artifact
(and ``pipelines/registry.py`` the registered models), so a resumed job continues the same run.

Secrets: the tracking URI may carry a password (``http://user:PASSWORD@host``) that the client
needs; params, tags, the logged config file and everything printed go through
``preprocessing.redact`` first, and MLflow's own "View run at <uri>" line (printed by
``set_terminated`` for HTTP stores) is replaced by a redacted one (:func:`finish_run`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from preprocessing.redact import redact_text

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
            raise ConnectionError(redact_text(f"MLflow tracking server {uri} is not reachable: {first[:200]}")) from None


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
    new_tags = {RUN_NAME_TAG: run_name, **{k: redact_text(str(v)) for k, v in (tags or {}).items()}}
    if parent_run_id:
        new_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=new_tags)
    run_id = run.info.run_id
    items = [Param(k, redact_text(str(v))[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])
    if config_file:
        log_redacted_artifact(client, run_id, config_file, artifact_path="config")
    return run_id


def log_redacted_artifact(client: MlflowClient, run_id: str, path: str | os.PathLike,
                          artifact_path: str | None = None) -> None:
    """Logs a text file (a config, a summary) with its secrets masked, under its own name.

    The file on disk is left as it is: it is the user's, and may need the real credential.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:  # not text: nothing a config value could hide in
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        return
    tmp = tempfile.mkdtemp(prefix="restoray-redacted-")
    try:
        copy = Path(tmp) / path.name
        copy.write_text(redact_text(text))
        client.log_artifact(run_id, str(copy), artifact_path=artifact_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def finish_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Ends the run; for an HTTP tracking server prints where to see it, without credentials."""
    terminate(MlflowClient(tracking_uri=uri), uri, run_id, status)


def terminate(client: MlflowClient, uri: str, run_id: str, status: str) -> None:
    """``client.set_terminated`` without MLflow's own "View run at <uri>" lines (they repeat a
    password in the URI) and with a redacted one instead."""
    with mock.patch.dict(os.environ, {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}):
        client.set_terminated(run_id, status=status)
    if uri.startswith(("http://", "https://")):
        try:
            exp = client.get_run(run_id).info.experiment_id
        except Exception:  # noqa: BLE001 - a link is a courtesy; the run is already closed
            return
        print(f"[restoray] MLflow run: {redact_text(uri.rstrip('/'))}/#/experiments/{exp}/runs/{run_id}", flush=True)

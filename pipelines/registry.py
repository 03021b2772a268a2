"""The MLflow model registry: trained networks as state dicts plus ``{arch name, kwargs}``.

A registered version's artifacts are ``restoray_model/weights.pt`` -- ``{"format":
"restoray-model/1", "task", "task_config", "arch": {role: {"name", "kwargs"}}, "nets": {role:
state dict}}``, read with ``torch.load(weights_only=True)`` -- and ``restoray_model/spec.json``
(the same without tensors, for people, and for :func:`describe`). No pickled modules: moving or
renaming an architecture file cannot break loading an old champion, and loading runs no code
from the registry. ``task_config`` is the family's ``task:`` section (scale, tiling, ...), so
``restoray restore --model models:/...`` needs no config file; versions registered before it
was stored lack the key (their readers then need a config).

Versions registered before this format (``mlflow.pytorch`` pickled modules) still load: their
module's state dict becomes the ``generator``. They are read with ``weights_only=True`` too, after
checking that every class the pickle names is a torch layer or a restoray network.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

import torch

from trainers.checkpoint_io import safe_torch_load

ARTIFACT = "restoray_model"
FORMAT = "restoray-model/1"


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def register(uri: str, run_id: str, name: str, task: str, arch: dict[str, dict[str, Any]],
             nets: dict[str, dict[str, torch.Tensor]], task_config: dict[str, Any] | None = None) -> str:
    """Log the networks (and the ``task:`` section they were trained with, as JSON) to the run
    and register them as a new version of ``name``; returns the version."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    spec = {"format": FORMAT, "task": task, "arch": arch, **({"task_config": task_config} if task_config else {})}
    with tempfile.TemporaryDirectory() as tmp:
        payload = {**spec, "nets": {r: {k: v.detach().cpu() for k, v in sd.items()} for r, sd in nets.items()}}
        torch.save(payload, os.path.join(tmp, "weights.pt"))
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f, indent=1)
        client.log_artifacts(run_id, tmp, artifact_path=ARTIFACT)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{ARTIFACT}"
    return str(client.create_model_version(name, source=source, run_id=run_id).version)


def parse_models_uri(text: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3")."""
    m = re.fullmatch(r"models:/([^/@]+)(?:@([\w-]+)|/(\d+))", text)
    if not m:
        raise ValueError(f"{text}: not a registry URI (models:/<name>@<alias> or models:/<name>/<version>)")
    return m.group(1), m.group(2), m.group(3)


def find_version(uri: str, name: str, alias: str) -> dict[str, str] | None:
    """The version holding ``alias`` ({version, run_id}), or None (no model, or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        mv = _client(uri).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return {"version": str(mv.version), "run_id": mv.run_id}


def _version(client, models_uri: str, uri: str):
    """The ModelVersion a ``models:/`` URI names (its alias resolved); ValueError (one line) if none."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_models_uri(models_uri)
    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        raise ValueError(f"{models_uri}: not in the registry at {uri} ({str(exc).splitlines()[0][:160]})") from None


def describe(uri: str, models_uri: str) -> dict[str, Any]:
    """What a registered version is, without its weights: ``{"name", "version", "run_id",
    "format", "task", "task_config"?, "arch"}`` (spec.json; only ``spec.json`` is downloaded).
    Versions logged as pickled modules say ``"format": "mlflow.pytorch"``, ``"task": None``.

    Raises:
        ValueError: one line, when the model, alias or version does not exist.
    """
    import mlflow.artifacts

    mv = _version(_client(uri), models_uri, uri)
    out = {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id}
    if not mv.source.rstrip("/").endswith(ARTIFACT):
        return {**out, "format": "mlflow.pytorch", "task": None, "arch": {}}
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"{mv.source.rstrip('/')}/spec.json", tracking_uri=uri)
    with open(path) as f:
        return {**json.load(f), **out}


def load(uri: str, models_uri: str) -> dict[str, Any]:
    """``{"task", "arch", "nets"}`` of a registered version (``models:/name@alias`` or ``/version``).

    Raises:
        ValueError: one line, when the model, alias or version does not exist.
    """
    import mlflow.artifacts

    name = parse_models_uri(models_uri)[0]
    mv = _version(_client(uri), models_uri, uri)
    if not mv.source.rstrip("/").endswith(ARTIFACT):
        return _load_pickled(uri, name, str(mv.version))
    path = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, tracking_uri=uri)
    payload = safe_torch_load(os.path.join(path, "weights.pt"), f"{models_uri} weights.pt")
    if payload.get("format") != FORMAT:
        raise ValueError(f"{models_uri}: unknown registered-model format {payload.get('format')!r}")
    return payload


def _load_pickled(uri: str, name: str, version: str) -> dict[str, Any]:
    """A version logged by ``mlflow.pytorch.log_model`` (a pickled module), as a generator state.

    Not through ``mlflow.pytorch.load_model``: that unpickles with ``weights_only=False`` and would
    run whatever code the file names. The pickle's globals are listed first; only torch layer
    classes and restoray architectures (nn.Module subclasses) are allowed, then it is read with
    ``weights_only=True`` (:func:`_allowed_module_classes`).

    Downloaded through this tracking URI's client, never the process-global one:
    ``mlflow.set_tracking_uri`` would also export ``MLFLOW_TRACKING_URI`` to every child process.
    """
    import mlflow.artifacts

    location = _client(uri).get_model_version_download_uri(name, version)
    path = mlflow.artifacts.download_artifacts(artifact_uri=location, tracking_uri=uri)
    file = os.path.join(path, "data", "model.pth")
    label = f"models:/{name}/{version} (data/model.pth)"
    if not os.path.isfile(file):
        raise ValueError(f"{label}: not found; only state-dict and pickled-module versions load")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception as err:  # not a torch zip file
        raise ValueError(f"{label}: not a torch file ({type(err).__name__})") from None
    allowed = _allowed_module_classes(names, label)
    with torch.serialization.safe_globals(allowed):
        model = safe_torch_load(file, label)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{label}: holds a {type(model).__name__}, not a network")
    return {"format": "mlflow.pytorch", "task": None, "arch": {},
            "nets": {"generator": {k: v.detach().cpu() for k, v in model.state_dict().items()}}}


def _allowed_module_classes(names: list[str], label: str) -> list[type]:
    """The classes a pickled network names, if every one is an nn.Module from torch.nn or trainers.archs.

    Anything else (a function such as ``posix.system``, another package's class) is refused
    with one line, before any of it is imported or run.
    """
    import importlib

    allowed = []
    for qual in names:
        module, _, attr = qual.rpartition(".")
        if not (module.startswith("torch.nn.modules.") or module.startswith("trainers.archs.")):
            raise ValueError(f"{label}: the file carries pickled code or objects (GLOBAL {qual}) besides "
                             "torch layers and restoray networks; refused, nothing in it was run")
        cls = getattr(importlib.import_module(module), attr, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ValueError(f"{label}: GLOBAL {qual} is not a network layer; refused, nothing in it was run")
        allowed.append(cls)
    return allowed

"""The model of a ``restoray restore`` job, resolved once on the driver.

``--model`` is one of:

* a registry URI, ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: the version's
  ``spec.json`` names the family, its ``task:`` section and every network's architecture
  (``pipelines/registry.py``), so no config file is needed. An alias is resolved to its version
  here, and the weights are read from that version: an alias moved mid-job cannot mix models.
* a restoray training checkpoint, a ``checkpoint_*`` folder or its ``checkpoint.pt`` (local,
  ``s3://`` or ``https://``): it carries the config it was trained with.
* a zoo ``.pth`` (or any checkpoint) with ``--config CFG``, whose ``task:`` and ``nets:`` win
  over what the model carries.

The weights are loaded by :func:`pipelines.infer.load_nets` (EMA copies preferred, strict
keys and shapes, the family's main network required), so a model that would not load fails
here in one line, before Ray starts. :class:`RestoreModel` then travels to the model actors
once, through the object store: plain state dicts plus the family's class and settings.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from pipelines import registry
from pipelines.config import UsageError, load_experiment
from pipelines.infer import load_nets
from pipelines.schema import check_net
from trainers.checkpoint_io import CHECKPOINT_FILE, CheckpointError, is_restoray, load_checkpoint_file
from trainers.tasks import get_task


@dataclass(frozen=True)
class NetsSpec:
    """The two sections of an experiment that inference reads (``task``, ``nets``); what
    ``load_nets`` / ``main_role`` / ``build_nets`` take in place of a whole ExperimentConfig."""

    task: BaseModel
    nets: dict[str, dict[str, Any]]


@dataclass
class RestoreModel:
    """Everything a model actor needs, and what the job's manifest says about the model.

    Attributes:
        uri: ``--model`` as given.
        version: the registry version (an alias resolved), else None.
        task_cls: the family's task class (``TASKS``; a test may put a stand-in here).
        task_cfg: the family's ``task:`` section, ``--tile`` applied.
        nets: role -> ``{name, **arguments}`` of each network.
        weights: role -> state dict (CPU tensors), the networks the model holds.
        source: where the weights came from (``restoray generator ema``, ``registered ...``).
    """

    uri: str
    version: str | None
    task_cls: type
    task_cfg: BaseModel
    nets: dict[str, dict[str, Any]]
    weights: dict[str, dict[str, torch.Tensor]]
    source: str
    fingerprint: str = field(default="")

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = weights_fingerprint(self.weights)

    @property
    def infer_inputs(self) -> tuple[str, ...]:
        return tuple(self.task_cls.infer_inputs)

    def identity(self) -> dict[str, Any]:
        """What the manifest and ``_restore/job.json`` record: outputs of one DST come from one model."""
        return {"uri": self.uri, "version": self.version, "task": self.task_cfg.name,
                "arch": {r: s["name"] for r, s in self.nets.items()}, "weights": self.source,
                "fingerprint": self.fingerprint}

    def describe(self) -> str:
        version = f" (version {self.version})" if self.version else ""
        main = next(iter(self.task_cls.nets))
        return f"{self.uri}{version}: {self.task_cfg.name} {self.nets[main]['name']}, weights {self.source}"


def weights_fingerprint(weights: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 of every tensor's bytes, roles and keys in sorted order (first 16 hex digits)."""
    h = hashlib.sha256()
    for role in sorted(weights):
        for key in sorted(weights[role]):
            t = weights[role][key].detach().cpu().contiguous()
            h.update(f"{role}.{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def resolve_model(model: str, config: str | None, tracking: str, overrides: list[str] = (),
                  tile: int | None = None, tile_overlap: int | None = None) -> RestoreModel:
    """The model ``--model`` (and ``--config``) name, loaded and checked.

    Raises:
        UsageError: one line, for anything the user must change (missing file or registry
            entry, no config for a zoo file, weights that do not fit, a bad ``--tile``).
        ConfigError: a bad ``--config`` file.
    """
    version = None
    weights_from = model
    if model.startswith("models:/"):
        spec = _describe(tracking, model)
        version = spec["version"]
        weights_from = f"models:/{spec['name']}/{version}"  # pin the alias's version for the weights
        task_cfg, nets = _from_config(config, overrides) if config else _from_registry(model, spec)
    else:
        weights_from = _checkpoint_file(model)
        task_cfg, nets = _from_config(config, overrides) if config else _from_checkpoint(model, weights_from)
    task_cls = get_task(task_cfg.name)
    if "video" in task_cls.infer_inputs:
        raise UsageError(f"{model}: a video model ({task_cfg.name}); restoray restore runs image models, "
                         "restore videos with restoray infer")
    task_cfg = with_tiling(task_cls, task_cfg, tile, tile_overlap)
    spec = NetsSpec(task_cfg, nets)
    try:
        loaded, source = load_nets(spec, weights_from, tracking)
    except (CheckpointError, ValueError) as exc:
        raise UsageError(f"{model}: {_first_line(exc)}") from None
    weights = {r: {k: v.detach().cpu() for k, v in n.state_dict().items()} for r, n in loaded.items()}
    return RestoreModel(model, version, task_cls, task_cfg, nets, weights, source)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(tracking: str, model: str) -> dict[str, Any]:
    try:
        return registry.describe(tracking, model)
    except ValueError as exc:
        raise UsageError(_first_line(exc)) from None


def _from_config(config: str, overrides: list[str]) -> tuple[BaseModel, dict[str, dict[str, Any]]]:
    cfg = load_experiment(config, list(overrides), check_paths=False)
    return cfg.task, cfg.nets


def _from_registry(model: str, spec: dict[str, Any]) -> tuple[BaseModel, dict[str, dict[str, Any]]]:
    """The family's settings and networks a registered version carries."""
    if not spec.get("task") or not spec.get("task_config"):
        raise UsageError(f"{model}: this version was registered without its task settings (an earlier "
                         f"release); pass --config with the experiment it was trained from")
    nets = {role: {"name": a["name"], **a.get("kwargs", {})} for role, a in spec["arch"].items()}
    return _task_config(model, spec["task"], spec["task_config"]), _checked_nets(model, nets)


def _from_checkpoint(model: str, path: str) -> tuple[BaseModel, dict[str, dict[str, Any]]]:
    """The settings a restoray training checkpoint was trained with; a zoo file has none."""
    try:
        ckpt = load_checkpoint_file(path)
    except CheckpointError as exc:
        raise UsageError(_first_line(exc)) from None
    config = ckpt.get("config") if is_restoray(ckpt) else None
    if not isinstance(config, dict) or "task" not in config or "nets" not in config:
        raise UsageError(f"{model}: holds no restoray config (a zoo or bare checkpoint): pass --config "
                         f"with the experiment it belongs to (see configs/)")
    task = config["task"]
    return _task_config(model, task.get("name", ""), task), _checked_nets(model, config["nets"])


def _task_config(model: str, name: str, raw: dict[str, Any]) -> BaseModel:
    try:
        return get_task(name).Config.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        raise UsageError(f"{model}: its task settings do not load here ({_first_line(exc)}); pass --config") from None


def _checked_nets(model: str, nets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for role, net in nets.items():
        try:
            out[role] = check_net(net)
        except ValueError as exc:
            raise UsageError(f"{model}: network {role}: {_first_line(exc)}") from None
    return out


def _checkpoint_file(model: str) -> str:
    """A checkpoint folder's ``checkpoint.pt``, or the file / remote URI itself."""
    if "://" in model:
        return model
    p = Path(model)
    if p.is_dir():
        if (p / CHECKPOINT_FILE).is_file():
            return str(p / CHECKPOINT_FILE)
        raise UsageError(f"{model}: a folder without {CHECKPOINT_FILE} (give a checkpoint_* folder of a run)")
    if not p.is_file():
        raise UsageError(f"model not found: {model} (a models:/ URI, a checkpoint folder or file)")
    return os.path.abspath(model)


def with_tiling(task_cls: type, task_cfg: BaseModel, tile: int | None, overlap: int | None) -> BaseModel:
    """``task.eval.tile`` / ``tile_overlap`` set from ``--tile`` / ``--tile-overlap``, validated.

    Families that tile keep those two fields under ``eval``; for one without them, the options
    are an error rather than silently ignored.
    """
    if tile is None and overlap is None:
        return task_cfg
    raw = task_cfg.model_dump(mode="json")
    ev = raw.get("eval")
    if not isinstance(ev, dict) or "tile" not in ev:
        raise UsageError(f"--tile: the {task_cfg.name} family does not tile its inputs")
    if tile is not None:
        ev["tile"] = tile
    if overlap is not None:
        ev["tile_overlap"] = overlap
    try:
        out = task_cls.Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"--{'tile' if err['loc'][-1] == 'tile' else 'tile-overlap'}: {err['msg']}") from None
    if ev["tile"] is not None and not 0 <= ev.get("tile_overlap", 0) < ev["tile"]:
        raise UsageError(f"--tile-overlap: must be below the tile size ({ev.get('tile_overlap')} >= {ev['tile']})")
    return out


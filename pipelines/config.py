"""Loading configs: YAML files, ``a.b.c=value`` overrides, one-line errors (the schema: ``schema.py``).

Errors are raised as :class:`ConfigError` with a single line naming the field path
(``train.total_steps: ...``); the CLI turns them into exit code 2, before Ray starts.
"""

from __future__ import annotations

import copy
import os
import typing
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.schema import SCHEDULE_NAMES, ExperimentConfig, ShardConfig
from trainers.tasks import TASKS

_UNION_TAGS = {*TASKS, *SCHEDULE_NAMES}


class ConfigError(ValueError):
    """A config could not be loaded; the message is one line naming the field."""


class UsageError(ValueError):
    """A command line that cannot work (a missing model or folder, options that contradict each
    other); one line, and exit code 2 like a bad config, before any work starts."""


def _format_error(err: ValidationError) -> str:
    """One line: ``field.path: message`` for the first error (and how many more).

    pydantic puts a discriminated union's tag in the path (``task.sr.pixel``); users write
    ``task.pixel``, so the tag is dropped. Validators that know the whole path say so with a
    leading ``@path: `` in their message.
    """
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith("function-after")]
    tag_at = {"task": 1, "schedule": 2}.get(parts[0] if parts else "")
    if tag_at is not None and len(parts) > tag_at and parts[tag_at] in _UNION_TAGS:
        parts.pop(tag_at)
    msg = first["msg"].removeprefix("Value error, ")
    if msg.startswith("@"):
        path, _, msg = msg[1:].partition(": ")
        parts = path.split(".")
    if msg.startswith("Unable to extract tag using discriminator"):
        msg = "needs a 'name' field saying which kind it is"
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{'.'.join(parts)}: {msg}{extra}" if parts else f"{msg}{extra}"


def _parse_scalar(text: str) -> Any:
    """Parse a CLI override value with YAML rules (``1e-4`` -> float, ``[1,2]`` -> list)."""
    # PyYAML reads "1e-4" as a string; pydantic's lax mode turns it into a float.
    return yaml.safe_load(text)


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """``raw[a][b][c] = value`` for ``path`` ``a.b.c``, creating sections on the way; a number
    indexes a list (``init_from.generator.0.source``: the first of a list of sources)."""
    keys = path.strip().split(".")
    node: Any = raw
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"{path}: {key} is not an index of {'.'.join(keys[:i])} ({len(node)} entries)")
            key = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"{path}: {keys[i - 1]} is not a section")
        if last:
            node[key] = copy.deepcopy(value)
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"{path}: {key} is not a section")
        node = child


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a raw config dict (in place, returned)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form a.b.c=value")
        path, text = item.split("=", 1)
        set_path(raw, path, _parse_scalar(text))
    return raw


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {what}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return raw


def validate(cls: type[BaseModel], raw: dict[str, Any], origin: str) -> Any:
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{origin}: {_format_error(err)}") from None


def load_experiment(
    path: str | os.PathLike, overrides: list[str] = (), check_paths: bool | tuple[str, ...] = True
) -> ExperimentConfig:
    """Validate an experiment YAML (+ overrides); ``check_paths`` also requires local shards to
    exist: True for ``data.train`` and ``data.val``, or a tuple of the fields a command reads
    (``restoray eval`` reads only ``val``)."""
    raw = apply_overrides(read_yaml(path), list(overrides))
    cfg = validate(ExperimentConfig, raw, str(path))
    if cfg.tune is not None:
        for key, dist in cfg.tune.space.items():
            check_path(key, f"{path}: tune.space.{key}", list(cfg.nets))
            for value in dist.candidates():
                try_overrides(raw, {key: value}, f"{path}: tune.space.{key}={value!r}")
    if cfg.retrain is not None and cfg.retrain.finetune:
        sub = apply_overrides(_without(raw, "retrain"), list(cfg.retrain.finetune))
        validate(ExperimentConfig, sub, f"{path}: retrain.finetune")
    if check_paths:
        _check_local_paths(cfg, str(path), ("train", "val") if check_paths is True else tuple(check_paths))
    return cfg


def _without(raw: dict[str, Any], *sections: str) -> dict[str, Any]:
    """A deep copy of ``raw`` minus top-level ``sections``."""
    return {k: copy.deepcopy(v) for k, v in raw.items() if k not in sections}


def check_path(key: str, origin: str, roles: list[str] = ()) -> None:
    """``key`` (``a.b.c``) must name a field of ExperimentConfig.

    Union sections accept any member's fields; a section keyed by network role (``optim``,
    ``schedule``, ``ema``, ``init_from``, ``nets``) takes one of ``roles`` and then its value's
    fields; free-form values (network arguments) accept anything below them (the trial configs
    are validated in full anyway).
    """
    parts = key.split(".")
    if parts[0] in ("tune", "retrain"):
        raise ConfigError(f"{origin}: unknown config field {parts[0]!r}")
    options: list[Any] = [ExperimentConfig]
    for i, part in enumerate(parts):
        prefix = ".".join(parts[: i + 1])
        if any(o is Any for o in options):
            return
        models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        dicts = [o for o in options if typing.get_origin(o) is dict]
        fields = [m.model_fields[part].annotation for m in models if part in m.model_fields]
        if i == 1 and dicts and not fields and roles and part not in roles:  # the role sections are top-level
            raise ConfigError(f"{origin}: unknown config field {prefix!r} ({'.'.join(parts[:i])} takes a "
                              f"network: {', '.join(roles)})")
        values = [get_args(d)[1] for d in dicts]
        if not fields and not values:
            if not models and not dicts:
                raise ConfigError(f"{origin}: {'.'.join(parts[:i])} is a value, not a section")
            raise ConfigError(f"{origin}: unknown config field {prefix!r}")
        options = [c for a in fields + values for c in _options(a)]


def _options(annotation: Any) -> list[Any]:
    """The models, dict types or ``Any`` an annotation may hold (unwrapping Optional/Union/Annotated)."""
    if annotation is Any or typing.get_origin(annotation) is dict:
        return [annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for arg in get_args(annotation) for c in _options(arg)]


def try_overrides(raw: dict[str, Any], values: dict[str, Any], origin: str) -> ExperimentConfig:
    """The experiment with ``values`` (path -> value) applied, validated; ConfigError names ``origin``."""
    sub = _without(raw, "tune")
    for key, value in values.items():
        set_path(sub, key, value)
    return validate(ExperimentConfig, sub, origin)


def load_shard_config(path: str | os.PathLike, overrides: list[str] = ()) -> ShardConfig:
    raw = apply_overrides(read_yaml(path), list(overrides))
    cfg = validate(ShardConfig, raw, str(path))
    if not cfg.source.startswith("s3://") and not Path(cfg.source).exists():
        raise ConfigError(f"{path}: source: path does not exist: {cfg.source}")
    return cfg


def _check_local_paths(cfg: ExperimentConfig, origin: str, fields: tuple[str, ...]) -> None:
    """Fail before Ray starts when a local shard directory has no manifest."""
    for field in fields:
        uri = getattr(cfg.data, field)
        if uri.startswith("s3://"):
            continue
        if not (Path(uri) / "manifest.json").is_file():
            raise ConfigError(
                f"{origin}: data.{field}: no manifest.json in {uri} (run `restoray shard` first)"
            )


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to ``a.b.c`` keys (MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out

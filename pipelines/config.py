"""Typed, strict experiment and shard configs.

Every runnable experiment is one flat YAML file validated by these pydantic
models before Ray starts. ``extra="forbid"`` everywhere turns a typo into an
error instead of a silently ignored key, which is the failure mode users of
config-inheritance chains (mmcv ``_base_``) complain about most.

Errors are raised as :class:`ConfigError` with a single line naming the field
path (``train.total_steps: ...``); the CLI turns them into exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from preprocessing.adapters import get_adapter


class ConfigError(ValueError):
    """A config could not be loaded; the message is one line naming the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- models
# One class per architecture, fields = the mmedit 0.x constructor arguments, so a
# zoo config translates 1:1 and `model.name` is the arch file name.


class SRCNNModel(Strict):
    name: Literal["srcnn"]
    channels: tuple[int, int, int, int] = (3, 64, 32, 3)
    kernel_sizes: tuple[int, int, int] = (9, 1, 5)
    upscale_factor: int = 4


class EDSRModel(Strict):
    name: Literal["edsr"]
    in_channels: int = 3
    out_channels: int = 3
    mid_channels: int = 64
    num_blocks: int = 16
    upscale_factor: Literal[2, 3, 4] = 4
    res_scale: float = 1.0
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
    rgb_std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class RDNModel(Strict):
    name: Literal["rdn"]
    in_channels: int = 3
    out_channels: int = 3
    mid_channels: int = 64
    num_blocks: int = 16
    upscale_factor: Literal[2, 3, 4] = 4
    num_layers: int = 8
    channel_growth: int = 64


class MSRResNetModel(Strict):
    name: Literal["msrresnet"]
    in_channels: int = 3
    out_channels: int = 3
    mid_channels: int = 64
    num_blocks: int = 16
    upscale_factor: Literal[2, 3, 4] = 4


class RRDBNetModel(Strict):
    name: Literal["rrdbnet"]
    in_channels: int = 3
    out_channels: int = 3
    mid_channels: int = 64
    num_blocks: int = 23
    growth_channels: int = 32
    upscale_factor: Literal[1, 2, 4] = 4


ModelConfig = Annotated[
    Union[SRCNNModel, EDSRModel, RDNModel, MSRResNetModel, RRDBNetModel], Field(discriminator="name")
]


def model_kwargs(model: BaseModel) -> dict[str, Any]:
    """Constructor kwargs for ``trainers.archs.build_arch`` (everything but ``name``)."""
    return model.model_dump(exclude={"name"})


# --------------------------------------------------------------------------- data


class DegradationConfig(Strict):
    """How LQ inputs are made from GT patches.

    ``preset`` names an entry of ``degradations.presets.PRESETS``; ``paired``
    instead reads the ``lq.png`` member written by a paired adapter (DIV2K's
    official MATLAB-bicubic LR images, as the zoo EDSR/RDN configs train on).
    """

    preset: Literal["bicubic", "bd", "realesrgan", "paired"] = "bicubic"
    device: Literal["cpu"] = "cpu"


class DataConfig(Strict):
    train: str = Field(description="shard directory (local path or s3://) with manifest.json")
    val: str = Field(description="held-out shard directory for validation")
    scale: int = Field(4, ge=1, le=8)
    gt_size: int = Field(96, ge=8, description="GT patch size (LQ patch = gt_size / scale)")
    out_size: int | None = Field(
        None, ge=8,
        description="if set, a final paired random crop after degradation: GT out_size, LQ out_size / scale "
        "(Real-ESRGAN: gt_size 400 degraded, then 256 / 64 cropped)",
    )
    use_hflip: bool = True
    use_rot: bool = True  # vertical flip + transpose, as mmedit's Flip/RandomTransposeHW
    batch_size: int = Field(16, ge=1, description="per-worker batch size (zoo '1x16' = 1 GPU x 16)")
    degradation: DegradationConfig = DegradationConfig()
    transform_actors: int = Field(1, ge=1, description="actors in the decode+degrade pool")
    transform_batch_size: int = Field(
        32, ge=1, description="samples per transform call (= per block): bigger blocks, less Ray Data overhead"
    )
    cpus_per_actor: float = Field(1.0, gt=0)
    prefetch_batches: int = Field(2, ge=0)
    buffer_mb: int = Field(
        256, ge=128,
        description="object-store budget of the stream: bounds how far decoding runs ahead of training "
        "(below ~128 MB Ray Data 2.60's split coordinator was seen to stall)",
    )
    max_val_samples: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _patch_divisible(self) -> "DataConfig":
        if self.gt_size % self.scale:
            raise ValueError(f"gt_size {self.gt_size} is not divisible by scale {self.scale}")
        if self.out_size is not None:
            if self.out_size % self.scale:
                raise ValueError(f"out_size {self.out_size} is not divisible by scale {self.scale}")
            if self.out_size > self.gt_size:
                raise ValueError(f"out_size {self.out_size} is larger than gt_size {self.gt_size}")
        return self


# --------------------------------------------------------------------------- optimisation


class AdamConfig(Strict):
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class ConstantSchedule(Strict):
    name: Literal["constant"] = "constant"


class MultiStepSchedule(Strict):
    name: Literal["multistep"]
    milestones: list[int]
    gamma: float = 0.5


class CosineRestartSchedule(Strict):
    """mmcv's CosineRestartLrUpdaterHook: cosine to ``min_lr`` within each period,
    restarting at ``restart_weights[i] * base_lr``."""

    name: Literal["cosine_restart"]
    periods: list[int]
    restart_weights: list[float]
    min_lr: float = 1e-7

    @model_validator(mode="after")
    def _same_length(self) -> "CosineRestartSchedule":
        if len(self.periods) != len(self.restart_weights):
            raise ValueError("periods and restart_weights must have the same length")
        return self


ScheduleConfig = Annotated[
    Union[ConstantSchedule, MultiStepSchedule, CosineRestartSchedule], Field(discriminator="name")
]


class LossConfig(Strict):
    name: Literal["l1", "mse", "charbonnier"] = "l1"
    weight: float = 1.0


class EMAConfig(Strict):
    enabled: bool = False
    decay: float = Field(0.999, gt=0, lt=1)


class TrainConfig(Strict):
    total_steps: int = Field(ge=1)
    grad_clip: float | None = Field(None, gt=0)
    ema: EMAConfig = EMAConfig()
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto = bf16 autocast on GPU, off on CPU
    log_every: int = Field(100, ge=1)
    val_every: int = Field(5000, ge=1)
    checkpoint_every: int = Field(5000, ge=1)
    num_checkpoints_to_keep: int = Field(2, ge=1)
    max_failures: int = Field(0, ge=-1)
    max_time_s: float | None = Field(None, gt=0, description="stop early after this many seconds")


class EvalConfig(Strict):
    crop_border: int = Field(0, ge=0)
    convert_to: Literal["rgb", "y"] = "rgb"
    round: bool = False  # 0.x convention (round to uint8) vs 1.x (float)
    tile: int | None = Field(None, ge=16, description="tile LQ inputs larger than this")
    tile_overlap: int = Field(16, ge=0)


class ScalingConfig(Strict):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)


class RunConfig(Strict):
    name: str | None = Field(None, description="run name; re-running with the same name resumes")
    storage_path: str = Field("runs", description="checkpoint storage: local dir or s3://bucket/prefix")


class MLflowConfig(Strict):
    tracking_uri: str | None = Field(
        None, description="default: $MLFLOW_TRACKING_URI, else sqlite:///<abs workdir>/mlflow.db"
    )
    experiment: str = "restoray"
    register_as: str | None = Field(None, description="registered model name; default = config name")
    log_images: bool = True


class ExperimentConfig(Strict):
    """One runnable experiment (``restoray train``)."""

    name: str
    task: Literal["sr"] = "sr"
    seed: int = 0
    model: ModelConfig
    data: DataConfig
    optim: AdamConfig = AdamConfig()
    schedule: ScheduleConfig = ConstantSchedule()
    loss: LossConfig = LossConfig()
    train: TrainConfig
    eval: EvalConfig = EvalConfig()
    scaling: ScalingConfig = ScalingConfig()
    run: RunConfig = RunConfig()
    mlflow: MLflowConfig = MLflowConfig()

    @model_validator(mode="after")
    def _scale_matches_model(self) -> "ExperimentConfig":
        if self.model.upscale_factor != self.data.scale:
            raise ValueError(
                f"model.upscale_factor ({self.model.upscale_factor}) != data.scale ({self.data.scale})"
            )
        return self

    @property
    def run_name(self) -> str:
        return self.run.name or self.name


# --------------------------------------------------------------------------- sharding


class ShardConfig(Strict):
    """One dataset to shard (``restoray shard``)."""

    source: str = Field(description="raw dataset root: local path or s3://bucket/prefix")
    dest: str = Field(description="output shard directory: local path or s3://bucket/prefix")
    adapter: Literal["image_folder", "div2k", "set5_14"]
    params: dict[str, Any] = Field(default_factory=dict, description="adapter parameters")
    items_per_shard: int = Field(8, ge=1, description="source images per shard")
    concurrency: int | None = Field(None, ge=1, description="parallel shard writers")

    @model_validator(mode="after")
    def _adapter_params(self) -> "ShardConfig":
        # The adapter owns its parameter names and defaults; ask it now, before Ray starts.
        try:
            get_adapter(self.adapter).resolve_params(self.params)
        except ValueError as exc:
            raise ValueError(f"params: {exc}") from None
        return self


# --------------------------------------------------------------------------- loading


_UNION_SECTIONS = ("model", "schedule")


def _format_error(err: ValidationError) -> str:
    """One line: ``field.path: message`` for the first error (and how many more).

    pydantic puts a discriminated union's tag in the path (``model.edsr.mid_channels``);
    users write ``model.mid_channels``, so the tag is dropped.
    """
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith("function-after")]
    if len(parts) >= 2 and parts[0] in _UNION_SECTIONS:
        parts.pop(1)
    msg = first["msg"].removeprefix("Value error, ")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{'.'.join(parts)}: {msg}{extra}" if parts else f"{msg}{extra}"


def _parse_scalar(text: str) -> Any:
    """Parse a CLI override value with YAML rules (``1e-4`` -> float, ``[1,2]`` -> list)."""
    # PyYAML reads "1e-4" as a string; pydantic's lax mode turns it into a float.
    return yaml.safe_load(text)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a raw config dict (in place, returned)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form a.b.c=value")
        path, text = item.split("=", 1)
        keys = path.strip().split(".")
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{path}: {key} is not a section")
            node = child
        node[keys[-1]] = _parse_scalar(text)
    return raw


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return raw


def _validate(cls: type[BaseModel], raw: dict[str, Any], origin: str) -> Any:
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{origin}: {_format_error(err)}") from None


def load_experiment(
    path: str | os.PathLike, overrides: list[str] = (), check_paths: bool = True
) -> ExperimentConfig:
    """Validate an experiment YAML (+ overrides); ``check_paths`` also requires local shards to exist."""
    raw = apply_overrides(read_yaml(path), list(overrides))
    cfg = _validate(ExperimentConfig, raw, str(path))
    if check_paths:
        _check_local_paths(cfg, str(path))
    return cfg


def load_shard_config(path: str | os.PathLike, overrides: list[str] = ()) -> ShardConfig:
    raw = apply_overrides(read_yaml(path), list(overrides))
    cfg = _validate(ShardConfig, raw, str(path))
    if not cfg.source.startswith("s3://") and not Path(cfg.source).exists():
        raise ConfigError(f"{path}: source: path does not exist: {cfg.source}")
    return cfg


def _check_local_paths(cfg: ExperimentConfig, origin: str) -> None:
    """Fail before Ray starts when a local shard directory has no manifest."""
    for field in ("train", "val"):
        uri = getattr(cfg.data, field)
        if uri.startswith("s3://"):
            continue
        if not (Path(uri) / "manifest.json").is_file():
            raise ConfigError(
                f"{origin}: data.{field}: no manifest.json in {uri} (run `restoray shard` first)"
            )


def config_kind(path: str | os.PathLike) -> str:
    """``shard`` for configs under a ``data/`` folder, else ``experiment``."""
    return "shard" if Path(path).parent.name == "data" else "experiment"


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

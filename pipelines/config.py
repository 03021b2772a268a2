"""Typed, strict experiment and shard configs.

Every runnable experiment is one flat YAML file validated by these pydantic
models before Ray starts. ``extra="forbid"`` everywhere turns a typo into an
error instead of a silently ignored key, which is the failure mode users of
config-inheritance chains (mmcv ``_base_``) complain about most.

Errors are raised as :class:`ConfigError` with a single line naming the field
path (``train.total_steps: ...``); the CLI turns them into exit code 2.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


_TORCH_PATH_PRESETS = ("realesrgan",)  # presets degradations/torch_path.py implements


class DegradationConfig(Strict):
    """How LQ inputs are made from GT patches.

    ``preset`` names an entry of ``degradations.presets.PRESETS``; ``paired``
    instead reads the ``lq.png`` member written by a paired adapter (DIV2K's
    official MATLAB-bicubic LR images, as the zoo EDSR/RDN configs train on).
    """

    preset: Literal["bicubic", "bd", "realesrgan", "realbasicvsr", "paired"] = "bicubic"
    device: Literal["cpu", "gpu"] = Field(
        "cpu",
        description="cpu: Ray Data actors make the LQ/target pairs; gpu: the actors ship the GT patch plus the "
        "sampled parameters and the batched torch path (degradations/torch_path.py) degrades inside the "
        "training worker, on its device (CUDA when the worker has a GPU, else CPU torch)",
    )
    pool_size: int = Field(
        0, ge=0,
        description="Real-ESRGAN's training-pair pool (queue_size, 180 in the official config): pairs are "
        "swapped through a shuffled per-worker pool to decorrelate batches; 0 = off; a multiple of batch_size",
    )

    @field_validator("preset")
    @classmethod
    def _image_preset(cls, preset: str) -> str:
        # The only task today is image SR; a clip preset belongs to the video SR family.
        if preset == "realbasicvsr":
            raise ValueError("realbasicvsr needs a video task; video shards come with the video SR family")
        return preset

    @field_validator("device")
    @classmethod
    def _device_has_torch_path(cls, device: str, info) -> str:
        preset = info.data.get("preset")
        if device == "gpu" and preset is not None and preset not in _TORCH_PATH_PRESETS:
            raise ValueError(
                f"gpu needs a preset with a batched torch path ({', '.join(_TORCH_PATH_PRESETS)}), got {preset!r}"
            )
        return device


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
        pool = self.degradation.pool_size
        if pool % self.batch_size:
            raise ValueError(
                f"degradation.pool_size {pool} is not divisible by batch_size {self.batch_size} "
                "(the pool swaps whole batches, as Real-ESRGAN's queue)"
            )
        return self


# --------------------------------------------------------------------------- optimisation


class AdamConfig(Strict):
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class ConstantSchedule(Strict):
    """Constant rate, optionally after a linear warm-up from 0 over ``warmup_steps``."""

    name: Literal["constant"] = "constant"
    warmup_steps: int = Field(0, ge=0)


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


class OneCycleSchedule(Strict):
    """One cycle (Smith; ``torch.optim.lr_scheduler.OneCycleLR`` with cosine annealing):
    from ``lr / div_factor`` up to ``optim.lr`` over the first ``pct_start`` of
    ``train.total_steps``, then down to ``lr / (div_factor * final_div_factor)``."""

    name: Literal["onecycle"]
    pct_start: float = Field(0.3, gt=0, lt=1)
    div_factor: float = Field(25.0, gt=0)
    final_div_factor: float = Field(1e4, gt=0)


ScheduleConfig = Annotated[
    Union[ConstantSchedule, MultiStepSchedule, CosineRestartSchedule, OneCycleSchedule],
    Field(discriminator="name"),
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
    autoscaling: bool = Field(
        False,
        description="the cluster grows on demand: skip the up-front check that it can hold the workers "
        "(without it Ray Train waits forever for resources that never come)",
    )


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


# --------------------------------------------------------------------------- tune / retrain


class SearchDist(Strict):
    """One searched config value: exactly one of the fields is set.

    ``grid`` tries every value in every sample (Tune's grid_search); ``choice``
    draws one; ``uniform``/``loguniform`` draw a float in [low, high];
    ``randint`` an int in [low, high).
    """

    choice: list[Any] | None = None
    grid: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SearchDist":
        set_ = [k for k, v in self.__dict__.items() if v is not None]
        if len(set_) != 1:
            raise ValueError(f"give exactly one of choice/grid/uniform/loguniform/randint (got {set_ or 'none'})")
        kind = set_[0]
        value = getattr(self, kind)
        if kind in ("choice", "grid") and not value:
            raise ValueError(f"{kind} needs at least one value")
        if kind in ("uniform", "loguniform", "randint") and not value[0] < value[1]:
            raise ValueError(f"{kind} needs low < high, got {list(value)}")
        if kind == "loguniform" and value[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.__dict__.items() if v is not None)

    def candidates(self) -> list[Any]:
        """Values that must all give a valid config: every listed value, or both ends of a range."""
        value = getattr(self, self.kind)
        if self.kind in ("choice", "grid"):
            return list(value)
        return [value[0], value[1] - 1] if self.kind == "randint" else list(value)


class TuneConfig(Strict):
    """``restoray tune``: a Ray Tune sweep over this experiment.

    ``space`` maps config paths (``optim.lr``, ``schedule``, ``data.batch_size``,
    ``train.ema.decay`` ...) to distributions; each trial trains the experiment
    with its sampled values applied as overrides.
    """

    name: str | None = Field(None, description="sweep name (default: <name>-sweep); re-running it resumes")
    metric: str = Field("val/psnr", pattern=r"^(val|loss)/\w+$")
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(4, ge=1)
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="default: as many trials as the cluster's CPUs/GPUs hold at once"
    )
    scheduler: Literal["asha", "median", "fifo"] = Field(
        "asha",
        description="asha (default) and median stop weak trials early from reported metrics; fifo runs all. "
        "PBT/PB2 are not offered: they clone trial checkpoints through Tune, and with Ray Train V2 "
        "trials report checkpoint paths only",
    )
    grace_period: int = Field(1, ge=1, description="validations a trial gets before it may be stopped")
    reduction_factor: float = Field(2.0, gt=1)
    space: dict[str, SearchDist] = Field(min_length=1)


class RetrainConfig(Strict):
    """``restoray retrain``: shard new raw data, fine-tune the champion, promote if better.

    The new shards are appended to ``data.train`` (a new manifest version);
    challenger and champion are scored on the fixed ``data.val`` shards.
    """

    source: str = Field(description="raw dataset root (local path or s3://) watched for new images")
    adapter: Literal["image_folder", "div2k", "set5_14"] = "image_folder"
    params: dict[str, Any] = Field(default_factory=dict, description="adapter parameters")
    items_per_shard: int = Field(8, ge=1)
    alias: str = Field("champion", pattern=r"^[A-Za-z][\w-]*$")
    metric: Literal["psnr", "ssim"] = "psnr"
    margin: float = Field(0.0, ge=0, description="the challenger must beat the champion by more than this")
    require_champion: bool = Field(False, description="fail instead of training from scratch when no champion")
    finetune: list[str] = Field(
        default_factory=list,
        description="overrides (a.b=value) used when fine-tuning from the champion, e.g. train.total_steps=2000",
    )
    report_dir: str | None = Field(None, description="where reports go (default: <run.storage_path>/retrain)")

    @model_validator(mode="after")
    def _adapter_params(self) -> "RetrainConfig":
        _check_adapter_params(self.adapter, self.params)
        return self


class ExperimentConfig(Strict):
    """One runnable experiment (``restoray train``; ``tune`` / ``retrain`` sections for those commands)."""

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
    tune: TuneConfig | None = None
    retrain: RetrainConfig | None = None

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
        _check_adapter_params(self.adapter, self.params)
        return self


def _check_adapter_params(adapter: str, params: dict[str, Any]) -> None:
    """The adapter owns its parameter names and defaults; ask it now, before Ray starts."""
    try:
        get_adapter(adapter).resolve_params(params)
    except ValueError as exc:
        raise ValueError(f"params: {exc}") from None


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
    if msg.startswith("Unable to extract tag using discriminator"):
        msg = "needs a 'name' field saying which kind it is"
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
    if cfg.tune is not None:
        for key, dist in cfg.tune.space.items():
            check_path(key, f"{path}: tune.space.{key}")
            for value in dist.candidates():
                try_overrides(raw, {key: value}, f"{path}: tune.space.{key}={value!r}")
    if cfg.retrain is not None and cfg.retrain.finetune:
        sub = apply_overrides(_without(raw, "retrain"), list(cfg.retrain.finetune))
        _validate(ExperimentConfig, sub, f"{path}: retrain.finetune")
    if check_paths:
        _check_local_paths(cfg, str(path))
    return cfg


def _without(raw: dict[str, Any], *sections: str) -> dict[str, Any]:
    """A deep copy of ``raw`` minus top-level ``sections``."""
    return {k: copy.deepcopy(v) for k, v in raw.items() if k not in sections}


def check_path(key: str, origin: str) -> None:
    """``key`` (``a.b.c``) must name a field of ExperimentConfig; union sections accept any member's fields."""
    parts = key.split(".")
    models: list[type[BaseModel]] = [ExperimentConfig]
    for i, part in enumerate(parts):
        prefix = ".".join(parts[: i + 1])
        if not models:
            raise ConfigError(f"{origin}: {'.'.join(parts[:i])} is a value, not a section")
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields or prefix in ("tune", "retrain"):
            raise ConfigError(f"{origin}: unknown config field {prefix!r}")
        models = [c for f in fields for c in _model_classes(f.annotation)]


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (unwrapping Optional/Union/Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for arg in get_args(annotation) for c in _model_classes(arg)]


def try_overrides(raw: dict[str, Any], values: dict[str, Any], origin: str) -> ExperimentConfig:
    """The experiment with ``values`` (path -> value) applied, validated; ConfigError names ``origin``."""
    sub = _without(raw, "tune")
    for key, value in values.items():
        node = sub
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    return _validate(ExperimentConfig, sub, origin)


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

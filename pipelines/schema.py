"""The typed, strict experiment and shard config schema (loading and overrides: ``config.py``).

Family-agnostic sections live at the root; everything a model family owns is in its own
``task:`` section, a discriminated union built from ``trainers.tasks.TASKS`` (each family's
``Config``). Networks are a dict of roles (``nets: {generator: {name: rrdbnet, ...}}``) whose
arguments are checked against the architecture's own constructor signature -- the builder is the
schema, so no argument list is written twice -- and the network is built on the ``meta`` device,
so its own argument errors also surface here, before Ray starts. Per network: ``optim`` (with
``lr_mult`` and ``frozen_until_step`` by parameter-name prefix), ``schedule``, ``ema`` and
``init_from``.

``extra="forbid"`` everywhere turns a typo into an error instead of a silently ignored key.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Literal, Union

import torch
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from preprocessing.adapters import ADAPTERS, get_adapter
from trainers.archs import ARCHS
from trainers.tasks import TASKS
from trainers.strict import Strict

# --------------------------------------------------------------------------- networks


@functools.cache
def arch_arguments(name: str) -> type[Strict]:
    """A strict pydantic model of an architecture's constructor arguments, read from its signature."""
    fields: dict[str, Any] = {}
    for pname, p in inspect.signature(ARCHS[name].__init__).parameters.items():
        if pname == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        fields[pname] = (annotation, ... if p.default is inspect.Parameter.empty else p.default)
    return create_model(f"{name}_arguments", __base__=Strict, **fields)


def check_net(spec: Any) -> dict[str, Any]:
    """``{name, **kwargs}`` checked against the builder and built on the meta device.

    Returns the spec with values coerced to the signature's types (only the arguments given:
    the builder's defaults stay its own). Raises ValueError ``"<arg>: <problem>"`` (``": ..."``
    when the architecture refuses the combination).
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"name: missing; it names the architecture (known: {', '.join(sorted(ARCHS))})")
    name, kwargs = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    if name not in ARCHS:
        raise ValueError(f"name: unknown architecture {name!r}; known: {', '.join(sorted(ARCHS))}")
    try:
        args = arch_arguments(name).model_validate(kwargs)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        raise ValueError(f"{where}: {e['msg']}" if where else e["msg"]) from None
    given = args.model_dump(exclude_unset=True)
    try:
        with torch.device("meta"):
            ARCHS[name](**given)
    except Exception as exc:  # noqa: BLE001 - the architecture's own constraints, whatever it raises
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f": {name} refuses these arguments: {reason}") from None
    return {"name": name, **given}


# --------------------------------------------------------------------------- stream


class StreamConfig(Strict):
    """The Ray Data stream, whatever the family (the family's own sampling is in ``task.data``)."""

    train: str = Field(description="shard directory (local path or s3://) with manifest.json")
    val: str = Field(description="held-out shard directory for validation")
    batch_size: int = Field(16, ge=1, description="per-worker batch size (zoo '1x16' = 1 GPU x 16)")
    pool_size: int = Field(
        0, ge=0,
        description="Real-ESRGAN's training-pair pool (queue_size, 180 in the official config): samples are "
        "swapped through a shuffled per-worker pool, all their keys together; 0 = off; a multiple of batch_size",
    )
    transform_actors: int = Field(1, ge=1, description="actors in the decode+sample pool")
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
    max_skipped_fraction: float = Field(
        0.05, ge=0, le=1,
        description="damaged training samples (a cut-off tar, a member that does not decode) are skipped and "
        "counted (data/skipped); a shard with more than this fraction of its samples damaged stops the run",
    )

    exact_split: bool = Field(
        False,
        description="cut the stream into blocks of one worker batch, so that with several workers a run "
        "resumed in a new process (SIGTERM, a lost driver) gives each worker exactly the batches it would have "
        "had; off, the global sample sequence is still exact but which worker trains on a sample may change. "
        "Costs a copy of the stream in small tasks: the 2-core demo made ~20% fewer steps in its time budget",
    )

    @model_validator(mode="after")
    def _pool_divisible(self) -> "StreamConfig":
        if self.pool_size % self.batch_size:
            raise ValueError(
                f"pool_size {self.pool_size} is not divisible by batch_size {self.batch_size} "
                "(the pool swaps whole batches, as Real-ESRGAN's queue)"
            )
        return self


# --------------------------------------------------------------------------- optimisation


class OptimConfig(Strict):
    name: Literal["adam"] = "adam"
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    lr_mult: dict[str, float] = Field(
        default_factory=dict,
        description="parameter-name prefix -> learning-rate multiplier (BasicVSR: {spynet: 0.125})",
    )
    frozen_until_step: dict[str, int] = Field(
        default_factory=dict,
        description="parameter-name prefix -> first step at which it trains (BasicVSR: {spynet: 5000}); "
        "'' matches the whole network",
    )
    train_only_until_step: dict[str, int] = Field(
        default_factory=dict,
        description="parameter-name prefix -> step until which ONLY the parameters under it train, every "
        "other parameter being frozen (EDVR-TSA: {fusion: 50000}, mmedit's train_cfg.tsa_iter)",
    )


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


class CosineSchedule(Strict):
    """mmcv's CosineAnnealing by iteration over ``train.total_steps`` down to ``min_lr``, with
    its linear warm-up from ``warmup_ratio`` of the rate over ``warmup_steps`` (GCA: 5,000, 0.001)."""

    name: Literal["cosine"]
    min_lr: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.1, gt=0, le=1)


class OneCycleSchedule(Strict):
    """One cycle (``torch.optim.lr_scheduler.OneCycleLR`` with cosine annealing): from
    ``lr / div_factor`` up to ``lr`` over the first ``pct_start`` of ``train.total_steps``,
    then down to ``lr / (div_factor * final_div_factor)``."""

    name: Literal["onecycle"]
    pct_start: float = Field(0.3, gt=0, lt=1)
    div_factor: float = Field(25.0, gt=0)
    final_div_factor: float = Field(1e4, gt=0)


class PlateauSchedule(Strict):
    """ReduceLROnPlateau on a validation metric: mmedit's ``ReduceLrUpdaterHook`` (CAIN, FLAVR;
    rules in ``trainers/plateau.py``). Counted once per validation (``train.val_every``, the
    zoo's "epoch"); the other steps leave the rate alone. Field names are mmedit's, but its
    ``val_metric`` (``'PSNR'``) is ``metric`` here, a metric of the task (``psnr``)."""

    name: Literal["plateau"]
    metric: str = Field(description="the monitored validation metric, one of the task's (psnr, ssim, ...)")
    mode: Literal["max", "min"] | None = Field(
        None, description="max: higher is better; default: the task's direction for the metric")
    factor: float = Field(0.1, ge=0, lt=1, description="new lr = lr * factor")
    patience: int = Field(10, ge=0, description="validations without improvement tolerated before a reduction")
    threshold: float = Field(1e-4, ge=0, description="how much better than the best a value must be")
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: int = Field(0, ge=0, description="validations after a reduction that are not counted as bad")
    min_lr: float = Field(0.0, ge=0)
    eps: float = Field(1e-8, ge=0, description="a reduction smaller than this is skipped")
    verbose: bool = Field(False, description="print a line when the rate is reduced")


SCHEDULES = (ConstantSchedule, MultiStepSchedule, CosineSchedule, CosineRestartSchedule, OneCycleSchedule,
             PlateauSchedule)
SCHEDULE_NAMES = tuple(s.model_fields["name"].annotation.__args__[0] for s in SCHEDULES)

ScheduleConfig = Annotated[Union[SCHEDULES], Field(discriminator="name")]


class InitSource(Strict):
    """Weights a network starts from (a new run only; a resumed run has its checkpoint).

    Given as a bare string, ``strict`` is true. ``strict: false`` loads the tensors whose name
    and shape fit and says which were skipped -- mmcv's ``load_from``, which the zoo used to
    start EDSR x3/x4 from the x2 model (the upsampler differs).
    """

    source: str = Field(description="zoo .pth, restoray checkpoint or models:/name@alias; local, s3:// or https://")
    strict: bool = True
    format: Literal["checkpoint", "torchvision"] = Field(
        "checkpoint", description="torchvision: an ImageNet classifier file in torchvision's layout "
        "(vgg16-397923af.pth, resnet34-b627a593.pth, mobilenet_v2-b0353104.pth) mapped onto the "
        "encoder by the arch (trainers.archs.TORCHVISION_INIT); the rest keeps its initialisation")

    into: str | None = Field(
        None, description="a submodule (parameter-name prefix, e.g. spynet, edvr) the file fills: SPyNet's or "
        "EDVR-M's pretrained weights inside a video network, as mmedit's spynet_pretrained / edvr_pretrained; "
        "strict applies to that submodule, the rest of the network keeps its initialisation")

    @model_validator(mode="after")
    def _torchvision_is_partial(self) -> "InitSource":
        if self.format == "torchvision" and "strict" in self.model_fields_set and self.strict:
            raise ValueError("strict: a torchvision ImageNet file covers the encoder only; leave strict out")
        if self.format == "torchvision":
            self.strict = False
        if self.format == "torchvision" and self.into:
            raise ValueError("into: a torchvision file maps onto the encoder by itself; leave into out")
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"source": value} if isinstance(value, str) else value


class EMAConfig(Strict):
    decay: float = Field(0.999, gt=0, lt=1)


class TrainConfig(Strict):
    total_steps: int = Field(ge=1)
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm, per optimizer")
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto = bf16 autocast on GPU, off on CPU
    log_every: int = Field(100, ge=1)
    val_every: int = Field(5000, ge=1)
    checkpoint_every: int = Field(5000, ge=1)
    num_checkpoints_to_keep: int = Field(2, ge=1)
    max_failures: int = Field(
        3, ge=-1,
        description="worker-group restarts inside one job (a lost worker or node), each from the last "
        "committed checkpoint; -1: no limit, 0: a lost worker ends the job (re-running the command resumes)",
    )
    max_time_s: float | None = Field(None, gt=0, description="stop early after this many seconds")


class ScalingConfig(Strict):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    autoscaling: bool = Field(
        False,
        description="the cluster grows on demand: skip the up-front check that it can hold the workers "
        "(without it Ray Train waits forever for resources that never come)",
    )


class OutputConfig(Strict):
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

    ``space`` maps config paths (``optim.generator.lr``, ``schedule.generator``,
    ``data.batch_size``, ``ema.generator.decay`` ...) to distributions; each trial trains the
    experiment with its sampled values applied as overrides.
    """

    name: str | None = Field(None, description="sweep name (default: <name>-sweep); re-running it resumes")
    metric: str | None = Field(
        None, pattern=r"^(val|loss)/\w+$", description="default: val/<the task's first metric>"
    )
    mode: Literal["max", "min"] | None = Field(None, description="default: the task's direction for the metric")
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


def _check_adapter_params(adapter: str, params: dict[str, Any]) -> None:
    """The adapter owns its parameter names and defaults; ask it now, before Ray starts."""
    try:
        get_adapter(adapter).resolve_params(params)
    except ValueError as exc:
        raise ValueError(f"params: {exc}") from None


def _known_adapter(name: str) -> str:
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    return name


class RetrainConfig(Strict):
    """``restoray retrain``: shard new raw data, fine-tune the champion, promote if better.

    The new shards are appended to ``data.train`` (a new manifest version); challenger and
    champion are scored on the fixed ``data.val`` shards.
    """

    source: str = Field(description="raw dataset root (local path or s3://) watched for new images")
    adapter: str = "image_folder"
    params: dict[str, Any] = Field(default_factory=dict, description="adapter parameters")
    items_per_shard: int = Field(8, ge=1)
    alias: str = Field("champion", pattern=r"^[A-Za-z][\w-]*$")
    metric: str | None = Field(None, description="a metric of the task (default: its first); its direction decides")
    margin: float = Field(0.0, ge=0, description="the challenger must beat the champion by more than this")
    require_champion: bool = Field(False, description="fail instead of training from scratch when no champion")
    finetune: list[str] = Field(
        default_factory=list,
        description="overrides (a.b=value) used when fine-tuning from the champion, e.g. train.total_steps=2000",
    )
    report_dir: str | None = Field(None, description="where reports go (default: <run.storage_path>/retrain)")

    _adapter_known = field_validator("adapter")(classmethod(lambda cls, v: _known_adapter(v)))

    @model_validator(mode="after")
    def _adapter_params(self) -> "RetrainConfig":
        _check_adapter_params(self.adapter, self.params)
        return self


# --------------------------------------------------------------------------- the experiment

TaskConfig = Annotated[Union[tuple(t.Config for t in TASKS.values())], Field(discriminator="name")]


class ExperimentConfig(Strict):
    """One runnable experiment (``restoray train``; ``tune`` / ``retrain`` sections for those commands)."""

    name: str
    seed: int = 0
    task: TaskConfig
    nets: dict[str, dict[str, Any]] = Field(description="role -> {name: <architecture>, **its arguments}")
    data: StreamConfig
    optim: dict[str, OptimConfig] = Field(description="role -> optimizer; every network needs one")
    schedule: dict[str, ScheduleConfig] = Field(default_factory=dict, description="role -> schedule (default constant)")
    ema: dict[str, EMAConfig] = Field(default_factory=dict, description="role -> EMA of its weights")
    init_from: dict[str, InitSource | list[InitSource]] = Field(
        default_factory=dict,
        description="role -> weights to start from (EMA copies preferred; the EMA starts from them too); a list "
        "fills several submodules (IconVSR: SPyNet into spynet, EDVR-M into edvr)",
    )
    train: TrainConfig
    scaling: ScalingConfig = ScalingConfig()
    run: OutputConfig = OutputConfig()
    mlflow: MLflowConfig = MLflowConfig()
    tune: TuneConfig | None = None
    retrain: RetrainConfig | None = None

    @field_validator("nets")
    @classmethod
    def _nets(cls, nets: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out = {}
        for role, spec in nets.items():
            try:
                out[role] = check_net(spec)
            except ValueError as exc:
                field, _, msg = str(exc).partition(": ")
                raise ValueError(f"@{'.'.join(p for p in ('nets', role, field) if p)}: {msg}") from None
        return out

    @model_validator(mode="after")
    def _roles(self) -> "ExperimentConfig":
        task = TASKS[self.task.name]
        optional = getattr(task, "optional_nets", frozenset())
        if not set(task.nets) - optional <= set(self.nets) <= set(task.nets):
            want = ", ".join(f"{k} ({v}{', optional' if k in optional else ''})" for k, v in task.nets.items())
            raise ValueError(f"@nets: task {self.task.name} needs these networks: {want}; got {sorted(self.nets)}")
        for section in ("optim", "schedule", "ema", "init_from"):
            extra = sorted(set(getattr(self, section)) - set(self.nets))
            if extra:
                raise ValueError(f"@{section}.{extra[0]}: no such network in nets ({', '.join(self.nets)})")
        missing = sorted(set(self.nets) - set(self.optim))
        if missing:
            raise ValueError(f"@optim.{missing[0]}: every network needs an optimizer")
        try:
            task.check_nets(self.task, self.nets)
        except ValueError as exc:
            raise ValueError(f"@{exc}" if str(exc).startswith("nets.") else str(exc)) from None
        check_experiment = getattr(task, "check_experiment", None)
        if check_experiment is not None:  # optional: checks across sections (TTSR: the LTE's init_from)
            check_experiment(self)
        self._check_metric_names()
        return self

    def _check_metric_names(self) -> None:
        metrics = TASKS[self.task.name].metrics
        for role, schedule in self.schedule.items():
            if isinstance(schedule, PlateauSchedule):
                if schedule.metric not in metrics:
                    raise ValueError(f"@schedule.{role}.metric: {schedule.metric!r} is not a validation metric of "
                                     f"task {self.task.name} ({', '.join(metrics)})")
                if schedule.mode is None:
                    schedule.mode = metrics[schedule.metric]
        if self.tune is not None and self.tune.metric and self.tune.metric.startswith("val/"):
            if self.tune.metric[4:] not in metrics:
                raise ValueError(f"@tune.metric: task {self.task.name} reports {', '.join('val/' + m for m in metrics)}")
        if self.retrain is not None and self.retrain.metric and self.retrain.metric not in metrics:
            raise ValueError(f"@retrain.metric: task {self.task.name} reports {', '.join(metrics)}")

    @property
    def run_name(self) -> str:
        return self.run.name or self.name

    @property
    def metric_directions(self) -> dict[str, Literal["max", "min"]]:
        """Validation metrics of the task and whether higher (``max``) or lower (``min``) is better."""
        return dict(TASKS[self.task.name].metrics)

    def tune_objective(self) -> tuple[str, Literal["max", "min"]]:
        """(metric, mode) a sweep optimises: configured, else the task's first metric and its direction."""
        first = next(iter(self.metric_directions))
        metric = (self.tune.metric if self.tune else None) or f"val/{first}"
        mode = self.tune.mode if self.tune and self.tune.mode else self.metric_directions.get(metric[4:], "min")
        return metric, mode

    def retrain_objective(self) -> tuple[str, Literal["max", "min"]]:
        first = next(iter(self.metric_directions))
        metric = (self.retrain.metric if self.retrain else None) or first
        return metric, self.metric_directions[metric]


# --------------------------------------------------------------------------- sharding


class InputLimitsConfig(Strict):
    """Sizes beyond which a raw input is quarantined from its header, never decoded
    (``preprocessing.validate.InputLimits``: defaults and why)."""

    max_image_pixels: int = Field(2 ** 27, ge=1, description="width x height above which an image is refused "
                                  "(default 2^27 = 134 Mpx: 10x the zoo's largest images, decodes in < 1 GB)")
    min_image_size: int = Field(2, ge=1, description="shortest side (px) below which an image is refused; set "
                                "it to the training crop (task.data.gt_size) to refuse images smaller than the crop")
    max_frame_pixels: int = Field(2 ** 23, ge=1, description="video frame width x height above which a video "
                                  "file is refused (default 2^23: 4K UHD fits)")
    max_video_frames: int = Field(2 ** 17, ge=1, description="frame count above which a video file is refused")


class ShardConfig(Strict):
    """One dataset to shard (``restoray shard``)."""

    source: str = Field(description="raw dataset root: local path or s3://bucket/prefix")
    dest: str = Field(description="output shard directory: local path or s3://bucket/prefix")
    adapter: str
    params: dict[str, Any] = Field(default_factory=dict, description="adapter parameters")
    items_per_shard: int = Field(8, ge=1, description="source images per shard")
    concurrency: int | None = Field(None, ge=1, description="parallel shard writers")
    limits: InputLimitsConfig = Field(default_factory=InputLimitsConfig,
                                      description="input size limits (decompression bombs, too-small images)")

    _adapter_known = field_validator("adapter")(classmethod(lambda cls, v: _known_adapter(v)))

    @model_validator(mode="after")
    def _adapter_params(self) -> "ShardConfig":
        _check_adapter_params(self.adapter, self.params)
        return self

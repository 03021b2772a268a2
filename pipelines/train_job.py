"""``restoray train``: the driver that builds the stream and the ``TorchTrainer``.

Re-running with the same run name and storage path resumes: the driver reads
the latest committed checkpoint (``ray.train.Result.from_path``), starts the
data stream at its ``samples_seen`` and lets Ray Train hand the checkpoint to
the workers.

Faults. A lost worker (or node) restarts the worker group inside ``fit()`` from the last
committed checkpoint, up to ``train.max_failures`` times; once that budget is spent the job
ends with :class:`TrainingFailed`. SIGTERM (a spot node going away, ``ray job stop``) makes the
workers checkpoint after their current step and return; the job then ends with
:class:`TrainingStopped` and the MLflow run is marked KILLED. Both keep the checkpoints, and
re-running the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow.fs as pafs
import ray
import ray.train
import torch
from ray.train import CheckpointConfig, DataConfig, FailureConfig
from ray.train.torch import TorchTrainer

from pipelines import registry
from pipelines.cluster import check_fits, init_ray
from pipelines.config import ConfigError, flatten
from pipelines.failure_policy import DATA_ERROR, DataErrorsAreFinal
from pipelines.fs import s3_filesystem
from pipelines.schema import ExperimentConfig
from pipelines.stream import configure_data_context, train_dataset, val_dataset
from pipelines.tracking import finish_run, start_or_resume_run, tracking_uri
from preprocessing.schema import image_member_names
from preprocessing.shards import read_manifest
from trainers import checkpoint_io
from trainers.archs import build_arch, from_torchvision
from trainers.control import KEYS_ENV, SLEEP_ENV
from trainers.loop import RunContext, train_loop_per_worker
from trainers.tasks import get_task


class TrainingStopped(RuntimeError):
    """Training stopped on request (SIGTERM) after checkpointing; re-running resumes."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class TrainingFailed(RuntimeError):
    """The worker-group restart budget (``train.max_failures``) is spent; re-running resumes."""


@dataclass
class TrainOutcome:
    run_name: str
    mlflow_run_id: str
    tracking_uri: str
    checkpoint_dir: str | None
    metrics: dict[str, Any]
    registered_version: str | None
    seconds: float


def storage_location(storage_path: str) -> tuple[str, Any]:
    """(storage_path for RunConfig, pyarrow filesystem or None)."""
    if storage_path.startswith("s3://"):
        return storage_path[len("s3://"):].rstrip("/"), s3_filesystem()
    return str(Path(storage_path).resolve()), None


def _ingest_options(cfg: ExperimentConfig):
    """Ordered execution with a bounded buffer.

    Without a budget Ray Data fills the object store with the whole planned stream,
    and the decode actors take CPU from the train workers on small machines.
    """
    opts = DataConfig.default_ingest_options()
    opts.preserve_order = True
    opts.resource_limits = opts.resource_limits.copy(object_store_memory=cfg.data.buffer_mb * 2**20)
    return opts


class CheckpointStorageError(ValueError):
    """The run's checkpoint storage cannot be written (read-only, full, not a folder)."""


def check_writable(storage_path: str, run_name: str) -> None:
    """Fail before Ray starts, in one line naming the folder, when a local checkpoint folder
    cannot take a file: read-only, permission denied, disk (or quota) full, a file in the way.

    A small probe file is written, synced and removed. The checkpoints already there are not
    touched, so the run resumes from its last good one once the folder is fixed. (S3 storage is
    not probed: a failed upload is retried, and a dead endpoint is named by the shard reader.)
    """
    if storage_path.startswith("s3://"):
        return
    folder = Path(storage_path).resolve() / run_name
    probe = folder / f".restoray-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise CheckpointStorageError(
            f"checkpoint storage is not writable: {folder} (run.storage_path): "
            f"{exc.strerror or exc}; checkpoints already there are kept: fix the folder (or free space) "
            f"and run the same command to resume") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


# Ray Train 2.60's list of a run's checkpoints, in the run's folder. Ray writes it in place (not
# to a temporary name), so a driver killed during that write leaves half a file.
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"


def _run_folder(storage_path: str, run_name: str) -> tuple[str, Any]:
    """(the run's folder, a pyarrow filesystem for it: S3 or local)."""
    path, fs = storage_location(storage_path)
    return f"{path}/{run_name}", fs or pafs.LocalFileSystem()


def set_aside_damaged_snapshot(storage_path: str, run_name: str) -> bool:
    """Move a half-written or unparsable Ray Train checkpoint list aside (kept, renamed
    ``….damaged-<time>``) with one line; True when it did.

    Why: Ray Train refuses to start a run whose list does not parse
    (``CheckpointManagerInitializationError``), so one interrupted write would stop the run
    from ever resuming. Without the list, :func:`latest_state` finds the newest complete
    checkpoint by listing the run's folder, and the workers resume from it
    (``RunContext.resume_from``).
    """
    folder, fs = _run_folder(storage_path, run_name)
    snapshot = f"{folder}/{RAY_SNAPSHOT}"
    if fs.get_file_info(snapshot).type != pafs.FileType.File:
        return False
    try:
        with fs.open_input_stream(snapshot) as f:
            state = json.loads(f.read().decode("utf-8"))
        if not isinstance(state, dict) or "checkpoint_results" not in state:
            raise ValueError("not a checkpoint list")
        return False
    except (ValueError, UnicodeDecodeError) as exc:
        aside = f"{snapshot}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        fs.move(snapshot, aside)
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"[restoray] Ray Train's checkpoint list of run {run_name!r} is damaged ({why}): kept as {aside}; "
              "the run resumes from its newest complete checkpoint folder", flush=True)
        return True


def _checkpoint_meta(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        meta = json.loads((Path(d) / checkpoint_io.META_FILE).read_text())
        if "model" not in meta:  # written before meta.json carried it: the payload has it
            payload = checkpoint_io.read_training_checkpoint(d)
            meta["model"] = {"task": payload.get("config", {}).get("task", {}).get("name"), "arch": payload["arch"]}
    meta["checkpoint_path"] = checkpoint.path
    return meta


def newest_checkpoint_folder(storage_path: str, run_name: str) -> ray.train.Checkpoint | None:
    """The run's complete checkpoint folder (``checkpoint.pt`` and ``meta.json``, which is written
    last) with the highest step, found by listing: for a run whose Ray checkpoint list is gone."""
    folder, fs = _run_folder(storage_path, run_name)
    if fs.get_file_info(folder).type != pafs.FileType.Directory:
        return None
    best = None
    for info in fs.get_file_info(pafs.FileSelector(folder)):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        files = {f.base_name for f in fs.get_file_info(pafs.FileSelector(info.path)) if f.type == pafs.FileType.File}
        if not {checkpoint_io.CHECKPOINT_FILE, checkpoint_io.META_FILE} <= files:
            continue
        with fs.open_input_stream(f"{info.path}/{checkpoint_io.META_FILE}") as f:
            step = int(json.loads(f.read()).get("step", -1))
        if best is None or step > best[0]:
            best = (step, info.path)
    if best is None:
        return None
    return ray.train.Checkpoint(best[1], filesystem=storage_location(storage_path)[1])


def latest_state(storage_path: str, run_name: str) -> dict[str, Any] | None:
    """meta.json of the latest committed checkpoint of ``run_name``, or None for a new run.

    From Ray Train's checkpoint list; when that is gone (set aside as damaged), from the newest
    complete checkpoint folder, marked ``resume_from`` (the workers must be told: Ray knows none).
    """
    set_aside_damaged_snapshot(storage_path, run_name)
    path, fs = storage_location(storage_path)
    train_log = logging.getLogger("ray.train")  # its "A run snapshot was found ..." INFO lines: not for the terminal
    level = train_log.level
    train_log.setLevel(max(level, logging.WARNING))
    try:
        checkpoint = ray.train.Result.from_path(f"{path}/{run_name}", storage_filesystem=fs).checkpoint
    except RuntimeError:  # no checkpoint list
        checkpoint = None
    finally:
        train_log.setLevel(level)
    if checkpoint is not None:
        return _checkpoint_meta(checkpoint)
    checkpoint = newest_checkpoint_folder(storage_path, run_name)
    return _checkpoint_meta(checkpoint) | {"resume_from": checkpoint} if checkpoint is not None else None


def preflight(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """Everything the config, the shard manifests and the run's checkpoints can tell before Ray
    starts or an MLflow run is touched; one-line errors. Returns the run's latest checkpoint
    meta (None for a new run)."""
    family_check = getattr(get_task(cfg.task.name), "preflight", None)
    if family_check is not None:  # the family's own file checks
        family_check(cfg.task)
    check_writable(cfg.run.storage_path, cfg.run_name)
    manifests = {split: read_manifest(getattr(cfg.data, split)) for split in ("train", "val")}
    check_data_members(cfg, manifests)
    previous = latest_state(cfg.run.storage_path, cfg.run_name)
    if previous:
        check_same_model(cfg, previous, cfg.run_name)
    return previous


def check_data_members(cfg: ExperimentConfig, manifests: dict[str, dict[str, Any]]) -> None:
    """Refuse, before Ray starts, a config that reads a member its shards do not hold.

    Each manifest lists the members every sample holds (``members``; absent in manifests of
    older shard jobs, which are then not checked); the family's sampler says which it needs and
    which config field needs it (``Sampler.needs``). Without this check ``preset: paired`` on
    GT-only shards failed inside the Ray Data actors after a minute of tracebacks.
    """
    needs = getattr(get_task(cfg.task.name).sampler(cfg.task), "needs", None)
    if needs is None:
        return
    for split, manifest in manifests.items():
        held = manifest.get("members")
        if held is None:
            continue
        for member, field in needs(split).items():
            # gt.*.png: a clip's frames; an image member in any codec (gt.png or gt.qoi)
            names = image_member_names(member) if member.endswith(".png") else (member,)
            if not any(fnmatch.fnmatchcase(h, n) for h in held for n in names):
                raise ConfigError(
                    f"{field}: reads the {member} member of every sample, but the shards in data.{split} "
                    f"({getattr(cfg.data, split)}, adapter {manifest.get('adapter')!r}) hold only "
                    f"{', '.join(held) or 'nothing'}")


def check_same_model(cfg: ExperimentConfig, previous: dict[str, Any], run_name: str) -> None:
    """Refuse, before Ray starts, to resume a run whose checkpoint holds other networks.

    Re-using a run name with another architecture would otherwise fail inside a worker on a
    state-dict error, after the finished run's MLflow status had been reopened. Schedules,
    steps and loss weights may change between invocations (extending a run is a feature);
    the task and every network's architecture may not.
    """
    held = previous.get("model") or {}
    where = f"run {run_name!r} in {cfg.run.storage_path}"
    if held.get("task") not in (None, cfg.task.name):
        raise ConfigError(f"task.name: {where} was trained as {held['task']!r}, this config is {cfg.task.name!r}; "
                          "give this experiment another run.name (or name)")
    old, new = held.get("arch", {}), arch_spec(cfg)
    for role in sorted(set(old) | set(new)):
        a, b = old.get(role), new.get(role)
        if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
            continue
        what = lambda s: "no such network" if s is None else f"{s['name']}({', '.join(f'{k}={v}' for k, v in sorted(s['kwargs'].items()))})"  # noqa: E731
        raise ConfigError(f"nets.{role}: {where} holds {what(a)}, this config has {what(b)}; give this experiment "
                          "another run.name (or name), or restore the original nets section")


def build_nets(cfg: ExperimentConfig, device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:
    """Every network of the experiment, freshly initialised (``meta``: shapes only, no memory)."""
    with torch.device(device):
        return {r: build_arch(s["name"], **{k: v for k, v in s.items() if k != "name"}) for r, s in cfg.nets.items()}


def arch_spec(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    return {r: {"name": s["name"], "kwargs": {k: v for k, v in s.items() if k != "name"}} for r, s in cfg.nets.items()}


def read_weights(source: str, role: str, uri: str) -> tuple[dict[str, torch.Tensor], str]:
    """One network's weights from a file/URI (zoo .pth, restoray checkpoint) or ``models:/...``."""
    if source.startswith("models:/"):
        nets = registry.load(uri, source)["nets"]
        if role not in nets:
            raise ValueError(f"{source} holds no {role!r} network (it has {', '.join(nets)})")
        return nets[role], f"registered {source}"
    return checkpoint_io.extract_net_state(checkpoint_io.load_checkpoint_file(source), role, prefer_ema=True)


def imagenet_weights(cfg: ExperimentConfig, role: str, source: str) -> dict[str, torch.Tensor]:
    """A torchvision ImageNet file mapped onto ``role``'s encoder (the arch's converter)."""
    spec = dict(cfg.nets[role])
    name = spec.pop("name")
    raw = checkpoint_io.load_checkpoint_file(source)
    try:
        return from_torchvision(name, raw.get("state_dict", raw), **spec)
    except (KeyError, ValueError) as exc:
        raise checkpoint_io.CheckpointError(f"init_from.{role}: {source} is not a torchvision file this arch "
                                            f"can start from: {exc}") from None


def resolve_init(cfg: ExperimentConfig, uri: str) -> dict[str, Any]:
    """``init_from`` read on the driver and checked against the networks' keys and shapes, so a
    wrong file fails here in one line; the states travel to the workers as object refs.

    A non-strict source keeps the tensors that fit; the workers then load the rest from their
    own initialisation (``load_state_dict(strict=False)``), as mmcv's ``load_from`` does.
    """
    out = {}
    shapes = build_nets(cfg, "meta")
    for role, init in cfg.init_from.items():
        if isinstance(init, list) or init.into:
            out[role] = (ray.put(submodule_weights(shapes[role], role, init if isinstance(init, list) else [init], uri)),
                         False)
            continue
        if init.format == "torchvision":
            state, where = imagenet_weights(cfg, role, init.source), "torchvision ImageNet weights"
        else:
            state, where = read_weights(init.source, role, uri)
        report = checkpoint_io.compare_state_dict(shapes[role], state)
        if init.format == "torchvision" and (report.unexpected or report.mismatched):
            raise checkpoint_io.CheckpointError(f"init_from.{role}: {init.source} mapped onto {cfg.nets[role]['name']} "
                                                f"does not fit: {report.summary()}")
        if not report.ok and init.strict:
            raise checkpoint_io.CheckpointError(f"init_from.{role}: {init.source} does not fit: {report.summary()}")
        if not report.ok:
            skipped = set(report.unexpected) | {k for k, _, _ in report.mismatched}
            state = {k: v for k, v in state.items() if k not in skipped}
            print(f"[restoray] init_from.{role} (strict: false) skips: {report.summary()}", flush=True)
        print(f"[restoray] {role} starts from {where} ({init.source})", flush=True)
        out[role] = (ray.put(state), init.strict)
    return out


def runtime_params(cfg: ExperimentConfig) -> dict[str, str]:
    """What the run uses beyond its config, logged as MLflow params: the deformable-convolution
    implementation of networks that have one (torchvision's compiled op where the image installs
    it and it works, else restoray's plain-torch one; the cluster image runs driver and workers)."""
    from trainers.archs.deform_conv import ModulatedDeformConv2d, deform_conv_backend

    nets = build_nets(cfg, "meta")
    if not any(isinstance(m, ModulatedDeformConv2d) for net in nets.values() for m in net.modules()):
        return {}
    backend = deform_conv_backend()
    print(f"[restoray] deformable convolution: {backend} "
          f"({'torchvision.ops.deform_conv2d' if backend == 'torchvision' else 'plain torch, trainers/archs/deform_conv.py'})",
          flush=True)
    return {"runtime.deform_conv": backend}


def submodule_weights(net: torch.nn.Module, role: str, sources: list, uri: str) -> dict[str, torch.Tensor]:
    """Several files, each filling one submodule (``into``) of ``role``, merged into one partial
    state: SPyNet's pretrained flow weights inside BasicVSR, EDVR-M's inside IconVSR. A file may
    hold the submodule alone (mmedit's spynet file) or a whole network with it under ``into.``;
    ``strict`` checks it against the submodule's own keys."""
    merged: dict[str, torch.Tensor] = {}
    for init in sources:
        if not init.into:
            raise checkpoint_io.CheckpointError(f"init_from.{role}: {init.source}: a list of sources needs into: on each")
        try:
            sub = net.get_submodule(init.into)
        except AttributeError:
            raise checkpoint_io.CheckpointError(f"init_from.{role}.into: {type(net).__name__} has no submodule "
                                                f"{init.into!r}") from None
        try:
            state, _ = read_weights(init.source, role if init.source.startswith("models:/") else "generator", uri)
        except (checkpoint_io.CheckpointError, ValueError) as exc:
            raise checkpoint_io.CheckpointError(f"init_from.{role}: {init.source}: {exc}") from None
        inner = {k[len(init.into) + 1:]: v for k, v in state.items() if k.startswith(f"{init.into}.")}
        state = inner or state
        report = checkpoint_io.compare_state_dict(sub, state)
        if not report.ok and init.strict:
            raise checkpoint_io.CheckpointError(f"init_from.{role}: {init.source} does not fit {init.into}: "
                                                f"{report.summary()}")
        skipped = set(report.unexpected) | {k for k, _, _ in report.mismatched}
        if skipped or report.missing:
            print(f"[restoray] init_from.{role} into {init.into} (strict: false): {report.summary()}", flush=True)
        merged.update({f"{init.into}.{k}": v for k, v in state.items() if k not in skipped})
        print(f"[restoray] {role}.{init.into} starts from {init.source}", flush=True)
    return merged


def final_weights(checkpoint: ray.train.Checkpoint) -> dict[str, dict[str, torch.Tensor]]:
    """role -> trained weights (EMA where kept) of a restoray training checkpoint."""
    with checkpoint.as_directory() as d:
        state = checkpoint_io.read_training_checkpoint(d)
    return {role: checkpoint_io.extract_net_state(state, role, prefer_ema=True)[0] for role in state["nets"]}


def load_final_nets(checkpoint: ray.train.Checkpoint, cfg: ExperimentConfig) -> dict[str, torch.nn.Module]:
    """The trained networks of a checkpoint, EMA weights where kept, in eval mode."""
    nets = build_nets(cfg)
    for role, weights in final_weights(checkpoint).items():
        checkpoint_io.load_strict(nets[role], weights)
    return {r: n.eval() for r, n in nets.items()}


def make_trainer(cfg: ExperimentConfig, ctx: RunContext, step0: int, callbacks: Sequence[Any] = ()) -> TorchTrainer:
    """The ``TorchTrainer`` of a run: the stream from ``ctx.stream_start`` split over the workers,
    the validation set, and checkpoints under ``run.storage_path/<run name>``."""
    world = cfg.scaling.num_workers
    global_batch = cfg.data.batch_size * world
    # Plan a little beyond the last step: workers prefetch, and equal splits may trim a remainder.
    needed = max(cfg.train.total_steps - step0, 0) * global_batch + global_batch * (cfg.data.prefetch_batches + 2)
    configure_data_context(progress_bars=False)
    val_manifest = read_manifest(cfg.data.val)
    datasets = {
        "train": train_dataset(cfg.data.train, read_manifest(cfg.data.train), cfg, ctx.stream_start, needed,
                               emit_keys=ctx.keys_file is not None),
        "val": val_dataset(cfg.data.val, val_manifest, cfg),
    }
    ctx = dataclasses.replace(ctx, val_samples=sum(int(s["num_samples"]) for s in val_manifest["shards"]))
    path, fs = storage_location(cfg.run.storage_path)
    return _Trainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "ctx": ctx},
        scaling_config=ray.train.ScalingConfig(
            num_workers=world, use_gpu=cfg.scaling.use_gpu, resources_per_worker={"CPU": cfg.scaling.cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=cfg.run_name, storage_path=path, storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.num_checkpoints_to_keep),
            callbacks=list(callbacks) or None,
            # Ray Train's INFO lines ("Reporting training result ...", worker-group start) stay in
            # Ray's log files; the terminal gets restoray's progress lines
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"], execution_options=_ingest_options(cfg)),
    )


class _Trainer(TorchTrainer):
    """``TorchTrainer`` with :class:`DataErrorsAreFinal`. Ray Train 2.60 has no public switch for
    the policy: this overrides the one private method that receives it (checked by
    ``tests/pipelines/test_damaged_data_and_storage_e2e.py``, which counts the attempts)."""

    def _initialize_and_run_controller(self, **kwargs):
        kwargs["failure_policy"] = DataErrorsAreFinal(self.run_config.failure_config)
        return super()._initialize_and_run_controller(**kwargs)


@ray.remote(num_cpus=0)
class StopSignal:
    """Set once by the driver (SIGTERM); polled by rank 0 of the workers (``loop.StopWatch``).

    A driver that gets SIGTERM cannot simply exit: its Ray Train controller and workers die with
    it and the steps since the last checkpoint are lost. It sets this flag instead; the workers
    checkpoint after their current step and return, and ``fit()`` ends normally."""

    def __init__(self):
        self._reason: str | None = None

    def request(self, reason: str) -> None:
        self._reason = self._reason or reason

    def reason(self) -> str | None:
        return self._reason


class _StopOnSigterm:
    """Inside ``with stop_on_sigterm() as stop``: the first SIGTERM sets ``stop.signal`` (the
    workers checkpoint after their current step and return, so ``fit()`` ends) and
    ``stop.requested``; a second one ends the process at once (exit 143). Outside the main
    thread (``restoray tune`` trials) signals are left alone."""

    def __init__(self):
        self.signal = StopSignal.remote()
        self.requested: str | None = None
        self._event = threading.Event()
        # The handler runs inside whatever the main thread is doing (often ray.get in fit()):
        # it only sets an event; this thread makes the Ray call.
        threading.Thread(target=self._forward, name="restoray-stop", daemon=True).start()

    def _forward(self) -> None:
        self._event.wait()
        if self.requested:
            self.signal.request.remote(self.requested)

    def close(self) -> None:
        self._event.set()

    def _handle(self, signum, frame) -> None:
        if self.requested:
            print("restoray: second SIGTERM: exiting without waiting for the checkpoint", flush=True)
            os._exit(128 + signum)
        self.requested = signal.Signals(signum).name
        print(f"[restoray] {self.requested}: checkpointing after the current step, then stopping "
              f"(send it again to exit at once)", flush=True)
        self._event.set()


@contextlib.contextmanager
def stop_on_sigterm():
    stop = _StopOnSigterm()
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, stop._handle) if main else None
    try:
        yield stop
    finally:
        if main:
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
        stop.close()
        ray.kill(stop.signal)


def failure_message(cfg: ExperimentConfig, exc: BaseException) -> str:
    """One line for a job whose worker-group restarts are spent."""
    failures = getattr(exc, "worker_failures", None) or {}  # WorkerGroupError: rank -> error
    controller = getattr(exc, "controller_failure", None)  # ControllerError: not a worker lost
    if controller is not None:
        first = str(controller).strip().splitlines()[0] if str(controller).strip() else type(controller).__name__
        return f"training failed: Ray Train's controller failed: {first[:300]}; " + _kept(cfg)
    if failures:
        rank, error = sorted(failures.items())[0]
        named = DATA_ERROR.search(str(error))  # a damaged shard or dead storage says what to fix
        if named:
            return f"training failed: {named.group(1).strip()[:400]}; " + _kept(cfg)
        lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
        cause = f"worker rank {rank}: " + " ".join(lines).split(" Worker exit type")[0].rstrip(".")
    else:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    budget = cfg.train.max_failures
    spent = "no restarts allowed (train.max_failures=0)" if budget == 0 else \
        f"train.max_failures={budget} restarts spent"
    return f"training failed, {spent}: {cause[:300]}; " + _kept(cfg)


def _kept(cfg: ExperimentConfig) -> str:
    latest = latest_state(cfg.run.storage_path, cfg.run_name)
    return f"the checkpoint of step {latest['step']} is kept" if latest else "no checkpoint was committed"


def run_train(
    cfg: ExperimentConfig, *, config_file: str | None = None, workdir: str | os.PathLike = ".",
    register: bool = True, callbacks: Sequence[Any] = (), parent_run_id: str | None = None,
    init_states: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Train (or resume, or do nothing for a finished run) and register the networks.

    ``callbacks`` are Ray Train ``UserCallback``s (``restoray tune`` passes
    ``TuneReportCallback``); ``parent_run_id`` makes the MLflow run a child (a sweep
    trial); ``init_states`` (role -> state dict or object ref) starts a new run from given
    weights (``restoray retrain`` fine-tuning the champion); it wins over ``init_from``.
    """
    t0 = time.time()
    run_name = cfg.run_name
    previous = preflight(cfg)
    init_ray()
    check_fits(cfg)
    uri = tracking_uri(cfg.mlflow.tracking_uri, workdir)
    step0, seen0 = (previous["step"], previous["samples_seen"]) if previous else (0, 0)
    if previous:
        print(f"[restoray] resuming run {run_name!r} from step {step0} ({seen0} samples seen)", flush=True)
    cfg_dict = cfg.model_dump(mode="json")
    params = flatten(cfg_dict) | runtime_params(cfg)
    run_id = start_or_resume_run(
        uri, cfg.mlflow.experiment, run_name, workdir, params, config_file,
        parent_run_id=parent_run_id,
    )
    if step0 >= cfg.train.total_steps:
        # Nothing to do: re-running a finished command (cron, a retried job) is a no-op.
        print(f"[restoray] run {run_name!r} already finished ({step0} steps); nothing to train", flush=True)
        finish_run(uri, run_id)
        metrics = {k: v for k, v in previous.items() if k not in ("checkpoint_path", "model", "resume_from")}
        return TrainOutcome(run_name, run_id, uri, previous["checkpoint_path"], metrics, None, time.time() - t0)
    ctx = RunContext(tracking_uri=uri, run_id=run_id, stream_start=seen0, keys_file=os.environ.get(KEYS_ENV),
                     step_sleep_s=float(os.environ.get(SLEEP_ENV) or 0),
                     resume_from=previous.get("resume_from") if previous else None)
    result = None
    with stop_on_sigterm() as stop:
        ctx.stop = stop.signal
        if previous is None:
            ctx.init_states = {**resolve_init(cfg, uri), **{r: (s, True) for r, s in (init_states or {}).items()}}
        trainer = make_trainer(cfg, ctx, step0, callbacks)
        if not stop.requested:
            try:
                result = trainer.fit()
            except ray.train.TrainingFailedError as exc:
                finish_run(uri, run_id, status="FAILED")
                raise TrainingFailed(failure_message(cfg, exc)) from exc
            except Exception:
                finish_run(uri, run_id, status="FAILED")
                raise
    if stop.requested:
        step = int((result.metrics or {}).get("step", step0)) if result is not None else step0
        if step < cfg.train.total_steps:
            finish_run(uri, run_id, status="KILLED")
            raise TrainingStopped(f"stopped by {stop.requested} at step {step} of {cfg.train.total_steps}, "
                                  f"checkpoint saved", step)
    version = None
    if register and result.checkpoint is not None:
        version = registry.register(uri, run_id, cfg.mlflow.register_as or cfg.name, cfg.task.name,
                                    arch_spec(cfg), final_weights(result.checkpoint),
                                    task_config=cfg.task.model_dump(mode="json"))
    finish_run(uri, run_id)
    return TrainOutcome(
        run_name=run_name, mlflow_run_id=run_id, tracking_uri=uri,
        checkpoint_dir=result.checkpoint.path if result.checkpoint else None,
        metrics=dict(result.metrics or {}), registered_version=version, seconds=time.time() - t0,
    )

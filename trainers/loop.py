"""The only train loop: every model family, every Ray Train worker.

Run by ``ray.train.torch.TorchTrainer`` (DDP: gloo on CPU, NCCL on GPU) with
``train_loop_config={"cfg": ExperimentConfig, "ctx": RunContext}``: the typed config itself
(pydantic models pickle) and what the driver decided for this run. Split as a recipe:
:meth:`Recipe.setup` (networks, weights, optimizers, the stream), :meth:`Recipe.train` (the
iteration), :meth:`Recipe.validate` and :meth:`Recipe.save`. The family (``trainers/tasks``)
owns its networks' roles, its step (backward passes and optimizer steps included), prediction,
scores and preview; this file names no family.

What the loop owns: the stream and its resume skip, the pair pool, AMP, EMA, gradient clipping
and frozen windows (optimizer hooks, ``trainers/optim.py``), schedulers (stepped every
iteration; a ``plateau`` one also after each validation, with rank 0's metric), the log /
validate / checkpoint cadence and the time budget.

Resumption is exact: a checkpoint (``trainers/checkpoint_io.py``, format v2) holds every
network, EMA, optimizer and scheduler, step, ``samples_seen`` and every rank's pair pool.
After a job-level resume the driver starts the stream at ``samples_seen``; after an
in-``fit`` worker-group restart (``FailureConfig``) the stream restarts at
``ctx.stream_start`` and the loop skips forward to ``samples_seen`` itself, so neither
replays nor skips data.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn

from preprocessing.redact import redact_config
from trainers import checkpoint_io
from trainers.control import KEY_COLUMN, KeyRecorder
from trainers.archs import build_arch
from trainers.ema import EMA
from trainers.optim import add_step_hooks, build_optimizer, build_scheduler, param_groups
from trainers.pair_pool import PairPool, gather_states, restore as restore_pool
from trainers.plateau import PlateauScheduler, from_rank0
from trainers.tasks import get_task
from trainers.tasks.common import mean_scores, to_batch, unwrap
from trainers.tracking import RunLogger


@dataclass
class RunContext:
    """What the driver decided for this run, beside the config.

    Attributes:
        tracking_uri: Absolute MLflow tracking URI (None: no tracking).
        run_id: The MLflow run the driver created or resumed.
        stream_start: Samples consumed before the first row of the stream.
        init_states: role -> (state dict or an object ref to one, strict) to start a new run
            from (``init_from``, or ``restoray retrain`` fine-tuning its champion); non-strict
            states hold only the tensors that fit.
        stop: A ``pipelines.train_job.StopSignal`` handle: once set (the driver got SIGTERM), the
            workers checkpoint after the current step and return.
        keys_file: The consumed-keys test hook's file prefix (``RESTORAY_DEBUG_KEYS_FILE``).
        step_sleep_s: Test hook: a pause after each step (``RESTORAY_DEBUG_STEP_SLEEP_S``).
        val_samples: Samples the validation manifest lists (0: not known); a validation that
            scores fewer (damaged ones are left out by the stream) logs ``data/val_skipped``.
        resume_from: A ``ray.train.Checkpoint`` to resume from while Ray Train reports none:
            the run's checkpoint list was damaged and set aside, its newest folder was found by
            listing (``pipelines.train_job.latest_state``).
    """

    tracking_uri: str | None = None
    run_id: str | None = None
    stream_start: int = 0
    init_states: dict[str, Any] = field(default_factory=dict)
    stop: Any = None
    keys_file: str | None = None
    step_sleep_s: float = 0.0
    val_samples: int = 0
    resume_from: Any = None


@dataclass
class TrainState:
    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    emas: dict[str, EMA]
    step: int = 0
    samples_seen: int = 0
    skipped: int = 0  # damaged samples skipped so far, every rank (logged as data/skipped)
    last_val: dict[str, float] = field(default_factory=dict)


def _say(message: str) -> None:
    """Print a progress line once. Ray Train patches ``print`` to tee into its logger
    when another library (MLflow) wraps stdout, which doubled every line."""
    print(message, file=sys.__stdout__, flush=True)


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (keeps DDP ranks in lock-step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _resolve(state: Any) -> dict:
    return ray.get(state) if isinstance(state, ray.ObjectRef) else state


def sync_batchnorm(net: nn.Module, task: Any, world: int, device: torch.device) -> nn.Module:
    """``net`` with its batch norms synchronised across workers when the family trained that way
    (``task.sync_batchnorm``: the zoo's SyncBN for Global&Local and PConv) and there is more than
    one CUDA worker; as is otherwise (SyncBN needs NCCL; one worker has nothing to sync). The
    state dict keys do not change, so checkpoints load either way."""
    if getattr(task, "sync_batchnorm", False) and world > 1 and torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net


def seed_step(seed: int, step: int, rank: int) -> None:
    """Seeds torch's global generators (CPU and CUDA) from (run seed, step, rank) before a step.

    Why: dropout layers, random noise inputs and any draw a family makes without its own
    generator use the global state, which a checkpoint does not hold; seeding
    from the step's position makes a resumed run, or a restarted worker group, draw what the
    uninterrupted run drew, with nothing to save. Ranks get different streams.
    """
    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1))


class Recipe:
    """One worker's training run.

    Ray enters through :func:`train_loop_per_worker` only: the recipe itself takes its rank,
    device, batches and report function as arguments, so ``restoray bench train`` can run the
    very same loop on in-memory batches and measure what its bookkeeping costs.
    """

    def __init__(self, cfg, ctx: RunContext, rank: int = 0, world: int = 1,
                 device: torch.device = torch.device("cpu"), report=None, val_rows=None):
        self.cfg, self.ctx = cfg, ctx
        self.rank, self.world, self.device = rank, world, device
        torch.manual_seed(cfg.seed)  # before anything random: the task's own modules, then the networks
        self.report = report or ray.train.report
        self.val_rows = val_rows or (lambda: ray.train.get_dataset_shard("val").iter_batches(
            batch_size=1, batch_format="numpy"))
        self.task = get_task(cfg.task.name)(cfg.task)
        amp = cfg.train.amp
        self.use_amp = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        self.logger = RunLogger(ctx.tracking_uri, ctx.run_id) if self.rank == 0 and ctx.run_id else None
        self.global_batch = cfg.data.batch_size * self.world
        self.pool = PairPool(cfg.data.pool_size, cfg.seed, self.rank) if cfg.data.pool_size else None
        self.keys = KeyRecorder(ctx.keys_file, rank) if ctx.keys_file else None
        self.stopped = False  # set when training ended early on the driver's stop request

    # ------------------------------------------------------------------ set-up

    def setup(self, checkpoint: ray.train.Checkpoint | None, batches=None, wrap=None) -> None:
        """Networks (from the checkpoint, else ``init_states``), EMAs, optimizers, the stream.

        Args:
            checkpoint: The run's latest checkpoint, or None for a new run.
            batches: Iterator of stream batches (default: this worker's Ray Data shard).
            wrap: Wraps each network for distributed training (default: ``prepare_model``).
        """
        cfg = self.cfg
        saved = None
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                saved = checkpoint_io.read_training_checkpoint(d)
        nets = self._build_nets(saved)
        emas = {role: EMA(nets[role], e.decay) for role, e in cfg.ema.items()}
        for role, ema in emas.items():
            if saved and saved["ema"].get(role) is not None:
                ema.load_state_dict(saved["ema"][role])
            ema.state = {k: v.to(self.device) for k, v in ema.state.items()}
        self.state = TrainState(nets={}, optimizers={}, schedulers={}, emas=emas)
        for role, net in nets.items():
            net = sync_batchnorm(net, self.task, self.world, self.device)
            self._add_optimizer(role, net)
            self.state.nets[role] = (wrap or ray.train.torch.prepare_model)(net)
        if saved is not None:
            self._restore_progress(saved)
        self.batches = batches if batches is not None else self._train_batches()
        self.stop_watch = StopWatch(self.ctx.stop, self.rank) if self.ctx.stop is not None else None

    def _build_nets(self, saved: dict | None) -> dict[str, nn.Module]:
        nets = {}
        for role, spec in self.cfg.nets.items():
            net = build_arch(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
            if saved is not None:
                checkpoint_io.load_strict(net, saved["nets"][role])
            elif role in self.ctx.init_states:
                state, strict = self.ctx.init_states[role]
                if strict:
                    checkpoint_io.load_strict(net, _resolve(state))
                else:
                    net.load_state_dict(_resolve(state), strict=False)
            elif hasattr(self.task, "init_net"):  # a family's own start (GLEAN's StyleGAN2 bank)
                self.task.init_net(role, net)
            nets[role] = net
        return nets

    def _add_optimizer(self, role: str, net: nn.Module) -> None:
        o = self.cfg.optim[role]
        opt = build_optimizer(param_groups(net, o.lr, o.lr_mult), o.model_dump())
        add_step_hooks(opt, net, o.frozen_until_step, self.cfg.train.grad_clip, lambda: self.state.step,
                       o.train_only_until_step)
        schedule = self.cfg.schedule.get(role)
        schedule = schedule.model_dump() if schedule is not None else {"name": "constant"}
        self.state.optimizers[role] = opt
        self.state.schedulers[role] = build_scheduler(opt, schedule, o.lr, self.cfg.train.total_steps)

    def _restore_progress(self, saved: dict) -> None:
        s = self.state
        for role, opt in s.optimizers.items():
            opt.load_state_dict(saved["optimizers"][role])
            s.schedulers[role].load_state_dict(saved["schedulers"][role])
        s.step, s.samples_seen = saved["step"], saved["samples_seen"]
        s.skipped = int(saved.get("data_position", {}).get("skipped", 0))
        s.last_val = dict(saved.get("last_val") or {})
        if self.pool is not None and not restore_pool(self.pool, saved.get("pair_pool"), self.rank, self.world,
                                                      self.device):
            if self.rank == 0:
                _say("[restoray] the checkpoint has no pair pool for this many workers; the pool refills")
        if self.rank == 0:
            _say(f"[restoray] resumed at step {s.step} ({s.samples_seen} samples seen)")

    def _train_batches(self):
        batches = iter(ray.train.get_dataset_shard("train").iter_torch_batches(
            batch_size=self.cfg.data.batch_size, drop_last=True, device=self.device,
            prefetch_batches=self.cfg.data.prefetch_batches,
        ))
        # In-fit restart: the stream restarted at stream_start; skip what this
        # checkpoint already consumed (each rank skips its equal share).
        skip = max((self.state.samples_seen - self.ctx.stream_start) // self.global_batch, 0)
        for _ in range(skip):
            next(batches)
        if skip and self.rank == 0:
            _say(f"[restoray] worker group restarted: skipped the {skip} batches per worker the checkpoint "
                 f"already trained on")
        return batches

    # ------------------------------------------------------------------ train

    def train(self) -> None:
        s, tcfg = self.state, self.cfg.train
        for net in s.nets.values():
            net.train()
        t_start = time.time()
        self.window = _Window()
        while s.step < tcfg.total_steps:
            t0 = time.time()
            try:
                raw = next(self.batches)
            except StopIteration:
                _say(f"[restoray] rank {self.rank}: data stream ended at step {s.step}")
                break
            skipped = raw.pop("skipped", None)  # damaged samples the stream skipped (pipelines/stream.py)
            if skipped is not None:
                self.window.skipped = self.window.skipped + skipped.sum()
            if KEY_COLUMN in raw:  # the consumed-keys test hook; never reaches the family
                keys = raw.pop(KEY_COLUMN)
                if self.keys is not None:
                    self.keys.record(s.step, keys)
            if self.pool is not None:
                raw = self.pool(raw, s.step)
            seed_step(self.cfg.seed, s.step, self.rank)
            batch = self.task.device_stage(raw)  # device-side work counts as data time
            self.window.wait += time.time() - t0
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                logs = self.task.train_step(s.nets, s.optimizers, batch, s.step)
            for scheduler in s.schedulers.values():
                scheduler.step()
            for role, ema in s.emas.items():
                ema.update(unwrap(s.nets[role]))
            s.step += 1
            s.samples_seen += self.global_batch
            if self.ctx.step_sleep_s:
                time.sleep(self.ctx.step_sleep_s)
            self.window.add(logs)
            out_of_time = tcfg.max_time_s is not None and time.time() - t_start > tcfg.max_time_s
            self._saved_at = None
            if self._after_step(out_of_time):
                break
            if self.stop_watch is not None and self.stop_watch.requested():
                if self._saved_at != s.step:
                    self.save(dict(s.last_val))
                if self.rank == 0:
                    _say(f"[restoray] stop requested: checkpointed step {s.step} and stopping")
                self.stopped = True
                break

    def _after_step(self, out_of_time: bool) -> bool:
        """Log, validate and checkpoint on their cadence; True when training should stop."""
        s, tcfg = self.state, self.cfg.train
        last = s.step >= tcfg.total_steps
        if s.step % tcfg.log_every == 0 or last:
            last = _any_rank(last or out_of_time, self.device) or last
            self._log_window()
        do_val = s.step % tcfg.val_every == 0 or last
        if s.step % tcfg.checkpoint_every == 0 or last or do_val:
            val = self.validate() if do_val else {}
            if do_val:
                self._step_plateaus(val)
            if val:
                if self.logger:
                    self.logger.metrics(val, s.step)
                _say(f"[restoray] step {s.step} validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
            s.last_val.update(val)
            self.save(dict(s.last_val))
        return last

    def _step_plateaus(self, val: dict[str, float]) -> None:
        """Feed rank 0's validation metric to each ``plateau`` schedule, on every rank."""
        for role, sched in self.state.schedulers.items():
            if not isinstance(sched, PlateauScheduler):
                continue
            value = from_rank0(val.get(f"val/{sched.metric}"), self.device)
            if value is None:
                if self.rank == 0:
                    _say(f"[restoray] step {self.state.step}: no val/{sched.metric}; the {role} plateau is not counted")
                continue
            before = sched.get_last_lr()[0]
            if sched.step_metric(value) and sched.verbose and self.rank == 0:
                _say(f"[restoray] step {self.state.step}: reducing the learning rate of {role} "
                     f"from {before:.4e} to {sched.get_last_lr()[0]:.4e}")

    def _log_window(self) -> None:
        s, w = self.state, self.window
        elapsed = max(time.time() - w.t0, 1e-9)
        metrics = w.means()
        for role, opt in s.optimizers.items():
            metrics[f"lr/{role}"] = opt.param_groups[0]["lr"]
        metrics["data/samples_per_s"] = w.steps * self.global_batch / elapsed
        metrics["data/wait_fraction"] = w.wait / elapsed
        skipped = torch.as_tensor(w.skipped, dtype=torch.float32, device=self.device).reshape(1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(skipped)
        s.skipped += int(skipped.item())
        metrics["data/skipped"] = s.skipped
        if self.rank == 0:
            total = self.cfg.train.total_steps
            losses = " ".join(f"{k.removeprefix('loss/')} {v:.4g}" for k, v in metrics.items() if k.startswith("loss/"))
            _say(
                f"[restoray] step {s.step}/{total} ({100 * s.step / total:.0f}%) {losses} "
                f"{metrics['data/samples_per_s']:.1f} samples/s wait {100 * metrics['data/wait_fraction']:.0f}% "
                f"ETA {_fmt_eta((total - s.step) * elapsed / max(w.steps, 1))}"
            )
            if self.logger:
                self.logger.metrics(metrics, s.step)
        self.window = _Window()

    # ------------------------------------------------------------------ validate / save

    def eval_nets(self) -> dict[str, nn.Module]:
        """Every network in eval mode, with its EMA weights where it keeps an EMA."""
        out = {}
        for role, net in self.state.nets.items():
            net = unwrap(net)
            if role in self.state.emas:
                net = copy.deepcopy(net)
                net.load_state_dict(self.state.emas[role].state)
            out[role] = net.eval()
        return out

    def validate(self) -> dict[str, float]:
        if self.rank != 0:
            return {}
        nets, rows, picture = self.eval_nets(), [], None
        limit = self.cfg.data.max_val_samples
        for i, row in enumerate(self.val_rows()):
            if limit and i >= limit:
                break
            batch = to_batch(row, self.device)
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                pred = self.task.predict(nets, batch).float()
            rows.append(self.task.score(pred, batch))
            if picture is None:
                picture = self.task.preview(pred, batch)
        for net in self.state.nets.values():
            net.train()
        if self.logger and picture is not None and self.cfg.mlflow.log_images:
            self.logger.image(picture, f"val/preview_step{self.state.step:07d}.png")
        out = {f"val/{k}": v for k, v in mean_scores(rows).items()}
        expected = min(self.ctx.val_samples, limit) if limit else self.ctx.val_samples
        if len(rows) < expected:  # the stream left damaged samples out, naming each
            out["data/val_skipped"] = float(expected - len(rows))
            _say(f"[restoray] step {self.state.step}: validation scored {len(rows)} of {expected} samples; "
                 f"{expected - len(rows)} damaged were left out (named above)")
        return out

    def save(self, metrics: dict[str, float]) -> None:
        """Checkpoint and report (every rank takes part: the pool gather and ``report`` are collective)."""
        s = self.state
        self._saved_at = self.state.step
        pools = gather_states(self.pool, self.device) if self.pool is not None else None
        position = {"step": s.step, "samples_seen": s.samples_seen}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                payload = {
                    "format": checkpoint_io.RESTORAY_FORMAT, **position, "last_val": metrics,
                    "data_position": {"samples_seen": s.samples_seen, "seed": self.cfg.seed, "skipped": s.skipped},
                    "config": redact_config(self.cfg.model_dump(mode="json")),  # no secrets in files
                    "arch": {r: {"name": n["name"], "kwargs": {k: v for k, v in n.items() if k != "name"}}
                             for r, n in self.cfg.nets.items()},
                    "nets": {r: unwrap(n).state_dict() for r, n in s.nets.items()},
                    "ema": {r: e.state_dict() for r, e in s.emas.items()},
                    "optimizers": {r: o.state_dict() for r, o in s.optimizers.items()},
                    "schedulers": {r: sc.state_dict() for r, sc in s.schedulers.items()},
                    "pair_pool": pools,
                }
                model = {"task": self.cfg.task.name, "arch": payload["arch"]}  # resume checks it before Ray starts
                checkpoint_io.save_training_checkpoint(tmp, payload, {**position, **metrics, "model": model})
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            self.report({**position, **metrics}, checkpoint=checkpoint)


class StopWatch:
    """Non-blocking view of the driver's ``StopSignal`` (``pipelines/train_job.py``) for the loop.

    Only ``poll_rank`` asks the actor (at most every ``interval_s``, never waiting for the
    answer); :meth:`requested` is collective: every rank calls it after every step and all get
    the same answer, so DDP ranks stop after the same step.
    """

    def __init__(self, signal, rank: int, interval_s: float = 0.25, poll_rank: int = 0):
        self.signal = signal if rank == poll_rank else None
        self.interval_s = interval_s
        self.local = False
        self.pending = None
        self.last_poll = 0.0
        self.group = None
        if dist.is_available() and dist.is_initialized():
            # a CPU group: agreeing on a flag must not make the CPU wait for a GPU every step
            self.group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD

    def _poll(self) -> None:
        if self.signal is None or self.local:
            return
        if self.pending is not None:
            ready, _ = ray.wait([self.pending], timeout=0)
            if not ready:
                return
            try:
                self.local = bool(ray.get(self.pending))
            except ray.exceptions.RayError:
                self.signal = None  # the driver (its owner) is gone: nothing will ask us to stop
            self.pending = None
        now = time.monotonic()
        if self.signal is not None and not self.local and now - self.last_poll >= self.interval_s:
            self.pending, self.last_poll = self.signal.reason.remote(), now

    def requested(self) -> bool:
        self._poll()
        if self.group is None:
            return self.local
        flag = torch.tensor([1.0 if self.local else 0.0])
        dist.all_reduce(flag, group=self.group)
        return bool(flag.item() > 0)


class _Window:
    """Loss sums and data-wait time since the last log line.

    Losses are summed as detached tensors on their device and turned into numbers only at the
    log line: a ``float()`` per step would make the CPU wait for the GPU every iteration.
    """

    def __init__(self):
        self.t0, self.wait, self.steps, self.sums = time.time(), 0.0, 0, {}
        self.skipped = 0  # a tensor on the device once the stream reports skips

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        for k, v in logs.items():
            v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()

    def means(self) -> dict[str, float]:
        return {k: float(v) / max(self.steps, 1) for k, v in self.sums.items()}


def quiet_worker_console() -> None:
    """Keep two kinds of INFO line of Ray's in its log files, off the terminal the driver forwards
    worker output to: Ray Train's "Reporting training result ..." dict at every report (its
    module's logger is named after the file path, so the level filter Ray Train applies to
    ``ray.train.*`` per RunConfig's ``LoggingConfig`` misses it), and Ray Data's plan and
    "execution finished" lines at every validation (Ray Data gives its logger a console handler
    of its own at INFO)."""
    import logging

    try:
        from ray.train.v2._internal.execution import context as train_context

        train_context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):  # another Ray Train layout: its lines stay, nothing breaks
        pass
    import ray.data  # noqa: F401 - its import gives the ray.data logger its handlers
    from ray.util.debug import log_once

    # "Progress bars disabled. To enable, ..." once per process: restoray disables them on purpose
    log_once("ray_data_progress_manager_disabled")
    for handler in logging.getLogger("ray.data").handlers:
        if "File" not in type(handler).__name__:  # its file handler keeps everything
            handler.setLevel(logging.WARNING)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    quiet_worker_console()
    tc = ray.train.get_context()
    recipe = Recipe(config["cfg"], config["ctx"], tc.get_world_rank(), tc.get_world_size(),
                    ray.train.torch.get_device())
    recipe.setup(ray.train.get_checkpoint() or config["ctx"].resume_from)
    try:
        recipe.train()
    finally:
        if recipe.logger is not None:
            recipe.logger.close()

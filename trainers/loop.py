"""The only train loop: every model family, every Ray Train worker.

Run by ``ray.train.torch.TorchTrainer`` (DDP: gloo on CPU, NCCL on GPU). The
driver (``pipelines/train_job.py``) validates the config, builds the Ray Data
stream starting at the checkpoint's data position and passes ``cfg`` as a plain
dict plus two private keys: ``_stream_start`` (samples consumed before the first
row of the stream) and ``_mlflow`` (tracking URI and run id).

Resumption is exact: a checkpoint holds model, EMA, optimizer, scheduler, step,
``samples_seen`` and every rank's training-pair pool (``trainers/pair_pool.py``;
degradation noise is seeded per sample, so it needs no state). After a job-level resume the driver starts the stream at
``samples_seen``; after an in-``fit`` worker-group restart (``FailureConfig``)
the stream restarts at ``_stream_start`` and the loop skips forward to
``samples_seen`` itself, so neither replays nor skips data.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from trainers.archs import build_arch
from trainers.checkpoint_io import RESTORAY_FORMAT, load_strict
from trainers.device_degradation import DeviceDegradation
from trainers.ema import EMA
from trainers.optim import build_optimizer, build_scheduler
from trainers.pair_pool import PairPool, gather_states, restore as restore_pool
from trainers.tasks import TASKS
from trainers.tasks.sr import image_grid
from trainers.tracking import RunLogger

CHECKPOINT_FILE = "checkpoint.pt"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (what the stream ships: 4x less object-store traffic) -> float NCHW in [0,1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def _val_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Validation images differ in size, so Ray hands them over as an object array of
    per-image arrays; they are stacked here (batch size 1)."""
    if images.dtype == object:
        images = np.stack(list(images))
    return _to_float(torch.from_numpy(np.ascontiguousarray(images)).to(device))


def _restore(model, ema, checkpoint) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        state = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=True)
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    return state


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (keeps DDP ranks in lock-step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _say(message: str) -> None:
    """Print a progress line once. Ray Train patches ``print`` to tee into its logger
    when another library (MLflow) wraps stdout, which doubled every line."""
    print(message, file=sys.__stdout__, flush=True)


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    train_cfg, data_cfg = cfg["train"], cfg["data"]
    torch.manual_seed(cfg["seed"])

    model = build_arch(cfg["model"]["name"], **{k: v for k, v in cfg["model"].items() if k != "name"})
    ema = EMA(model, train_cfg["ema"]["decay"]) if train_cfg["ema"]["enabled"] else None
    state = _restore(model, ema, ray.train.get_checkpoint())
    if state is None and cfg.get("_init_weights") is not None:
        # Fine-tuning (``restoray retrain``): start from given generator weights,
        # shipped by the driver as an object ref so every node can read them.
        init = cfg["_init_weights"]
        load_strict(model, ray.get(init) if isinstance(init, ray.ObjectRef) else init)
        if ema is not None:
            ema = EMA(model, train_cfg["ema"]["decay"])
    model = ray.train.torch.prepare_model(model)
    if ema is not None:
        ema.state = {k: v.to(device) for k, v in ema.state.items()}
    optimizer = build_optimizer(model.parameters(), cfg["optim"])
    scheduler = build_scheduler(optimizer, cfg["schedule"], cfg["optim"]["lr"], train_cfg["total_steps"])
    step, samples_seen = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, samples_seen = state["step"], state["samples_seen"]
        if rank == 0:
            _say(f"[restoray] resumed at step {step} ({samples_seen} samples seen)")

    task = TASKS[cfg["task"]](cfg)
    # data.degradation.device == "gpu": the stream ships GT + sampled parameters and the
    # batch is degraded here, on this worker's device; pool_size > 0: Real-ESRGAN's pair pool.
    deg_cfg = data_cfg["degradation"]
    degrade = DeviceDegradation(data_cfg) if deg_cfg.get("device") == "gpu" else None
    pool = PairPool(deg_cfg["pool_size"], cfg["seed"], rank) if deg_cfg.get("pool_size") else None
    if pool is not None and state is not None and not restore_pool(pool, state.get("pair_pool"), rank, world, device):
        if rank == 0:
            _say("[restoray] the checkpoint has no pair pool for this many workers; the pool refills")
    use_amp = train_cfg["amp"] == "bf16" or (train_cfg["amp"] == "auto" and device.type == "cuda")
    mlcfg = cfg.get("_mlflow")
    logger = RunLogger(mlcfg["tracking_uri"], mlcfg["run_id"]) if (rank == 0 and mlcfg) else None
    batch_size, total = data_cfg["batch_size"], train_cfg["total_steps"]
    global_batch = batch_size * world

    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=batch_size, drop_last=True, device=device,
        prefetch_batches=data_cfg["prefetch_batches"],
    )
    batches = iter(batches)
    # In-fit restart: the stream restarted at _stream_start; skip what this
    # checkpoint already consumed (each rank skips its equal share).
    skip = (samples_seen - cfg.get("_stream_start", 0)) // global_batch
    for _ in range(max(skip, 0)):
        next(batches)

    def save_and_report(metrics: dict[str, float]) -> None:
        checkpoint = None
        pools = gather_states(pool, device) if pool is not None else None  # every rank takes part
        with tempfile.TemporaryDirectory() as tmp:
            if rank == 0:
                payload = {
                    "format": RESTORAY_FORMAT, "model": _unwrap(model).state_dict(),
                    "ema": ema.state_dict() if ema else None,
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "step": step, "samples_seen": samples_seen, "last_val": metrics,
                    "data_position": {"samples_seen": samples_seen, "seed": cfg["seed"]},
                    "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
                    "pair_pool": pools,
                }
                torch.save(payload, os.path.join(tmp, CHECKPOINT_FILE))
                with open(os.path.join(tmp, "meta.json"), "w") as f:
                    json.dump({"step": step, "samples_seen": samples_seen, **metrics}, f)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({"step": step, "samples_seen": samples_seen, **metrics}, checkpoint=checkpoint)

    def validate() -> dict[str, float]:
        if rank != 0:
            return {}
        net = _unwrap(model)
        eval_model = net
        if ema is not None:
            eval_model = build_arch(cfg["model"]["name"], **{k: v for k, v in cfg["model"].items() if k != "name"})
            eval_model.load_state_dict(ema.state)
            eval_model.to(device)
        eval_model.eval()
        scores: list[dict[str, float]] = []
        grid = None
        limit = data_cfg.get("max_val_samples")
        for i, row in enumerate(ray.train.get_dataset_shard("val").iter_batches(batch_size=1, batch_format="numpy")):
            if limit and i >= limit:
                break
            lq, gt = _val_tensor(row["lq"], device), _val_tensor(row["gt"], device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = task.predict(eval_model, lq).float()
            scores.append(task.score(pred[0], gt[0]))
            if grid is None:
                grid = image_grid(lq[0], pred[0], gt[0])
        net.train()
        out = {f"val/{k}": float(np.mean([s[k] for s in scores])) for k in scores[0]} if scores else {}
        if logger and grid is not None and cfg["mlflow"]["log_images"]:
            logger.image(grid, f"val/grid_step{step:07d}.png")
        return out

    model.train()
    t_start = time.time()
    window_t, window_wait, window_steps = time.time(), 0.0, 0
    loss_sum = {}
    # Every report carries the latest validation scores, so Tune schedulers (which
    # read one metric from each report) and checkpoint meta always have them.
    last_val: dict[str, float] = dict(state.get("last_val", {})) if state else {}
    while step < total:
        t0 = time.time()
        try:
            raw = next(batches)
        except StopIteration:
            _say(f"[restoray] rank {rank}: data stream ended at step {step}")
            break
        # device-side degradation and the pair pool count as data time (wait_fraction)
        batch = degrade(raw) if degrade is not None else {"lq": _to_float(raw["lq"]), "gt": _to_float(raw["gt"])}
        if pool is not None:
            batch = pool(batch, step)
        window_wait += time.time() - t0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, logs = task.train_step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(_unwrap(model))
        step += 1
        samples_seen += global_batch
        window_steps += 1
        for k, v in logs.items():
            loss_sum[k] = loss_sum.get(k, 0.0) + float(v)

        out_of_time = train_cfg["max_time_s"] is not None and time.time() - t_start > train_cfg["max_time_s"]
        last = step >= total
        if step % train_cfg["log_every"] == 0 or last:
            last = _any_rank(last or out_of_time, device) or last
            elapsed = time.time() - window_t
            metrics = {k: v / window_steps for k, v in loss_sum.items()}
            metrics["lr"] = optimizer.param_groups[0]["lr"]
            metrics["data/samples_per_s"] = window_steps * global_batch / max(elapsed, 1e-9)
            metrics["data/wait_fraction"] = window_wait / max(elapsed, 1e-9)
            if rank == 0:
                rate = window_steps / max(elapsed, 1e-9)
                lossv = next(iter(metrics.values()))
                _say(
                    f"[restoray] step {step}/{total} ({100 * step / total:.0f}%) loss {lossv:.4f} "
                    f"lr {metrics['lr']:.2e} {metrics['data/samples_per_s']:.1f} samples/s "
                    f"wait {100 * metrics['data/wait_fraction']:.0f}% ETA {_fmt_eta((total - step) / max(rate, 1e-9))}"
                )
                if logger:
                    logger.metrics(metrics, step)
            window_t, window_wait, window_steps, loss_sum = time.time(), 0.0, 0, {}
        do_val = step % train_cfg["val_every"] == 0 or last
        do_ckpt = step % train_cfg["checkpoint_every"] == 0 or last or do_val
        if do_ckpt:
            val = validate() if do_val else {}
            if logger and val:
                logger.metrics(val, step)
                _say(f"[restoray] step {step} validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
            last_val.update(val)
            save_and_report(dict(last_val))
        if last:
            break

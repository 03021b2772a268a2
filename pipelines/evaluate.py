"""``restoray eval``: score trained networks (and the family's baseline) on held-out shards.

Runs in the driver process: evaluation sets (Set5/Set14, a few held-out photos) are small, and a
plain loop keeps the numbers easy to audit. Samples, predictions and scores come from the
family's own sampler and task (``trainers/tasks``), so every family evaluates here as it
validates during training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from degradations.seeding import sample_rng
from pipelines.schema import ExperimentConfig
from pipelines.stream import iter_samples, val_members
from preprocessing.shards import read_manifest
from trainers.tasks import get_task
from trainers.tasks.common import to_batch


def evaluate(
    cfg: ExperimentConfig, nets: dict[str, torch.nn.Module] | None, shards: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Mean and per-sample scores of ``nets`` (``model_<metric>``) and of the family's baseline
    (``<baseline>_<metric>``, e.g. ``bicubic_psnr``), with the task's metric directions."""
    uri = shards or cfg.data.val
    manifest = read_manifest(uri)
    task = get_task(cfg.task.name)(cfg.task)
    sampler = get_task(cfg.task.name).sampler(cfg.task)
    baseline = getattr(task, "baseline", None)
    per_sample, damaged = [], []
    for i, raw in enumerate(iter_samples(uri, manifest, damaged)):
        if limit is not None and i >= limit:
            break
        members = val_members(raw)
        batch = to_batch({k: v[None] for k, v in sampler.val(members, sample_rng(cfg.seed, 0, members["__key__"])).items()})
        row: dict[str, Any] = {"key": members["__key__"]}
        if hasattr(task, "group"):  # e.g. inpainting's hole-area bucket, which the AOT-GAN tables report by
            row["group"] = task.group(batch)
        extra = getattr(task, "score_conventions", lambda pred, batch: {})
        if baseline is not None:
            name, pred = baseline(batch)
            row.update({f"{name}_{k}": v for k, v in (task.score(pred, batch) | extra(pred, batch)).items()})
        if nets is not None:
            with torch.no_grad():
                pred = task.predict(nets, batch).float()
            row.update({f"model_{k}": v for k, v in (task.score(pred, batch) | extra(pred, batch)).items()})
        per_sample.append(row)
    if not per_sample:
        raise ValueError(f"no samples to evaluate in {uri}")
    scored = [k for k in per_sample[0] if k not in ("key", "group")]
    means = {k: float(np.nanmean([r[k] for r in per_sample])) for k in scored}
    out = {"shards": uri, "num_samples": len(per_sample), "directions": dict(task.metrics), **means}
    if damaged:  # left out of the means, each named on stdout as it was read
        out["skipped_samples"] = len(damaged)
    if "group" in per_sample[0]:
        groups = sorted({r["group"] for r in per_sample})
        out["by_group"] = {g: {"num_samples": sum(r["group"] == g for r in per_sample),
                               **{k: float(np.nanmean([r[k] for r in per_sample if r["group"] == g])) for k in scored}}
                           for g in groups}
    return out | {"per_sample": per_sample}

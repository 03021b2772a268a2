"""``restoray eval``: score a checkpoint (and the bicubic baseline) on held-out shards.

Runs in the driver process: evaluation sets (Set5/Set14, a few held-out
photos) are small, and a plain loop keeps the numbers easy to audit. Scores
follow mmedit's conventions via ``trainers.tasks.sr.SRTask.score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from degradations.matlab_resize import imresize
from pipelines.config import ExperimentConfig
from pipelines.stream import iter_samples
from pipelines.transforms import to_float, val_pair
from preprocessing.shards import read_manifest
from trainers.tasks.sr import SRTask


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_float(img)).permute(2, 0, 1)


def evaluate(
    cfg: ExperimentConfig, model: torch.nn.Module | None, shards: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Mean and per-sample PSNR/SSIM of ``model`` and of MATLAB-bicubic upscaling."""
    uri = shards or cfg.data.val
    manifest = read_manifest(uri)
    data = cfg.model_dump(mode="json")["data"]
    task = SRTask(cfg.model_dump(mode="json"))
    per_sample = []
    for i, sample in enumerate(iter_samples(uri, manifest)):
        if limit is not None and i >= limit:
            break
        key = sample["__key__"]
        lq, gt = val_pair(sample["gt.png"], sample.get("lq.png"), key, cfg.seed, data)
        gt_t = _chw(gt)
        bic = np.clip(imresize(to_float(lq), scale=cfg.data.scale), 0, 1)[: gt.shape[0], : gt.shape[1]]
        row = {"key": key, **{f"bicubic_{k}": v for k, v in task.score(torch.from_numpy(bic).permute(2, 0, 1), gt_t).items()}}
        if model is not None:
            pred = task.predict(model, _chw(lq)[None])[0]
            row.update({f"model_{k}": v for k, v in task.score(pred, gt_t).items()})
        per_sample.append(row)
    if not per_sample:
        raise ValueError(f"no samples to evaluate in {uri}")
    means = {k: float(np.mean([r[k] for r in per_sample])) for k in per_sample[0] if k != "key"}
    return {"shards": uri, "num_samples": len(per_sample), **means, "per_sample": per_sample}

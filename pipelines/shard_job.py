"""``restoray shard``: raw images -> WebDataset shards, as a Ray Data job.

The driver lists the source and plans shards (``preprocessing.shards.plan_job``);
Ray Data runs one ``build_shard`` task per shard in parallel (with its progress
bar); the driver then commits ``manifest.json`` last. Finished shards of an
interrupted run are reused, corrupt inputs are quarantined, never fatal.
"""

from __future__ import annotations

import time
from typing import Any

import ray
import ray.data

from pipelines.config import ShardConfig
from preprocessing.shards import build_shard, commit_manifest, plan_job


def _build(row: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    result = build_shard(
        row["spec"], plan["source_uri"], plan["dest_uri"], plan["adapter"], plan["params"]
    )
    return {"result": result.to_dict()}


def run_shard(cfg: ShardConfig) -> dict[str, Any]:
    """Shard ``cfg.source`` into ``cfg.dest``; returns the committed manifest."""
    t0 = time.time()
    plan = plan_job(cfg.source, cfg.dest, cfg.adapter, cfg.params, cfg.items_per_shard)
    print(
        f"[restoray] {plan.num_items} source items -> {len(plan.shards)} shards "
        f"({cfg.adapter}, {cfg.items_per_shard} items/shard) into {plan.dest_uri}",
        flush=True,
    )
    ray.data.DataContext.get_current().enable_progress_bars = True
    plan_info = {
        "source_uri": plan.source_uri, "dest_uri": plan.dest_uri,
        "adapter": plan.adapter, "params": dict(plan.params),
    }
    ds = ray.data.from_items([{"spec": s.to_dict()} for s in plan.shards], override_num_blocks=len(plan.shards))
    ds = ds.map(_build, fn_kwargs={"plan": plan_info}, concurrency=cfg.concurrency)
    results = [row["result"] for row in ds.take_all()]
    results.sort(key=lambda r: r["name"])
    manifest = commit_manifest(
        plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
        source_uri=plan.source_uri, source_fingerprint=plan.fingerprint,
        expected_shards=len(plan.shards),
    )
    reused = sum(bool(r.get("skipped")) for r in results)
    print(
        f"[restoray] {manifest['num_samples']} samples in {len(manifest['shards'])} shards "
        f"({len(results) - reused} written, {reused} reused from an earlier run) "
        f"({manifest['num_bytes'] / 1e6:.1f} MB), quarantined {manifest['quarantined']} input(s), "
        f"{time.time() - t0:.1f}s -> {plan.dest_uri}/manifest.json",
        flush=True,
    )
    return manifest

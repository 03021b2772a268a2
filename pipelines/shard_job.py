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

from pipelines.cluster import init_ray
from pipelines.schema import ShardConfig
from preprocessing.shards import ManifestNotFound, ShardPlan, build_shard, commit_append, commit_manifest, plan_append, plan_job


def _build(row: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    result = build_shard(
        row["spec"], plan["source_uri"], plan["dest_uri"], plan["adapter"], plan["params"], limits=plan.get("limits")
    )
    return {"result": result.to_dict()}


def build_shards(plan: ShardPlan, concurrency: int | None = None,
                 limits: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One Ray Data task per planned shard; their results sorted by shard name.

    ``limits``: ``InputLimits`` fields (the shard config's ``limits:``); None for the defaults."""
    init_ray()
    ray.data.DataContext.get_current().enable_progress_bars = True
    plan_info = {
        "source_uri": plan.source_uri, "dest_uri": plan.dest_uri,
        "adapter": plan.adapter, "params": dict(plan.params), "limits": limits,
    }
    ds = ray.data.from_items([{"spec": s.to_dict()} for s in plan.shards], override_num_blocks=len(plan.shards))
    ds = ds.map(_build, fn_kwargs={"plan": plan_info}, concurrency=concurrency)
    results = [row["result"] for row in ds.take_all()]
    return sorted(results, key=lambda r: r["name"])


def append_new(source: str, dest: str, adapter: str, params: dict[str, Any], items_per_shard: int,
               concurrency: int | None = None) -> tuple[dict[str, Any], int]:
    """Shard only the items of ``source`` not yet in ``dest`` (a new manifest version).

    Returns (the manifest now in force, number of new items). With nothing new the
    manifest is left untouched.
    """
    try:
        append = plan_append(source, dest, adapter, params, items_per_shard)
    except ManifestNotFound:
        print(f"[restoray] no shards at {dest} yet: sharding all of {source}", flush=True)
        manifest = shard_all(source, dest, adapter, params, items_per_shard, concurrency)
        return manifest, len(manifest["item_ids"])
    if append.changed:
        print(f"[restoray] warning: {len(append.changed)} already-sharded item(s) changed at the source "
              f"(e.g. {append.changed[0]!r}); they keep their old shards - run `restoray shard` to rebuild",
              flush=True)
    if not append.plan.shards:
        print(f"[restoray] no new items under {append.plan.source_uri} "
              f"(manifest v{append.base.get('version', 1)} has {len(append.base['item_ids'])})", flush=True)
        return append.base, 0
    plan = append.plan
    print(f"[restoray] {plan.num_items} new source item(s) -> {len(plan.shards)} new shard(s) "
          f"appended to {plan.dest_uri} (manifest v{plan.version})", flush=True)
    manifest = commit_append(append, build_shards(plan, concurrency))
    print(f"[restoray] manifest v{manifest['version']}: {manifest['num_samples']} samples in "
          f"{len(manifest['shards'])} shards", flush=True)
    return manifest, plan.num_items


def run_shard(cfg: ShardConfig) -> dict[str, Any]:
    """Shard ``cfg.source`` into ``cfg.dest``; returns the committed manifest."""
    return shard_all(cfg.source, cfg.dest, cfg.adapter, cfg.params, cfg.items_per_shard, cfg.concurrency,
                     limits=cfg.limits.model_dump())


def shard_all(source: str, dest: str, adapter: str, params: dict[str, Any], items_per_shard: int,
              concurrency: int | None = None, limits: dict[str, int] | None = None) -> dict[str, Any]:
    """Plan, build (reusing finished shards) and commit the whole source."""
    t0 = time.time()
    plan = plan_job(source, dest, adapter, params, items_per_shard)
    print(
        f"[restoray] {plan.num_items} source items -> {len(plan.shards)} shards "
        f"({adapter}, {items_per_shard} items/shard) into {plan.dest_uri}",
        flush=True,
    )
    results = build_shards(plan, concurrency, limits)
    manifest = commit_manifest(
        plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
        source_uri=plan.source_uri, source_fingerprint=plan.fingerprint,
        expected_shards=len(plan.shards), version=plan.version,
    )
    reused = sum(bool(r.get("skipped")) for r in results)
    print(
        f"[restoray] {manifest['num_samples']} samples in {len(manifest['shards'])} shards "
        f"({len(results) - reused} written, {reused} reused from an earlier run) "
        f"({manifest['num_bytes'] / 1e6:.1f} MB), quarantined {manifest['quarantined']} input(s), "
        f"{time.time() - t0:.1f}s -> {plan.dest_uri}/manifest.json (v{manifest['version']})",
        flush=True,
    )
    return manifest

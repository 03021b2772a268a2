"""Shards for test fixtures, built serially in the test process.

Users shard with the Ray Data job (``restoray shard``, ``pipelines/shard_job.py``); tests that
only need shards to exist build them here from the same preprocessing steps (plan, build each
shard, commit the manifest), without the cost of a Ray job.
"""

from __future__ import annotations

from typing import Any, Mapping

from preprocessing.shards import build_shard, commit_manifest, plan_job


def shard_dataset(source_uri: str, dest_uri: str, adapter: str, params: Mapping[str, Any] | None = None,
                  items_per_shard: int = 64, *, verify: bool = True, limits: Mapping[str, int] | None = None) -> dict:
    """The whole shard job, serially; returns the manifest. ``limits``: the shard config's ``limits:``."""
    plan = plan_job(source_uri, dest_uri, adapter, params, items_per_shard)
    results = [build_shard(s, plan.source_uri, plan.dest_uri, plan.adapter, plan.params, verify=verify, limits=limits)
               for s in plan.shards]
    return commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params,
                           source_uri=plan.source_uri, source_fingerprint=plan.fingerprint,
                           expected_shards=len(plan.shards), version=plan.version)

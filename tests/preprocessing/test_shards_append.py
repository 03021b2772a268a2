"""Incremental sharding (``restoray retrain`` step a): only new source items get new shards,
and the next manifest version references the old shards unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from shard_helpers import shard_dataset
from preprocessing.shards import (
    ManifestNotFound, build_shard, commit_append, plan_append, read_manifest,
)
from preprocessing.storage import StorageError

PARAMS = {"crop": False}


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))


def _append(src: Path, dest: Path, **kw):
    plan = plan_append(str(src), str(dest), "image_folder", kw.get("params", PARAMS), items_per_shard=2)
    results = [build_shard(s, plan.plan.source_uri, plan.plan.dest_uri, plan.plan.adapter, plan.plan.params)
               for s in plan.plan.shards]
    return plan, results


def test_new_items_become_new_shards_and_a_new_manifest_version(tmp_path):
    src, dest = tmp_path / "raw", tmp_path / "shards"
    for i in range(3):
        _photo(src / f"a{i}.png", i)
    v1 = shard_dataset(str(src), str(dest), "image_folder", PARAMS, items_per_shard=2)
    assert v1["version"] == 1 and v1["item_ids"] == ["a0", "a1", "a2"]
    old_tars = {s["name"]: (dest / s["name"]).stat().st_mtime_ns for s in v1["shards"]}

    plan, results = _append(src, dest)
    assert plan.plan.shards == [] and plan.changed == []  # nothing new: nothing to do

    for i in range(3):
        _photo(src / f"b{i}.png", 10 + i)
    plan, results = _append(src, dest)
    assert [s.name for s in plan.plan.shards] == ["shard-000002.tar", "shard-000003.tar"]
    assert [i.item_id for s in plan.plan.shards for i in s.items] == ["b0", "b1", "b2"]
    v2 = commit_append(plan, results)

    assert v2["version"] == 2 and v2["digest"] != v1["digest"]
    assert [s["name"] for s in v2["shards"]] == [f"shard-00000{i}.tar" for i in range(4)]
    assert v2["shards"][:2] == v1["shards"]  # the old shards, referenced as they were
    assert {n: (dest / n).stat().st_mtime_ns for n in old_tars} == old_tars  # ... and not rewritten
    assert v2["num_samples"] == 6 and v2["item_ids"] == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert read_manifest(str(dest)) == v2
    # every version stays readable
    assert json.loads((dest / "_versions" / "manifest-v000001.json").read_text())["digest"] == v1["digest"]
    assert json.loads((dest / "_versions" / "manifest-v000002.json").read_text()) == v2


def test_changed_sources_are_reported_not_resharded(tmp_path):
    src, dest = tmp_path / "raw", tmp_path / "shards"
    for i in range(2):
        _photo(src / f"a{i}.png", i)
    shard_dataset(str(src), str(dest), "image_folder", PARAMS, items_per_shard=2)
    time.sleep(0.01)
    _photo(src / "a1.png", 99)
    os.utime(src / "a1.png", (time.time() + 5, time.time() + 5))
    plan, _ = _append(src, dest)
    assert plan.changed == ["a1"] and plan.plan.shards == []


def test_append_refuses_other_adapter_params_and_missing_inputs(tmp_path):
    src, dest = tmp_path / "raw", tmp_path / "shards"
    _photo(src / "a0.png", 0)
    with pytest.raises(ManifestNotFound):
        plan_append(str(src), str(dest), "image_folder", PARAMS)
    shard_dataset(str(src), str(dest), "image_folder", PARAMS, items_per_shard=2)
    with pytest.raises(ValueError, match="new shards must be cut the same way"):
        plan_append(str(src), str(dest), "image_folder", {"crop_size": 16, "step": 8})
    with pytest.raises(StorageError, match="does not exist"):
        plan_append(str(tmp_path / "vanished"), str(dest), "image_folder", PARAMS)

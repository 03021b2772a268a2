"""The training stream: deterministic order, exact start positions, per-sample seeding."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.stream import epoch_order, iter_samples, plan_reads, read_shard, train_dataset
from degradations.seeding import sample_rng
from trainers.samplers.sr import SRDataConfig, SRSampler
from preprocessing.shards import read_manifest

SHARDS = [("s3://b/shard-000000.tar", 5), ("s3://b/shard-000001.tar", 3), ("s3://b/shard-000002.tar", 4)]


def _flatten(tasks):
    """(url, epoch, index-in-epoch-order) for every planned sample."""
    return [(t["url"], t["epoch"], i) for t in tasks for i in range(t["skip"], t["skip"] + t["take"])]


def test_plan_covers_each_epoch_exactly_once():
    tasks = plan_reads(SHARDS, seed=1, start=0, needed=24)
    flat = _flatten(tasks)
    assert len(flat) == 24
    for epoch in (0, 1):
        seen = [(u, i) for u, e, i in flat if e == epoch]
        assert sorted(seen) == sorted((u, i) for u, n in SHARDS for i in range(n))
    # shard order within an epoch follows the seeded permutation
    order0 = [SHARDS[i][0] for i in epoch_order(3, 1, 0)]
    assert [t["url"] for t in tasks if t["epoch"] == 0] == order0


@pytest.mark.parametrize("start", [0, 1, 4, 5, 7, 12, 13, 30])
def test_plan_from_any_position_is_the_suffix_of_the_full_plan(start):
    full = _flatten(plan_reads(SHARDS, seed=3, start=0, needed=40))
    resumed = _flatten(plan_reads(SHARDS, seed=3, start=start, needed=40 - start))
    assert resumed == full[start:]


def test_epoch_orders_differ_and_depend_on_seed():
    orders = {tuple(epoch_order(20, 0, e)) for e in range(5)}
    assert len(orders) == 5
    assert tuple(epoch_order(20, 0, 0)) != tuple(epoch_order(20, 1, 0))


def test_plan_rejects_empty_dataset():
    with pytest.raises(ValueError, match="no samples"):
        plan_reads([("x", 0)], seed=0, start=0, needed=1)


def test_read_shard_is_a_seeded_permutation_and_skips_exactly(tiny_shards):
    manifest = read_manifest(tiny_shards["train"])
    url = tiny_shards["train"] + "/" + manifest["shards"][0]["name"]
    n = manifest["shards"][0]["num_samples"]
    task = {"url": url, "epoch": 0, "seed": 5, "skip": 0, "take": n}
    keys = [r["key"] for r in read_shard(task)]
    assert sorted(keys) == sorted(manifest_keys(tiny_shards["train"], manifest["shards"][0]["name"]))
    assert keys == [r["key"] for r in read_shard(task)]
    assert keys != [r["key"] for r in read_shard(dict(task, epoch=1))]
    assert [r["key"] for r in read_shard(dict(task, skip=3, take=2))] == keys[3:5]


def manifest_keys(uri, shard_name):
    return [s["__key__"] for s in iter_samples(uri, {"shards": [{"name": shard_name, "num_samples": 1}]})]


def test_sr_sample_depends_only_on_seed_epoch_key(tiny_shards):
    sample = next(iter_samples(tiny_shards["train"], read_manifest(tiny_shards["train"])))
    sampler = SRSampler(SRDataConfig(scale=4, gt_size=32, degradation={"preset": "bicubic"}))
    key = sample["__key__"]
    a = sampler.train(sample, sample_rng(1, 0, key))
    b = sampler.train(sample, sample_rng(1, 0, key))
    c = sampler.train(sample, sample_rng(1, 1, key))
    assert a["lq"].shape == (8, 8, 3) and a["gt"].shape == (32, 32, 3) and a["lq"].dtype == np.uint8
    assert set(a) == {"lq", "gt"} and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["gt"], c["gt"])


def test_ray_stream_resumes_at_the_exact_sample(ray_session, tiny_shards):
    """Rows of a stream started at position k equal rows k.. of the stream started at 0."""
    from pipelines.stream import configure_data_context

    from conftest import tiny_experiment

    from pipelines.schema import ExperimentConfig

    configure_data_context(progress_bars=False)
    manifest = read_manifest(tiny_shards["train"])
    cfg = ExperimentConfig.model_validate(tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], "runs", seed=11,
        data={"transform_batch_size": 8, "cpus_per_actor": 0.5}))
    total = manifest["num_samples"] + 10  # crosses an epoch boundary

    def rows(start):
        ds = train_dataset(tiny_shards["train"], manifest, cfg, start=start, needed=total - start)
        return [(r["gt"].tobytes(), r["lq"].tobytes()) for r in ds.iter_rows()]

    full = rows(0)
    assert len(full) == total
    assert len(set(full)) > total // 2  # distinct patches, not one sample repeated
    assert rows(13) == full[13:]


def test_split_stream_gives_each_worker_its_batches_again_after_a_resume(ray_session, tiny_shards):
    """With ``data.exact_split``, the stream split over workers as Ray Train splits it (``streaming_split(W, equal=True)``,
    each worker pulling at its own pace): worker ``r`` trains on global batches ``r, r + W, ...``,
    and a stream planned from ``samples_seen`` after ``s`` steps (a run resumed in a new process)
    gives every worker exactly the batches it would have had from step ``s`` on. The batch (3)
    divides neither the shard sizes nor the transform batch (8)."""
    import threading

    from conftest import tiny_experiment

    from pipelines.schema import ExperimentConfig
    from pipelines.stream import configure_data_context
    from trainers.control import KEY_COLUMN, decode_keys

    configure_data_context(progress_bars=False)
    batch, world = 3, 2
    manifest = read_manifest(tiny_shards["train"])
    cfg = ExperimentConfig.model_validate(tiny_experiment(
        tiny_shards["train"], tiny_shards["val"], "runs", seed=5,
        data={"batch_size": batch, "transform_batch_size": 8, "cpus_per_actor": 0.5, "exact_split": True}))

    def keys(start: int, steps: int, split: bool) -> list[list[str]]:
        ds = train_dataset(tiny_shards["train"], manifest, cfg, start=start, needed=steps * batch * world,
                           emit_keys=True)
        if not split:
            return [decode_keys(np.stack([r[KEY_COLUMN] for r in ds.iter_rows()]))]
        shares: list[list[str]] = [[] for _ in range(world)]

        def consume(rank, it):
            for b in it.iter_batches(batch_size=batch, drop_last=True, batch_format="numpy"):
                shares[rank].extend(decode_keys(b[KEY_COLUMN]))

        threads = [threading.Thread(target=consume, args=(r, it))
                   for r, it in enumerate(ds.streaming_split(world, equal=True))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return shares

    steps, stop = 9, 4
    (order,) = keys(0, steps, split=False)
    full = keys(0, steps, split=True)
    for rank in range(world):
        assert len(full[rank]) == steps * batch
        for step in range(steps):
            first = (step * world + rank) * batch
            assert full[rank][step * batch:(step + 1) * batch] == order[first:first + batch], (rank, step)
    resumed = keys(stop * batch * world, steps - stop, split=True)
    assert [share for share in resumed] == [share[stop * batch:] for share in full]


def test_val_members_drops_members_a_sample_lacks():
    """read_webdataset fills a member only some samples have (matting's bg.png) with None or NaN."""
    from pipelines.stream import val_members

    row = {"__key__": "k", "__url__": "u", "merged.png": b"m", "bg.png": float("nan"), "fg.png": None, "json": b""}
    assert val_members(row) == {"merged.png": b"m", "__key__": "k"}

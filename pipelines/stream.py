"""The Ray Data stream that feeds Ray Train: shards -> decode -> crop/flip -> degrade -> batches.

Order and resumption. The stream for a run is one finite, deterministic
sequence covering every epoch still to train: epoch ``e`` visits the shards in
a permutation drawn from (seed, e), and each shard's samples in a permutation
drawn from (seed, e, shard) -- a shard holds the sub-images of a few photos,
so this mixes photos within a batch while reading shards sequentially. Each
row carries
its epoch, and every random number of a sample comes from (seed, epoch, key),
so a sample's pixels never depend on the actor that made them. A checkpoint
records ``samples_seen``; a resumed run plans the stream from that position,
dropping whole consumed shards and the consumed prefix of the current one,
instead of replaying or skipping data (mmagic#959).

Why not ``read_webdataset`` for training: it cannot tag rows with the epoch nor
start inside a shard. Shards are instead listed with ``from_items`` and
expanded by a read task with the ``webdataset`` library's own tar iterator,
which keeps bytes undecoded (decoding happens in the actor pool, as with
``read_webdataset(decoder=None)``). Validation, which has no epochs, reads whole shards in
order the same way. Every member is checked (``preprocessing.tar_safety``): a link, a device
or an escaping name stops the read with the shard and member named.
"""

from __future__ import annotations

import io
from typing import Any, Iterator

import numpy as np
import ray
import ray.data
from webdataset.tariterators import group_by_keys

from degradations.seeding import epoch_rng, sample_rng
from pipelines.fs import join, resolve
from preprocessing.tar_safety import safe_tar_files
from trainers.tasks import get_task


def shard_table(uri: str, manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """(url, num_samples) for every non-empty shard of a manifest."""
    return [(join(uri, s["name"]), int(s["num_samples"])) for s in manifest["shards"] if s["num_samples"]]


def epoch_order(num_shards: int, seed: int, epoch: int) -> np.ndarray:
    return epoch_rng(seed, epoch).permutation(num_shards)


def plan_reads(
    shards: list[tuple[str, int]], seed: int, start: int, needed: int
) -> list[dict[str, Any]]:
    """Read tasks ``{url, epoch, skip, take}`` covering samples ``[start, start + needed)``.

    ``start`` counts samples from the beginning of the run across epochs.
    """
    epoch_size = sum(n for _, n in shards)
    if epoch_size == 0:
        raise ValueError("the training shards hold no samples")
    epoch, offset = divmod(start, epoch_size)
    tasks: list[dict[str, Any]] = []
    remaining = needed
    while remaining > 0:
        for idx in epoch_order(len(shards), seed, epoch):
            url, n = shards[idx]
            if offset >= n:
                offset -= n
                continue
            take = min(n - offset, remaining)
            tasks.append(
                {"url": url, "epoch": int(epoch), "seed": seed, "skip": int(offset), "take": int(take)}
            )
            remaining -= take
            offset = 0
            if remaining <= 0:
                break
        epoch += 1
    return tasks


def _tar_samples(url: str) -> Iterator[dict[str, Any]]:
    """Samples of one tar, grouped by key with the ``webdataset`` library's ``group_by_keys``.

    Members are read by ``preprocessing.tar_safety.safe_tar_files``, not webdataset's
    ``tar_file_iterator``: that one silently skips links and devices and passes ``../`` or
    absolute names on, which ends as a bare ``KeyError: 'gt.png'``; here such a member stops
    the read with the shard and member named."""
    fs, path = resolve(url)
    # One read of the whole object: a shard is sized to fit a read task's memory, and pyarrow's
    # S3 stream turns each of tarfile's small reads into its own ranged GET (529 requests for a
    # 48-sample shard, each paying the store's first-byte latency; `restoray bench ingest`).
    with fs.open_input_file(path) as f:
        data = f.read()
    files = (dict(member, __url__=url) for member in safe_tar_files(io.BytesIO(data), url))
    yield from group_by_keys(files)


def in_shard_order(num_samples: int, seed: int, epoch: int, url: str) -> np.ndarray:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return sample_rng(seed, epoch, name).permutation(num_samples)


def read_shard(task: dict[str, Any], task_cfg: Any = None) -> Iterator[dict[str, Any]]:
    """Raw (undecoded) samples ``[skip, skip + take)`` of one shard's epoch order.

    The shard is read whole (shards are sized to fit a read task's memory) and permuted with
    (seed, epoch, shard name). Every member of a sample travels, as two list columns (member
    names and their bytes), so a family's sampler sees all of them whatever the dataset holds.
    A task with ``entry`` (see :func:`read_needed`) reads only what each sample uses instead.
    """
    if "entry" in task:
        yield from read_needed(task, task_cfg)
        return
    samples = list(_tar_samples(task["url"]))
    order = in_shard_order(len(samples), task["seed"], task["epoch"], task["url"])
    for i in order[task["skip"] : task["skip"] + task["take"]]:
        members = {k: v for k, v in samples[i].items() if not k.startswith("__")}
        yield {"key": samples[i]["__key__"], "epoch": task["epoch"],
               "names": list(members), "blobs": list(members.values())}


def read_needed(task: dict[str, Any], task_cfg: Any) -> Iterator[dict[str, Any]]:
    """As :func:`read_shard`, for a family whose sampler says which members a training sample
    uses (``train_members``: a video clip's window of 15 frames out of 100): the shard's member
    table (its part record), each sample's ``json``, then only those members, by ranged reads
    -- not 200 MB of REDS clip per sample. Same order, same rows, less traffic."""
    from preprocessing.shard_index import member_table, read_members
    from preprocessing.storage import open_storage

    storage = open_storage(task["root"])
    entry = task["entry"]
    table = member_table(storage, entry)
    sampler = get_task(task_cfg.name).sampler(task_cfg)
    order = in_shard_order(len(table.samples), task["seed"], task["epoch"], task["url"])
    for i in order[task["skip"] : task["skip"] + task["take"]]:
        key, members = table.samples[i]
        head = read_members(storage, entry["name"], members, ["json"]) if "json" in members else {}
        listing = {name: b"" for name in members} | head | {"__key__": key}
        wanted = sampler.train_members(listing, sample_rng(task["seed"], task["epoch"], key))
        # a member the sample lacks stays absent: the sampler's own check names it
        got = read_members(storage, entry["name"], members, [w for w in wanted if w in members])
        yield {"key": key, "epoch": task["epoch"], "names": list(got), "blobs": list(got.values())}


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One column per batch-schema key (only numeric arrays leave the actors: Ray Train makes
    every column a tensor)."""
    keys = list(samples[0])
    for s in samples[1:]:
        if list(s) != keys:
            raise ValueError(f"samples of one batch have different keys: {keys} vs {list(s)}")
    return {k: np.stack([s[k] for s in samples]) for k in keys}


class TrainTransform:
    """Actor: the family's sampler over a batch of raw samples (decode, crop, augment, degrade).

    Each sample's generator comes from (run seed, epoch, sample key), so its result does not
    depend on the actor that makes it.
    """

    def __init__(self, task_cfg: Any, seed: int):
        self.sampler = get_task(task_cfg.name).sampler(task_cfg)
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for key, epoch, names, blobs in zip(batch["key"], batch["epoch"], batch["names"], batch["blobs"]):
            members = {**dict(zip(names, blobs)), "__key__": str(key)}
            out.append(self.sampler.train(members, sample_rng(self.seed, int(epoch), str(key))))
        return _stack(out)


def configure_data_context(progress_bars: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    # Deterministic order is what makes `samples_seen` a position in the stream.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress_bars


def train_dataset(
    uri: str, manifest: dict[str, Any], cfg: Any, start: int, needed: int
) -> ray.data.Dataset:
    """The training stream of experiment ``cfg`` from sample ``start`` on, ``needed`` samples long."""
    data = cfg.data
    tasks = plan_reads(shard_table(uri, manifest), cfg.seed, start, needed)
    if hasattr(get_task(cfg.task.name).sampler(cfg.task), "train_members"):
        entries = {join(uri, s["name"]): {k: s[k] for k in ("name", "sha256", "bytes", "num_samples")}
                   for s in manifest["shards"]}
        tasks = [t | {"root": uri, "entry": entries[t["url"]]} for t in tasks]
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    # Reading is I/O-bound: a fractional CPU lets it run beside the transform
    # actors and the train workers on small machines instead of deadlocking.
    ds = ds.flat_map(read_shard, fn_kwargs={"task_cfg": cfg.task}, num_cpus=0.25)
    return ds.map_batches(
        TrainTransform,
        fn_constructor_kwargs={"task_cfg": cfg.task, "seed": cfg.seed},
        compute=ray.data.ActorPoolStrategy(size=data.transform_actors),
        num_cpus=data.cpus_per_actor,
        batch_size=data.transform_batch_size,
        batch_format="numpy",
    )


def val_members(row: dict[str, Any]) -> dict[str, Any]:
    """A webdataset row's members (``gt.png`` ...) plus ``__key__``; absent members dropped.

    A member only some samples have (a matting test composite's ``bg.png``) is a column the
    others fill with None or NaN: anything that is not non-empty bytes is absent.
    """
    out = {k: v for k, v in row.items() if not k.startswith("__") and isinstance(v, (bytes, bytearray)) and len(v)}
    out["__key__"] = str(row["__key__"])
    return out


def _val_rows(batch: dict[str, np.ndarray], task_cfg: Any, seed: int) -> dict[str, np.ndarray]:
    sampler = get_task(task_cfg.name).sampler(task_cfg)
    rows = []
    for key, names, blobs in zip(batch["__key__"], batch["names"], batch["blobs"]):
        members = val_members({"__key__": key, **dict(zip(names, blobs))})
        rows.append(sampler.val(members, sample_rng(seed, 0, str(key))))
    return {"key": batch["__key__"], **_stack(rows)}


def _val_shard(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Raw samples of one validation shard, in tar order (members as name/bytes list columns)."""
    for sample in _tar_samples(row["url"]):
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        yield {"__key__": sample["__key__"], "names": list(members), "blobs": list(members.values())}


def val_dataset(uri: str, manifest: dict[str, Any], cfg: Any) -> ray.data.Dataset:
    """Full-size validation samples (one per row; sizes may differ).

    Shards are read by :func:`_tar_samples` (as for training), not ``read_webdataset``, whose
    reader silently skips links and passes escaping member names on."""
    urls = [{"url": url} for url, _ in shard_table(uri, manifest)]
    # Fractional CPUs: validation runs while the train workers and the training
    # stream hold their resources; whole-CPU tasks would wait forever on a small node.
    ds = ray.data.from_items(urls, override_num_blocks=len(urls)).flat_map(_val_shard, num_cpus=0.25)
    return ds.map_batches(
        _val_rows, fn_kwargs={"task_cfg": cfg.task, "seed": cfg.seed}, batch_size=1, batch_format="numpy",
        num_cpus=0.25,
    )


def iter_samples(uri: str, manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every raw sample of a shard folder in manifest order, without Ray (evaluation, tests)."""
    for url, _ in shard_table(uri, manifest):
        yield from _tar_samples(url)

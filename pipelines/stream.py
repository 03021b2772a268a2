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
instead of replaying or skipping data (mmagic#959). With ``data.exact_split`` the
stream reaches Ray Train cut into blocks of one worker batch, which its split deals
to the workers in turn (see :func:`transform_batch`), so that position is also each
worker's position.

Damaged shards. A read task checks what it reads (``preprocessing/integrity.py``: size
against the manifest, tar structure, image CRCs) and skips a damaged or missing sample: its
place in the order is taken by the next whole sample of the same shard order, so positions in
the stream stay positions in the plan and a resumed run skips exactly the same samples. Each
skip prints one line naming the shard and the sample and is counted in the row's ``skipped``
column (the loop logs the sum as ``data/skipped``); a shard with more than
``data.max_skipped_fraction`` of its samples damaged stops the run with one line naming it.
A sample that passes the checks but still fails to decode in the sampler is skipped the same
way, replaced by a neighbour of its transform batch (exact across resumes only when the batch
boundaries are; they are not when a resume starts inside a batch). Families that read only some
members of a sample (:func:`read_needed`: a clip's window) get the same checks on what they read.
Validation and evaluation leave a damaged sample out, one line naming it; the loop logs how
many validation samples were missing as ``data/val_skipped``.

Why not ``read_webdataset`` for training: it cannot tag rows with the epoch nor
start inside a shard. Shards are instead listed with ``from_items`` and
expanded by a read task that groups members into samples by WebDataset's naming rule
(``preprocessing.integrity.read_tar``) and keeps bytes undecoded (decoding happens in the
actor pool, as with ``read_webdataset(decoder=None)``). Validation, which has no epochs, reads whole shards in
order the same way. Every member is checked (``preprocessing.tar_safety``): a link, a device
or an escaping name stops the read with the shard and member named.
"""

from __future__ import annotations

import io
from typing import Any, Iterator

import numpy as np
import ray
import ray.data

from degradations.seeding import epoch_rng, sample_rng
from pipelines.fs import join, read_object
from preprocessing.integrity import read_tar, sample_problem
from trainers.control import KEY_COLUMN, encode_keys
from trainers.tasks import get_task


# Reading a shard and re-cutting blocks are I/O and copies: a fractional CPU lets them run beside
# the transform actors and the train workers on small machines instead of deadlocking.
LIGHT_TASK_CPUS = 0.25


class CorruptShardError(ValueError):
    """Too much of a shard is unreadable to train on (one line naming the shard)."""


def _first_line(exc: BaseException) -> str:
    """What a skip line says of an exception: its first line, or its type when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def _intact_samples(url: str, num_samples: int | None = None, what: str = "validation",
                    damaged: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The whole samples of one shard in tar order, as ``{"__key__", "__url__", member: bytes}``.

    Validation and evaluation read through here: a damaged sample (a member that fails the
    checks of ``preprocessing.integrity``; every sample after the point where a cut tar breaks
    off, counted against the manifest's ``num_samples``) is left out with one line naming shard
    and sample, and its reason appended to ``damaged``. The scores are then a mean over fewer
    samples, which the caller reports (``data/val_skipped``, eval's ``skipped_samples``).
    Members are checked by ``preprocessing.tar_safety`` (via ``read_tar``): ``../`` or absolute
    names and links stop the read with shard and member named, as tampering, not damage.
    """
    # One read of the whole object (with the storage retries): a shard is sized to fit a read
    # task's memory, and pyarrow's S3 stream turned each of tarfile's small reads into its own
    # ranged GET (529 requests for a 48-sample shard; `restoray bench ingest`).
    data = read_object(url)
    contents = read_tar(data, url)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for key, members in contents.samples:
        problem = sample_problem(members)
        if problem:
            print(f"[restoray] {what}: skipped sample {key!r} of shard {name}: {problem}", flush=True)
            if damaged is not None:
                damaged.append(f"{name}: {key}: {problem}")
            continue
        yield {"__key__": key, "__url__": url, **members}
    lost = max(int(num_samples or 0) - len(contents.samples), 0)
    if contents.cut or lost:
        why = contents.cut or f"its {len(data)} bytes hold {len(contents.samples)} whole samples, its manifest says {num_samples}"
        print(f"[restoray] {what}: skipped {lost} sample(s) of shard {name}: {why}", flush=True)
        if damaged is not None:
            damaged += [f"{name}: sample #{len(contents.samples) + i} of the tar: {why}" for i in range(lost)]


def in_shard_order(num_samples: int, seed: int, epoch: int, url: str) -> np.ndarray:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return sample_rng(seed, epoch, name).permutation(num_samples)


def shard_samples(task: dict[str, Any]) -> tuple[list[tuple[str, dict[str, bytes]] | None], dict[int, str]]:
    """A shard's samples by tar index (None where one is missing or damaged) and, by index, why.

    The list is ``task["num_samples"]`` long (the manifest's count; the tar's own count for
    tasks without it), so a damaged shard keeps the positions of its intact samples.
    """
    data = read_object(task["url"])
    expected = task.get("bytes")
    contents = read_tar(data, task["url"])
    n = int(task.get("num_samples") or len(contents.samples))
    found: list[tuple[str, dict[str, bytes]] | None] = list(contents.samples[:n])
    reasons = []
    short = expected is not None and len(data) != int(expected)
    if short:
        reasons.append(f"the shard has {len(data)} bytes, its manifest says {expected}")
    if contents.cut:
        reasons.append(contents.cut)
    elif short and found and len(found) < n:
        found.pop()  # cut at a member boundary: the last sample may lack members
    why = "; ".join(reasons) or "the shard holds fewer samples than its manifest"
    problems = {i: f"sample #{i} of the tar is missing ({why})" for i in range(len(found), n)}
    found += [None] * (n - len(found))
    for i, sample in enumerate(found):
        if sample is not None and (problem := sample_problem(sample[1])):
            found[i] = None
            problems[i] = f"sample {sample[0]!r}: {problem}"
    return found, problems


def read_shard(task: dict[str, Any], task_cfg: Any = None, max_skipped: float = 1.0) -> Iterator[dict[str, Any]]:
    """Raw (undecoded) samples ``[skip, skip + take)`` of one shard's epoch order.

    The shard is read whole (shards are sized to fit a read task's memory) and permuted with
    (seed, epoch, shard name). Every member of a sample travels, as two list columns (member
    names and their bytes), so a family's sampler sees all of them whatever the dataset holds.
    A damaged or missing sample is replaced by the next whole one of the order (``skipped`` = 1
    on that row; one line naming shard and sample); more than ``max_skipped`` of the shard
    damaged raises :class:`CorruptShardError`. A task with ``entry`` (see :func:`read_needed`)
    reads only what each sample uses instead.
    """
    if "entry" in task:
        yield from read_needed(task, task_cfg, max_skipped)
        return
    samples, problems = shard_samples(task)
    name = task["url"].rstrip("/").rsplit("/", 1)[-1]
    if problems and (len(problems) > max_skipped * len(samples) or len(problems) == len(samples)):
        first = problems[min(problems)]
        raise CorruptShardError(
            f"shard {task['url']}: {len(problems)} of {len(samples)} samples unreadable, more than "
            f"data.max_skipped_fraction={max_skipped:g} ({first}); rebuild it with `restoray shard`")
    order = in_shard_order(len(samples), task["seed"], task["epoch"], task["url"])
    for j in range(task["skip"], task["skip"] + task["take"]):
        i = order[j]
        skipped = int(samples[i] is None)
        if skipped:
            k = next(k for k in range(1, len(order)) if samples[order[(j + k) % len(order)]] is not None)
            stand_in = order[(j + k) % len(order)]
            print(f"[restoray] skipped a sample of shard {name}: {problems[i]} "
                  f"(epoch {task['epoch']}; its place goes to {samples[stand_in][0]!r})", flush=True)
            i = stand_in
        key, members = samples[i]
        yield {"key": key, "epoch": task["epoch"], "shard": name, "skipped": skipped,
               "names": list(members), "blobs": list(members.values())}


def read_needed(task: dict[str, Any], task_cfg: Any, max_skipped: float = 1.0) -> Iterator[dict[str, Any]]:
    """As :func:`read_shard`, for a family whose sampler says which members a training sample
    uses (``train_members``: a video clip's window of 15 frames out of 100): the shard's member
    table (its part record), each sample's ``json``, then only those members, by ranged reads
    -- not 200 MB of REDS clip per sample. Same order, same rows, less traffic.

    Damage is handled as in :func:`read_shard`, on what is read: a sample whose members cannot
    be read (a shard cut short) or fail the checks of ``preprocessing.integrity`` gives its place
    to the next whole one of the order (``skipped`` = 1, one line naming shard and sample); once
    more than ``max_skipped`` of the shard's samples are known damaged, or none is left whole,
    :class:`CorruptShardError` names the shard.
    """
    from preprocessing.shard_index import member_table, read_members
    from preprocessing.storage import open_storage

    storage = open_storage(task["root"])
    entry = task["entry"]
    name = entry["name"]
    table = member_table(storage, entry)
    sampler = get_task(task_cfg.name).sampler(task_cfg)
    order = in_shard_order(len(table.samples), task["seed"], task["epoch"], task["url"])
    damaged: dict[int, str] = {}

    def fetch(i: int) -> tuple[str, dict[str, bytes]] | None:
        if i in damaged:
            return None
        key, members = table.samples[i]
        try:
            head = read_members(storage, name, members, ["json"]) if "json" in members else {}
            listing = {m: b"" for m in members} | head | {"__key__": key}
            wanted = sampler.train_members(listing, sample_rng(task["seed"], task["epoch"], key))
            # a member the sample lacks stays absent: the sampler's own check names it
            got = read_members(storage, name, members, [w for w in wanted if w in members])
        except Exception as exc:  # noqa: BLE001 - a short read or an unreadable json: that sample is damaged
            damaged[i] = f"sample {key!r}: {_first_line(exc)}"
            return None
        problem = sample_problem(got)
        if problem:
            damaged[i] = f"sample {key!r}: {problem}"
            return None
        return key, got

    def refuse(why: str) -> CorruptShardError:
        return CorruptShardError(
            f"shard {task['url']}: {why}, more than data.max_skipped_fraction={max_skipped:g} "
            f"({damaged[min(damaged)]}); rebuild it with `restoray shard`")

    for j in range(task["skip"], task["skip"] + task["take"]):
        found, skipped = fetch(order[j]), 0
        if found is None:
            skipped = 1
            problem = damaged[order[j]]
            for k in range(1, len(order)):
                found = fetch(order[(j + k) % len(order)])
                if found is not None:
                    break
            if found is None:
                raise refuse(f"no sample of its {len(order)} is whole")
            print(f"[restoray] skipped a sample of shard {name}: {problem} "
                  f"(epoch {task['epoch']}; its place goes to {found[0]!r})", flush=True)
        if len(damaged) > max_skipped * len(order):
            raise refuse(f"{len(damaged)} of {len(order)} samples unreadable")
        key, got = found
        yield {"key": key, "epoch": task["epoch"], "shard": name, "skipped": skipped,
               "names": list(got), "blobs": list(got.values())}


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
    depend on the actor that makes it. A sample the sampler cannot make (a member that passed
    the read checks but does not decode) is skipped: one line naming shard and sample, and its
    row repeats a neighbour of the batch with ``skipped`` = 1.
    """

    def __init__(self, task_cfg: Any, seed: int, emit_keys: bool = False):
        self.sampler = get_task(task_cfg.name).sampler(task_cfg)
        self.seed = seed
        self.emit_keys = emit_keys

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["key"])
        shards = batch.get("shard", np.array(["?"] * n, dtype=object))
        skipped = [int(v) for v in batch.get("skipped", np.zeros(n, np.int64))]
        out: list[dict[str, np.ndarray] | None] = []
        for i, (key, epoch, names, blobs) in enumerate(zip(batch["key"], batch["epoch"], batch["names"],
                                                           batch["blobs"])):
            members = {**dict(zip(names, blobs)), "__key__": str(key)}
            try:
                out.append(self.sampler.train(members, sample_rng(self.seed, int(epoch), str(key))))
            except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the sample is skipped
                print(f"[restoray] skipped sample {str(key)!r} of shard {shards[i]}: {_first_line(exc)}", flush=True)
                out.append(None)
                skipped[i] = 1
        good = [s for s in out if s is not None]
        if not good:
            raise CorruptShardError(f"no sample of a transform batch could be made (shards "
                                    f"{', '.join(sorted(set(map(str, shards))))}; first key {str(batch['key'][0])!r})")
        filled = [s if s is not None else next((t for t in out[i + 1:] if t is not None), good[-1])
                  for i, s in enumerate(out)]
        stacked = _stack(filled) | {"skipped": np.asarray(skipped, np.int64)}
        if self.emit_keys:  # the consumed-keys test hook (trainers/control.py)
            stacked[KEY_COLUMN] = encode_keys([f"{int(e)}/{k}" for e, k in zip(batch["epoch"], batch["key"])])
        return stacked


def configure_data_context(progress_bars: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    # Deterministic order is what makes `samples_seen` a position in the stream.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress_bars
    # "Starting execution of Dataset ..." and its plan, at every validation: Ray's log files have them
    ctx.print_on_execution_start = False


def train_dataset(
    uri: str, manifest: dict[str, Any], cfg: Any, start: int, needed: int, emit_keys: bool = False
) -> ray.data.Dataset:
    """The training stream of experiment ``cfg`` from sample ``start`` on, ``needed`` samples long
    (``emit_keys``: each row also carries its ``epoch/key``, for the consumed-keys test hook)."""
    data = cfg.data
    tasks = plan_reads(shard_table(uri, manifest), cfg.seed, start, needed)
    sizes = {join(uri, s["name"]): {"bytes": s["bytes"], "num_samples": s["num_samples"]} for s in manifest["shards"]}
    tasks = [t | sizes[t["url"]] for t in tasks]
    if hasattr(get_task(cfg.task.name).sampler(cfg.task), "train_members"):
        entries = {join(uri, s["name"]): {k: s[k] for k in ("name", "sha256", "bytes", "num_samples")}
                   for s in manifest["shards"]}
        tasks = [t | {"root": uri, "entry": entries[t["url"]]} for t in tasks]
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.flat_map(read_shard, fn_kwargs={"task_cfg": cfg.task, "max_skipped": data.max_skipped_fraction},
                     num_cpus=LIGHT_TASK_CPUS)
    ds = ds.map_batches(
        TrainTransform,
        fn_constructor_kwargs={"task_cfg": cfg.task, "seed": cfg.seed, "emit_keys": emit_keys},
        compute=ray.data.ActorPoolStrategy(size=data.transform_actors),
        num_cpus=data.cpus_per_actor,
        batch_size=transform_batch(data.transform_batch_size, data.batch_size) if data.exact_split
        else data.transform_batch_size,
        batch_format="numpy",
    )
    if not data.exact_split:
        return ds
    ds = ds.repartition(target_num_rows_per_block=data.batch_size, strict=True)
    # repartition() takes no resources and its tasks would ask for a whole CPU each (Ray Data's
    # default), which a cluster whose CPUs all went to workers and actors never frees: set them
    # on its logical operator, the one place Ray 2.60 keeps them.
    recut = ds._logical_plan.dag
    if type(recut).__name__ != "StreamingRepartition":
        raise RuntimeError(f"Ray Data changed: repartition() made {type(recut).__name__}, see pipelines/stream.py")
    recut.ray_remote_args["num_cpus"] = LIGHT_TASK_CPUS
    return ds


def transform_batch(transform_batch_size: int, batch_size: int) -> int:
    """Samples per transform call: ``data.transform_batch_size`` rounded up to a multiple of the
    per-worker batch.

    Why: the stream is cut into blocks of exactly one worker batch (``repartition(strict=True)``
    after the transform), and Ray Train's split hands equal blocks to the workers in turn, so
    worker ``r`` trains on global batches ``r, r + W, r + 2W, ...`` and ``samples_seen`` after
    ``s`` steps is the stream position ``s * W * batch``, whatever the shard sizes: a run resumed
    in a new process (SIGTERM, a lost driver) plans its stream from there and each worker gets
    the batches it would have got. With blocks of whole shards or transform calls instead, the
    workers' shares depended on block sizes and a resumed run started other workers on other
    samples. The re-cut costs one copy of the stream through the object store in light tasks
    (the 2-core demo made ~20% fewer steps in its time budget, hence opt-in: ``data.exact_split``);
    a transform batch that is a multiple of the worker batch keeps each transform call's output
    whole batches, so a re-cut block is one slice of one transform output.
    """
    return -(-transform_batch_size // batch_size) * batch_size


def val_members(row: dict[str, Any]) -> dict[str, Any]:
    """A webdataset row's members (``gt.png`` ...) plus ``__key__``; absent members dropped.

    A member only some samples have (a matting test composite's ``bg.png``) is a column the
    others fill with None or NaN: anything that is not non-empty bytes is absent.
    """
    out = {k: v for k, v in row.items() if not k.startswith("__") and isinstance(v, (bytes, bytearray)) and len(v)}
    out["__key__"] = str(row["__key__"])
    return out


def _val_rows(batch: dict[str, np.ndarray], task_cfg: Any, seed: int) -> dict[str, np.ndarray]:
    """The family's validation sample of each raw one; a sample that passed the read checks but
    does not decode is left out with one line naming it (the loop counts what is missing)."""
    sampler = get_task(task_cfg.name).sampler(task_cfg)
    keys, rows = [], []
    for key, shard, names, blobs in zip(batch["__key__"], batch["shard"], batch["names"], batch["blobs"]):
        members = val_members({"__key__": key, **dict(zip(names, blobs))})
        try:
            rows.append(sampler.val(members, sample_rng(seed, 0, str(key))))
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the sample is left out
            print(f"[restoray] validation: skipped sample {str(key)!r} of shard {shard}: {_first_line(exc)}",
                  flush=True)
            continue
        keys.append(key)
    # no row at all is an empty batch (Ray Data drops it): the columns of a family are not known here
    return {"key": np.array(keys, dtype=object), **_stack(rows)} if rows else {}


def _val_shard(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Raw whole samples of one validation shard, in tar order (members as name/bytes list columns)."""
    shard = row["url"].rstrip("/").rsplit("/", 1)[-1]
    for sample in _intact_samples(row["url"], row.get("num_samples")):
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        yield {"__key__": sample["__key__"], "shard": shard, "names": list(members), "blobs": list(members.values())}


def val_dataset(uri: str, manifest: dict[str, Any], cfg: Any) -> ray.data.Dataset:
    """Full-size validation samples (one per row; sizes may differ).

    Shards are read by :func:`_intact_samples` (damaged samples left out and named), not
    ``read_webdataset``, whose reader silently skips links and passes escaping member names on."""
    urls = [{"url": url, "num_samples": n} for url, n in shard_table(uri, manifest)]
    # Fractional CPUs: validation runs while the train workers and the training
    # stream hold their resources; whole-CPU tasks would wait forever on a small node.
    ds = ray.data.from_items(urls, override_num_blocks=len(urls)).flat_map(_val_shard, num_cpus=LIGHT_TASK_CPUS)
    return ds.map_batches(
        _val_rows, fn_kwargs={"task_cfg": cfg.task, "seed": cfg.seed}, batch_size=1, batch_format="numpy",
        num_cpus=0.25,
    )


def iter_samples(uri: str, manifest: dict[str, Any], damaged: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every whole raw sample of a shard folder in manifest order, without Ray (evaluation,
    tests); damaged ones are left out, named on stdout and in ``damaged``."""
    for url, n in shard_table(uri, manifest):
        yield from _intact_samples(url, n, "evaluation", damaged)

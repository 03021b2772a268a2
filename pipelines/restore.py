"""``restoray restore``: a model over a whole folder or S3 prefix, as a resumable Ray Data job.

::

    driver: list SRC (and each extra input's root), pair, skip finished outputs  -> items
    read_stage   CPU tasks      fetch + decode each item's files (image, mask, trimap ...)
    ModelStage   actor pool     one actor per GPU (or per core): the networks loaded once per
                                actor from one object-store copy; same-size inputs predicted
                                together, large ones tiled by the family (task.eval.tile)
    write_stage  CPU tasks      encode (PNG / JPEG / the source's format), atomic write to DST
    driver: collect each item's fate -> _restore/manifest.json, _restore/failures.json, MLflow run

Outputs keep the source's relative path (``a/b/photo.jpg`` -> ``DST/a/b/photo.png``). Each is
written atomically (a temporary file renamed into place, or one complete S3 upload), so an
output that exists is finished: a re-run lists DST and skips those, and one that was killed
half-way redoes only what was missing. ``_restore/job.json``, written before the first output,
pins the model of DST (its weights' fingerprint); restoring into it with another model stops
with exit code 2 instead of mixing outputs of two models. A bad input (unreadable, a mask of
the wrong size, a failed write) becomes an entry of the failure list and never stops the job;
it is tried again by the next run.

Families: every step goes through the family's inference hooks (``infer_inputs``,
``infer_batch``, ``predict``, ``infer_output``), as ``restoray infer`` does; an extra input
(inpainting's ``mask``, matting's ``trimap``) comes from ``--<name> ROOT``, paired with each
image by relative path and stem (``ROOT/a/b/photo.*``), or one file for every image.

Videos (not built yet) fit the same three stages with one more kind of item: the planner would
list ``.mp4``/frame folders as items of kind ``video``; the read stage would ``flat_map`` a video
into clip rows (``key``, ``clip`` index, ``frames`` ``[T,H,W,3]``, with overlap for recurrent
models, the frame rate and audio stream noted); the model actors would run the family's
hooks on ``[1,T,C,H,W]`` batches (``--max-seq-len`` splitting long clips); and the write stage
would write each clip's frames under ``_restore/parts/<key>/`` (atomic), a final task per video
muxing them with the source frame rate and audio (PyAV) into a temporary name renamed into
place. Skip, manifest and failure list stay per item (per video), so nothing here changes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.config import UsageError
from pipelines.image_io import IMAGE_SUFFIXES, pair_index
from pipelines.restore_model import RestoreModel
from pipelines.restore_stages import ModelStage, read_stage, write_stage
from preprocessing.storage import LocalStorage, S3Storage, Storage, StorageError, normalize_uri, open_storage

META = "_restore"
FORMATS = ("png", "jpg", "same")
IO_CPUS = 0.25  # logical CPUs of a read or write task: light next to the model, and never starved by it
MANIFEST_FORMAT = "restoray-restore/1"
# Same-size inputs predicted together on a GPU actor. CPU actors predict one input at a time by
# default: batching barely speeds up a CPU convolution, and a batched convolution rounds floats
# differently from a single one (a few pixels of an output then differ by 1 from `restoray
# infer`'s); at batch 1 the outputs equal infer's bit for bit.
GPU_BATCH = 8
ROWS_PER_CALL = 4  # rows handed to a model actor per call (at least the batch size)
ITEMS_PER_ACTOR = 8  # fewer items than this per default actor do not pay for its start


@dataclass
class RestoreOptions:
    """How to run the job (``restoray restore``'s options)."""

    batch_size: int | None = None  # None: 1 on CPU actors, GPU_BATCH on GPU actors
    fmt: str = "png"
    num_actors: int | None = None
    gpus_per_actor: float | None = None
    extras: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    progress: bool = True


@dataclass
class Item:
    key: str
    out: str
    inputs: dict[str, str]  # input name -> key in that input's storage


@dataclass
class Plan:
    todo: list[Item]
    skipped: list[Item]
    failures: list[dict[str, str]]
    ignored: int  # files under SRC that are not images


@dataclass
class Summary:
    src: str
    dst: str
    model: dict[str, Any]
    listed: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    ignored: int = 0
    seconds: float = 0.0
    in_pixels: int = 0
    out_pixels: int = 0
    model_s: float = 0.0
    actors: str = ""
    failures: list[dict[str, str]] = field(default_factory=list)
    actor_busy: float | None = None  # share of the actors' time after start-up spent predicting (1 - waiting)
    startup_s: float | None = None  # until the first model actor was ready
    steady_images_per_s: float | None = None  # images over the seconds after the first actor was ready
    run_id: str | None = None
    experiment: str = ""
    dry_run: bool = False

    @property
    def images_per_s(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    @property
    def megapixels_per_s(self) -> float:
        return self.out_pixels / 1e6 / self.seconds if self.seconds else 0.0

    def metrics(self) -> dict[str, float]:
        return {"items": self.listed, "written": self.written, "skipped": self.skipped, "failed": self.failed,
                "seconds": round(self.seconds, 3), "images_per_s": self.images_per_s,
                "megapixels_per_s": self.megapixels_per_s,
                "input_megapixels_per_s": self.in_pixels / 1e6 / self.seconds if self.seconds else 0.0,
                "model_seconds": self.model_s}


# --------------------------------------------------------------------------- storages and the plan


def open_roots(src: str, dst: str, extras: dict[str, str], dry_run: bool
               ) -> tuple[Storage, Storage, dict[str, tuple[Storage, str | None]]]:
    """SRC, DST and each extra input's root, checked: SRC must exist, neither may hold the other.
    A dry run creates nothing (a missing local DST is only listed as empty)."""
    try:
        s, d = normalize_uri(src), normalize_uri(dst)
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    if d == s or d.startswith(s + "/"):
        raise UsageError(f"DST {dst} is inside SRC {src}: a re-run would read its own outputs")
    if s.startswith(d + "/"):
        raise UsageError(f"SRC {src} is inside DST {dst}: an output could replace a source")
    try:
        src_store = open_storage(s)
        dst_store = (S3Storage(d).check() if d.startswith("s3://") else LocalStorage(d)) if dry_run \
            else open_storage(d, create=True)
        extra_stores = {name: _extra_root(name, root) for name, root in extras.items()}
    except StorageError as exc:
        raise UsageError(f"{str(exc).replace('folder does not exist', 'not found')}") from None
    return src_store, dst_store, extra_stores


def _extra_root(name: str, root: str) -> tuple[Storage, str | None]:
    """(storage, None) of an extra input's folder or prefix; (its folder, its name) for one
    local file, which then pairs with every image."""
    uri = normalize_uri(root)
    if not uri.startswith("s3://"):
        p = Path(uri)
        if p.is_file():
            return LocalStorage(str(p.parent)), p.name
        if not p.is_dir():
            raise StorageError(f"--{name}: not found: {root}")
    return open_storage(uri), None


def output_key(key: str, fmt: str) -> str:
    stem, _, suffix = key.rpartition(".")
    return f"{stem}.{suffix if fmt == 'same' else fmt}"


def _is_input(key: str) -> bool:
    parts = key.split("/")
    return not any(p.startswith(".") for p in parts) and "." + key.rpartition(".")[2].lower() in IMAGE_SUFFIXES


def plan_job(src: Storage, dst: Storage, names: tuple[str, ...], extras: dict[str, tuple[Storage, str | None]],
             fmt: str) -> Plan:
    """Which items to restore, which are finished (their output exists), which cannot be.

    An extra input ``name`` pairs by relative path and stem (``a/photo.jpg`` with
    ``<root>/a/photo.<any image suffix>``). Two sources that would write one output
    (``a.jpg`` and ``a.png`` to ``a.png``) write it once, from the one already in the output
    format; the other is a failure entry: nothing is overwritten.
    """
    missing = [n for n in names if n != "image" and n not in extras]
    if missing:
        raise UsageError(f"this model needs a {missing[0]} for each image: --{missing[0]} FOLDER (or one file)")
    unused = sorted(set(extras) - set(names))
    if unused:
        raise UsageError(f"--{unused[0]}: this model reads no {unused[0]} (it reads {', '.join(names)})")
    listing = src.list()
    keys = [o.key for o in listing if _is_input(o.key)]
    # a source already in the output format claims its output name first
    keys.sort(key=lambda k: (output_key(k, fmt), not k.lower().endswith(f".{fmt}"), k))
    pairs = {n: extras[n][1] or pair_index(o.key for o in extras[n][0].list()) for n in names if n != "image"}
    done = {o.key for o in dst.list() if not o.key.startswith(f"{META}/")}
    todo, skipped, failures, owner = [], [], [], {}
    for key in keys:
        out = output_key(key, fmt)
        if out in owner:
            failures.append({"source": key, "reason": f"its output {out} is also {owner[out]}'s (use --format same)"})
            continue
        owner[out] = key
        stem = key.rpartition(".")[0]
        inputs = {"image": key}
        for name, index in pairs.items():
            found = index.get(stem) if isinstance(index, dict) else index
            if found is None:
                failures.append({"source": key, "reason": f"no {name} {stem}.* in {extras[name][0].uri()}"})
                break
            inputs[name] = found
        else:
            (skipped if out in done else todo).append(Item(key, out, inputs))
    return Plan(todo, skipped, failures, ignored=len(listing) - len(keys))


# --------------------------------------------------------------------------- the job's record in DST


def check_job(dst: Storage, model: RestoreModel) -> dict[str, Any] | None:
    """``_restore/job.json`` of an earlier run into DST, refusing a different model."""
    key = f"{META}/job.json"
    if not dst.exists(key):
        return None
    job = json.loads(dst.read_bytes(key))
    theirs = job.get("model", {})
    if theirs.get("fingerprint") != model.fingerprint:
        raise UsageError(
            f"{dst.uri()} holds outputs of another model ({theirs.get('uri')}"
            f"{' version ' + str(theirs['version']) if theirs.get('version') else ''}, weights {theirs.get('fingerprint')}); "
            f"restore into another DST, or remove its {META}/ folder and outputs first")
    return job


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=False).encode()


def write_records(dst: Storage, model: RestoreModel, plan: Plan, rows: list[dict[str, Any]],
                  summary: Summary) -> None:
    """``_restore/manifest.json`` (every finished output of DST, with the model) and
    ``_restore/failures.json`` (this run's failures, with the reason), each written atomically."""
    old = {}
    if dst.exists(f"{META}/manifest.json"):
        try:
            old = {o["output"]: o for o in json.loads(dst.read_bytes(f"{META}/manifest.json")).get("outputs", [])}
        except (ValueError, KeyError, TypeError):
            old = {}
    outputs = {i.out: old.get(i.out, {"source": i.key, "output": i.out}) for i in plan.skipped}
    for r in rows:
        if not r["error"]:
            outputs[r["out"]] = {"source": r["key"], "output": r["out"], "size": [r["in_w"], r["in_h"]],
                                 "out_size": [r["out_w"], r["out_h"]]}
    manifest = {
        "format": MANIFEST_FORMAT, "model": model.identity(), "src": summary.src, "dst": summary.dst,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": {"listed": summary.listed, "written": summary.written, "skipped": summary.skipped,
                   "failed": summary.failed, "ignored": summary.ignored, "outputs": len(outputs)},
        "outputs": [outputs[k] for k in sorted(outputs)],
    }
    dst.write_bytes(f"{META}/failures.json", _json(summary.failures))
    dst.write_bytes(f"{META}/manifest.json", _manifest_text(manifest))


def _manifest_text(manifest: dict[str, Any]) -> bytes:
    """Indented JSON with one line per output (a manifest of a million outputs stays greppable)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "outputs"}, indent=1)
    rows = ",\n".join("  " + json.dumps(o) for o in manifest["outputs"])
    return (head[:-2] + ',\n "outputs": [' + (f"\n{rows}\n " if rows else "") + "]\n}\n").encode()


# --------------------------------------------------------------------------- the Ray Data job


@dataclass
class ActorPlan:
    count: int
    cpus: float
    gpus: float
    threads: int

    def describe(self) -> str:
        kind = f"{self.gpus:g} GPU" if self.gpus else f"{self.threads} torch thread{'s' * (self.threads > 1)}"
        return f"{self.count} model actor{'s' * (self.count > 1)} ({kind} each)"


def plan_actors(resources: dict[str, float], num_actors: int | None, gpus_per_actor: float | None,
                items: int | None = None, free_cpus: float | None = None) -> ActorPlan:
    """How many model actors, with what: one per GPU when the cluster has GPUs, else one per core,
    but by default no more than one per ``ITEMS_PER_ACTOR`` items (an actor takes seconds to
    start: importing torch and the family, loading the weights).

    CPU actors: each gets ``cores // actors`` torch threads (so threads never outnumber cores:
    Ray sets no thread count for fractional CPUs, and torch would start one per core in every
    actor), and together they hold 75% of the logical CPUs, leaving the rest to the read and
    write tasks (``IO_CPUS`` each) so those are never starved by the actors' reservation. When
    part of the cluster is busy (``free_cpus``: other jobs, a training run), they reserve only
    what is free: the reservation is bookkeeping (the thread count is set apart), and one larger
    than the free CPUs would leave the actors pending until the other work ends.
    """
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    per_gpu = gpus_per_actor if gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
    most = math.ceil(items / ITEMS_PER_ACTOR) if items else None
    if per_gpu > 0:
        count = num_actors or max(1, min(int(gpus // per_gpu), most or gpus))
        if count * per_gpu > gpus + 1e-9:
            raise UsageError(f"{count} model actors x {per_gpu:g} GPU need {count * per_gpu:g} GPUs; "
                             f"the cluster has {gpus:g}")
        return ActorPlan(count, 1.0, per_gpu, 1)
    count = num_actors or max(1, min(int(cpus), most or cpus))
    share = cpus * 0.75 / count
    if free_cpus is not None and count * share > free_cpus - IO_CPUS:
        share = max((free_cpus - IO_CPUS) / count, 0.05)
    if share < 0.05:
        raise UsageError(f"{count} model actors do not fit {cpus:g} CPUs")
    return ActorPlan(count, share, 0.0, max(1, int(cpus // count)))


def build_dataset(items: list[Item], model_ref, storages: dict[str, Storage], dst: Storage,
                  actors: ActorPlan, batch_size: int, names: tuple[str, ...]):
    """list -> read/decode (tasks) -> model (actor pool) -> encode/write (tasks)."""
    import ray

    rows = [{"key": i.key, "out": i.out, **{f"src_{n}": i.inputs[n] for n in names}} for i in items]
    # Enough read blocks for every actor to have work queued, few enough that task overhead stays small.
    per_call = max(batch_size, ROWS_PER_CALL)
    per_block = max(1, min(max(per_call, 8), math.ceil(len(rows) / (2 * actors.count))))
    ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_block))
    ds = ds.map_batches(read_stage, fn_kwargs={"storages": storages, "names": names}, batch_size=None,
                        batch_format="numpy", num_cpus=IO_CPUS)
    ds = ds.map_batches(
        ModelStage,
        fn_constructor_kwargs={"model": functools.partial(ray.get, model_ref), "threads": actors.threads,
                               "device": "cuda" if actors.gpus else "cpu", "batch_size": batch_size},
        compute=ray.data.ActorPoolStrategy(size=actors.count), num_cpus=actors.cpus,
        num_gpus=actors.gpus or None, batch_size=per_call, batch_format="numpy")
    return ds.map_batches(write_stage, fn_kwargs={"dst": dst}, batch_size=None, batch_format="numpy",
                          num_cpus=IO_CPUS)


@contextlib.contextmanager
def _data_context(progress: bool):
    """Progress bars as asked and no order kept (outputs land as they finish) for this job only:
    the DataContext is process-wide, and the training stream needs its order kept."""
    import ray

    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.execution_options.preserve_order
    ctx.enable_progress_bars, ctx.execution_options.preserve_order = progress, False
    try:
        yield ctx
    finally:
        ctx.enable_progress_bars, ctx.execution_options.preserve_order = saved


@dataclass
class JobResult:
    """Every item's row of the write stage, the actors, ``seconds`` from handing the model to the
    object store to the last row, and ``startup_s`` until the first model actor was ready
    (importing torch and the family, loading the weights: what every job pays before its first
    prediction)."""

    rows: list[dict[str, Any]]
    actors: ActorPlan
    seconds: float
    startup_s: float


def run_job(items: list[Item], model: RestoreModel, storages: dict[str, Storage], dst: Storage,
            opts: RestoreOptions) -> JobResult:
    """Run the Dataset to the end."""
    import ray

    actors = plan_actors(ray.cluster_resources(), opts.num_actors, opts.gpus_per_actor, len(items),
                         free_cpus=ray.available_resources().get("CPU", 0.0))
    batch_size = opts.batch_size or (GPU_BATCH if actors.gpus else 1)
    names = model.infer_inputs
    t0, wall0 = time.perf_counter(), time.time()
    model_ref = ray.put(model)
    rows = []
    try:
        with _data_context(progress=opts.progress):
            ds = build_dataset(items, model_ref, storages, dst, actors, batch_size, names)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                cols = {k: v.tolist() for k, v in batch.items()}
                rows += [dict(zip(cols, values)) for values in zip(*cols.values())]
    except BaseException as exc:
        release_frames(exc)
        raise
    seconds = time.perf_counter() - t0
    ready = [r["ready_at"] for r in rows if r["ready_at"] > 0]
    return JobResult(rows, actors, seconds, min(max(min(ready) - wall0, 0.0), seconds) if ready else seconds)


def release_frames(exc: BaseException) -> None:
    """Clear the local variables of the finished frames that ``exc`` reaches (its tracebacks,
    the callers of their frames, and the same for its causes), keeping file names and line
    numbers for printing.

    Why: a failed Ray Data job's exception chain carries frames of the executor's thread (a
    ``StopIteration`` from its scheduling loop), and through their locals the executor, its
    in-flight actor tasks and so the model actors' handles. Ray Data releases actors by dropping
    its references, not by ``ray.kill``; so while anything kept the exception (Ray Data's own
    log record holds it as an argument: a handler that retains records, pytest's log capture, a
    notebook's ``sys.last_value``) each model actor stayed alive, holding its CPUs or GPU.
    Generator frames are left alone (clearing a suspended one would close its generator), and
    frames still running refuse to be cleared.
    """
    import inspect

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            while frame is not None and id(frame) not in seen:
                seen.add(id(frame))
                if not frame.f_code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE
                                                | inspect.CO_ASYNC_GENERATOR):
                    with contextlib.suppress(RuntimeError):  # still running
                        frame.clear()
                frame = frame.f_back
            tb = tb.tb_next
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]  # RayTaskError keeps its cause apart


# --------------------------------------------------------------------------- the command


def run_restore(model: RestoreModel, src: str, dst: str, opts: RestoreOptions,
                tracking: str | None = None, experiment: str = "restoray-restore") -> Summary:
    """Plan, run and record one restore job (see the module doc); ``tracking`` None: no MLflow run."""
    if opts.fmt not in FORMATS:
        raise UsageError(f"--format: {opts.fmt!r} is not one of {', '.join(FORMATS)}")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise UsageError("--batch-size: must be at least 1")
    src_store, dst_store, extra_stores = open_roots(src, dst, opts.extras, opts.dry_run)
    check_job(dst_store, model)
    names = model.infer_inputs
    plan = plan_job(src_store, dst_store, names, extra_stores, opts.fmt)
    summary = Summary(src_store.uri(), dst_store.uri(), model.identity(), listed=len(plan.todo) + len(plan.skipped)
                      + len(plan.failures), skipped=len(plan.skipped), ignored=plan.ignored,
                      failures=list(plan.failures), dry_run=opts.dry_run)
    if opts.dry_run:
        print_plan(plan, model, summary)
        return summary
    run_id = _start_run(tracking, experiment, model, summary, opts) if tracking else None
    summary.run_id, summary.experiment = run_id, experiment
    try:
        job = None
        if plan.todo:
            from pipelines.cluster import init_ray

            init_ray()
            if not dst_store.exists(f"{META}/job.json"):
                dst_store.write_bytes(f"{META}/job.json", _json({"model": model.identity(), "src": summary.src}))
            storages = {"image": src_store, **{n: store for n, (store, _) in extra_stores.items()}}
            job = run_job(plan.todo, model, storages, dst_store, opts)
        _tally(summary, job)
        write_records(dst_store, model, plan, job.rows if job else [], summary)
    except BaseException:
        if run_id:
            from pipelines.tracking import finish_run

            finish_run(tracking, run_id, status="FAILED")
        raise
    if run_id:
        _finish_run(tracking, run_id, summary, dst_store)
    print_summary(summary, model, dst_store)
    return summary


def _tally(summary: Summary, job: JobResult | None) -> None:
    for r in job.rows if job else []:
        if r["error"]:
            summary.failures.append({"source": r["key"], "reason": r["error"]})
            continue
        summary.written += 1
        summary.in_pixels += int(r["in_h"]) * int(r["in_w"])
        summary.out_pixels += int(r["out_h"]) * int(r["out_w"])
        summary.model_s += float(r["model_s"])
    summary.failures.sort(key=lambda f: f["source"])
    summary.failed = len(summary.failures)
    if job:
        summary.seconds, summary.actors, summary.startup_s = job.seconds, job.actors.describe(), job.startup_s
        running = job.seconds - job.startup_s
        if summary.written and running > 0:
            summary.steady_images_per_s = summary.written / running
            summary.actor_busy = min(summary.model_s / (running * job.actors.count), 1.0)


def _start_run(tracking: str, experiment: str, model: RestoreModel, summary: Summary, opts: RestoreOptions) -> str:
    from pipelines.tracking import start_or_resume_run

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    params = {"model": model.uri, "model_version": model.version or "", "weights": model.source,
              "fingerprint": model.fingerprint, "task": model.task_cfg.name, "src": summary.src, "dst": summary.dst,
              "format": opts.fmt, "batch_size": opts.batch_size or "auto", "num_actors": opts.num_actors or "auto",
              "gpus_per_actor": opts.gpus_per_actor if opts.gpus_per_actor is not None else "auto",
              **{f"extra.{k}": v for k, v in opts.extras.items()}}
    tags = {"restoray.command": "restore", "restoray.model_uri": model.uri,
            "restoray.model_version": model.version or "", "restoray.restore.dst": summary.dst}
    # A new experiment on a sqlite store keeps its artifacts beside the database (the demo's
    # demo_out/mlartifacts), not in whatever folder the command ran from.
    workdir = Path(tracking[len("sqlite:///"):]).parent if tracking.startswith("sqlite:///") else Path(".")
    return start_or_resume_run(tracking, experiment, f"restore-{stamp}", workdir, params, None, tags=tags)


def _finish_run(tracking: str, run_id: str, summary: Summary, dst: Storage) -> None:
    from mlflow.tracking import MlflowClient

    from pipelines.tracking import finish_run
    from preprocessing.redact import redact_config

    client = MlflowClient(tracking_uri=tracking)
    metrics = summary.metrics()
    for name in ("actor_busy", "startup_s", "steady_images_per_s"):
        if getattr(summary, name) is not None:
            metrics[name.replace("actor_busy", "actor_busy_share")] = getattr(summary, name)
    for k, v in metrics.items():
        client.log_metric(run_id, f"restore/{k}", float(v))
    for name in ("manifest.json", "failures.json"):
        client.log_dict(run_id, redact_config(json.loads(dst.read_bytes(f"{META}/{name}"))), f"restore/{name}")
    finish_run(tracking, run_id)


# --------------------------------------------------------------------------- what the user reads


def print_plan(plan: Plan, model: RestoreModel, summary: Summary, limit: int = 50) -> None:
    print(f"[restoray] dry run: {model.describe()}")
    print(f"[restoray] {summary.src} -> {summary.dst}: {len(plan.todo)} to restore, {len(plan.skipped)} finished "
          f"(skipped), {len(plan.failures)} cannot be restored, {plan.ignored} other files ignored")
    for item in plan.todo[:limit]:
        extra = "".join(f" + {n} {k}" for n, k in item.inputs.items() if n != "image")
        print(f"  restore {item.key}{extra} -> {item.out}")
    if len(plan.todo) > limit:
        print(f"  ... and {len(plan.todo) - limit} more")
    for f in plan.failures[:limit]:
        print(f"  cannot  {f['source']}: {f['reason']}")


def print_summary(s: Summary, model: RestoreModel, dst: Storage, shown: int = 5) -> None:
    busy = s.actor_busy
    print("\n" + "=" * 72)
    print(f"restoray restore  {model.describe()}")
    print(f"  {s.src} -> {s.dst}")
    print(f"  items {s.listed}: {s.written} written, {s.skipped} skipped (finished earlier), {s.failed} failed"
          + (f"; {s.ignored} non-image files ignored" if s.ignored else ""))
    if s.written:
        print(f"  {s.seconds:.1f} s: {s.images_per_s:.2f} images/s, {s.megapixels_per_s:.2f} MP/s out "
              f"({s.in_pixels / 1e6 / s.seconds:.2f} MP/s in)"
              + (f"; {s.steady_images_per_s:.2f} images/s once the first actor was up ({s.startup_s:.1f} s)"
                 if s.steady_images_per_s else ""))
        print(f"  {s.actors}" + (f", predicting {busy:.0%} of the time once up (the rest: waiting for input)"
                                 if busy is not None else ""))
    elif not s.failed:
        print("  nothing to do: every output exists")
    for f in s.failures[:shown]:
        print(f"  failed: {f['reason'] if f['reason'].startswith(f['source']) else f['source'] + ': ' + f['reason']}")
    if s.failed > shown:
        print(f"  ... {s.failed - shown} more in the failure list")
    print(f"  manifest {dst.uri(f'{META}/manifest.json')}, failures {dst.uri(f'{META}/failures.json')}")
    if s.run_id:
        print(f"  MLflow run {s.run_id} in experiment {s.experiment!r}")
    print("=" * 72, flush=True)

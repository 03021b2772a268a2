"""The ``restoray`` command line.

Every command validates its config before Ray starts: a bad config ends with
exit code 2 and one line naming the field, as does a command line that cannot work
(``restore`` with a missing model or SRC, or DST inside SRC). Other user errors (missing
shards, unreadable checkpoints, bad images) end with exit code 1 and one line, as does a
training job whose worker restarts (``train.max_failures``) are spent; one stopped by SIGTERM
checkpoints first and ends with exit code 143. Both lines give the command that resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from pipelines.config import ConfigError, UsageError, load_experiment, load_shard_config
from preprocessing.redact import redact_text

EPILOG = """\
typical session:
  restoray shard configs/data/div2k_train_x4.yaml       # raw images -> WebDataset shards
  restoray train configs/sr/edsr_x4c64b16_1x16_300k_div2k.yaml train.total_steps=1000
  restoray tune  configs/tune/edsr_x2_asha.yaml             # schedule search; --summary to watch it
  restoray retrain configs/retrain/edsr_x2_retrain.yaml     # cron: shard new data, fine-tune, gate, promote
  restoray eval  configs/sr/edsr_x4c64b16_1x16_300k_div2k.yaml --checkpoint CKPT
  restoray infer configs/sr/edsr_x4c64b16_1x16_300k_div2k.yaml --checkpoint CKPT --out out/ photo.png
  restoray restore --model models:/edsr_x4@champion s3://photos/2024 s3://photos-x4/2024   # a Ray Data job
  restoray demo --workdir demo_out                      # the whole pipeline on bundled sample photos

Any config field can be overridden after the config path: a.b.c=value.
Set RAY_ADDRESS to use an existing Ray cluster, MLFLOW_TRACKING_URI for an MLflow
server, AWS_ENDPOINT_URL (+ AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) for S3-compatible storage.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="restoray",
        description="Distributed data and training pipeline on Ray for the MMEditing restoration model zoo.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("shard", help="raw images (local folder or s3://) -> WebDataset shards + manifest")
    s.add_argument("config", help="shard config YAML (see configs/data/)")
    s.add_argument("overrides", nargs="*", help="field overrides a.b=value")

    t = sub.add_parser("train", help="train a model with Ray Train (re-run the same command to resume)")
    t.add_argument("config", help="experiment config YAML (see configs/sr/)")
    t.add_argument("overrides", nargs="*", help="field overrides a.b=value")
    t.add_argument("--workdir", default=".", help="where the default MLflow database lives (default: .)")
    t.add_argument("--no-register", action="store_true", help="do not register the final model in MLflow")
    t.add_argument("--fit", action="store_true",
                   help="a local trial: shrink GPU/CPU requests to this cluster (a zoo config on a laptop or CI); "
                   "prints what it changed")

    u = sub.add_parser("tune", help="Ray Tune sweep over the config's tune.space (re-run to resume)")
    u.add_argument("config", help="experiment config YAML with a tune section (see configs/tune/)")
    u.add_argument("overrides", nargs="*", help="field overrides a.b=value")
    u.add_argument("--workdir", default=".", help="default MLflow database and sweeps/<name>/ outputs (default: .)")
    u.add_argument("--summary", action="store_true", help="print the sweep's trials (from its Tune state) and exit")
    u.add_argument("--json", dest="json_out", help="with --summary: also write the summary as JSON here")

    r = sub.add_parser("retrain", help="cron-safe: shard new data, fine-tune the champion, promote only if better")
    r.add_argument("config", help="experiment config YAML with a retrain section (see configs/retrain/)")
    r.add_argument("overrides", nargs="*", help="field overrides a.b=value")
    r.add_argument("--workdir", default=".", help="where the default MLflow database lives (default: .)")
    r.add_argument("--json", dest="json_out", help="also write the report here")

    e = sub.add_parser("eval", help="PSNR/SSIM of a checkpoint and of bicubic on held-out shards")
    e.add_argument("config")
    e.add_argument("overrides", nargs="*")
    e.add_argument("--checkpoint", help="zoo .pth, restoray checkpoint or models:/<name>@<alias>; omit to score "
                   "the family's baseline (bicubic for SR) only")
    e.add_argument("--shards", help="shard directory to evaluate on (default: data.val)")
    e.add_argument("--json", dest="json_out", help="also write the full result (per-sample scores) here")

    i = sub.add_parser("inspect", help="parameter count; with --checkpoint, whether it loads strictly")
    i.add_argument("config")
    i.add_argument("overrides", nargs="*")
    i.add_argument("--checkpoint", help="zoo {'meta','state_dict'}, restoray checkpoint or models:/<name>@<alias>")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")

    f = sub.add_parser("infer", help="upscale images with a checkpoint (tiled for large inputs)")
    f.add_argument("config")
    f.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    f.add_argument("--checkpoint", required=True, help="zoo .pth, restoray checkpoint, or models:/<name>@<alias>")
    f.add_argument("--out", required=True,
                   help="output folder for PNGs; video models: a video file (.mp4/.mkv/.mov) or a frame folder")
    f.add_argument("--tile", type=int, default=None, help="LQ tile size in pixels (default: task.eval.tile)")
    f.add_argument("--tile-overlap", type=int, default=None)
    f.add_argument("--trimap", default=None, metavar="FILE|DIR",
                   help="matting: the trimap (0/128/255) of each image, a file or a folder paired by file name")
    f.add_argument("--mask", default=None, metavar="FILE|DIR",
                   help="inpainting: the hole mask of each image, a file or a folder paired by file name")
    f.add_argument("--ref", default=None, metavar="FILE|DIR",
                   help="reference-based SR (TTSR): the reference image of each input, a file or a folder paired by file name")
    f.add_argument("--composite-on", default=None, metavar="IMAGE",
                   help="matting: also write each image's foreground over this background (<name>_composite.png)")
    f.add_argument("--max-seq-len", type=int, default=None, metavar="N",
                   help="video models: restore N frames at a time (memory stays that of N frames)")
    f.add_argument("--fps", type=str, default=None, help="video models: frame rate of a frame-folder input (default 25; "
                   "interpolation models write twice it)")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=VALUE",
                   help="config override (repeatable)")
    f.add_argument("--scale", default=None, metavar="S",
                   help="arbitrary-scale models (liif): upscale by S, any real number >= 1 (default task.infer.scale)")
    f.add_argument("--size", default=None, metavar="WxH", help="arbitrary-scale models (liif): the output size")

    _restore_parser(sub)

    v = sub.add_parser("preview", help="PNG contact sheet of a degradation preset (GT, LQ, drawn parameters)")
    v.add_argument("--preset", required=True,
                   help="bicubic | bd | realesrgan | realbasicvsr | mask-bbox | mask-irregular | mask-brush")
    v.add_argument("--out", required=True, help="PNG file to write")
    v.add_argument("--n", type=int, default=4, help="number of samples (rows)")
    v.add_argument("--seed", type=int, default=0)

    b = sub.add_parser("bench", help="benchmarks that print figures (degradation throughput per core; "
                                     "train-loop overhead against a plain PyTorch loop; matting and "
                                     "inpainting sampler samples/s per core; video SR clips/s per core; "
                                     "restore job against the infer loop; deformable convolution against conv2d; "
                                     "video inference peak memory, whole and chunked; EDVR-M and CAIN inference frames/s; ingest: shards "
                                     "against a PNG folder, local and S3; GLEAN 64->1024 inference time and peak memory; "
                                     "LIIF x30 peak memory, query-chunked and whole)")
    b.add_argument("what", choices=["degradations", "train", "matting", "inpainting", "restore", "clips", "deform",
                                    "video", "frames", "ingest", "glean", "liif"])
    b.add_argument("--json", dest="json_out", required=True, help="write the records here")
    b.add_argument("--quick", action="store_true", help="few repetitions (smoke test, noisy figures)")

    d = sub.add_parser("demo", help="shard bundled sample photos, train EDSR x4 on 2 Ray workers, compare with bicubic")
    d.add_argument("--workdir", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument("overrides", nargs="*", help="overrides for the demo training config")
    return p


def extra_input_names() -> list[str]:
    """Every input besides ``image`` that a registered family reads (``mask``, ``trimap``):
    ``restoray restore`` offers one ``--<name> ROOT`` option for each."""
    from trainers.tasks import TASKS

    return sorted({n for t in TASKS.values() for n in t.infer_inputs if n not in ("image", "video")})


def _restore_parser(sub) -> None:
    r = sub.add_parser("restore", help="restore a whole folder or S3 prefix with a model (Ray Data job; re-run resumes)",
                       description="Run a model over every image under SRC (local folder or s3://bucket/prefix) and "
                       "write the results under DST with the same relative paths. Finished outputs are skipped, so "
                       "re-running the command resumes it (and is a no-op once done). DST/_restore/ holds the "
                       "manifest and the failure list.")
    r.add_argument("src", metavar="SRC", help="folder or s3://bucket/prefix of images (searched recursively)")
    r.add_argument("dst", metavar="DST", help="output folder or s3://bucket/prefix (not inside SRC)")
    r.add_argument("--model", required=True, help="models:/<name>@<alias> or models:/<name>/<version>, a restoray "
                   "checkpoint (checkpoint_* folder or its checkpoint.pt), or a zoo .pth with --config")
    r.add_argument("--config", help="experiment config whose task and nets sections describe the model "
                   "(needed for zoo files; otherwise the model carries them)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=VALUE",
                   help="override in --config (repeatable)")
    r.add_argument("--tile", type=int, default=None, help="LQ tile size in pixels for large inputs (default: task.eval.tile)")
    r.add_argument("--tile-overlap", type=int, default=None)
    r.add_argument("--batch-size", type=int, default=None, help="same-size inputs predicted together (default: 8 "
                   "on GPUs; 1 on CPUs, where outputs then equal restoray infer's bit for bit)")
    r.add_argument("--format", dest="fmt", choices=["png", "jpg", "same"], default="png",
                   help="output format: png (default), jpg, or the source's own")
    r.add_argument("--num-actors", type=int, default=None, help="model actors (default: one per GPU, else one per CPU)")
    r.add_argument("--gpus-per-actor", type=float, default=None, help="GPUs per model actor (default 1 when the "
                   "cluster has GPUs, else 0: CPU actors)")
    r.add_argument("--dry-run", action="store_true", help="list what would be restored, skipped or refused; do nothing")
    r.add_argument("--tracking-uri", help="MLflow tracking URI for the registry and the job's run (default: the "
                   "config's mlflow.tracking_uri, $MLFLOW_TRACKING_URI, sqlite:///$PWD/mlflow.db)")
    r.add_argument("--experiment", default="restoray-restore", help="MLflow experiment of the job's run")
    for name in extra_input_names():  # the inputs a registered family reads besides the image
        r.add_argument(f"--{name}", metavar="ROOT", help=f"folder or s3:// prefix of {name}s, paired with the "
                       f"images by relative path and stem (or one file for every image)")


def _cmd_restore(args) -> int:
    from pipelines.restore import RestoreOptions, run_restore
    from pipelines.restore_model import resolve_model
    from pipelines.tracking import check_reachable, tracking_uri

    for flag, value in (("--batch-size", args.batch_size), ("--num-actors", args.num_actors)):
        if value is not None and value < 1:
            raise UsageError(f"{flag}: must be at least 1, got {value}")
    if args.gpus_per_actor is not None and args.gpus_per_actor < 0:
        raise UsageError(f"--gpus-per-actor: must not be negative, got {args.gpus_per_actor:g}")
    extras = {n: getattr(args, n) for n in extra_input_names() if getattr(args, n, None)}
    opts = RestoreOptions(batch_size=args.batch_size, fmt=args.fmt, num_actors=args.num_actors,
                          gpus_per_actor=args.gpus_per_actor, extras=extras, dry_run=args.dry_run)
    from pipelines.restore import open_roots

    open_roots(args.src, args.dst, extras, dry_run=True)  # SRC/DST mistakes first, before MLflow or a model
    configured = load_experiment(args.config, args.overrides, check_paths=False).mlflow.tracking_uri if args.config else None
    uri = tracking_uri(args.tracking_uri or configured, ".")
    if args.model.startswith("models:/") or not args.dry_run:
        check_reachable(uri)
    model = resolve_model(args.model, args.config, uri, args.overrides, args.tile, args.tile_overlap)
    summary = run_restore(model, args.src, args.dst, opts, tracking=None if args.dry_run else uri,
                          experiment=args.experiment)
    return 1 if summary.failed else 0


def _cmd_shard(args) -> int:
    cfg = load_shard_config(args.config, args.overrides)
    from pipelines.cluster import init_ray
    from pipelines.shard_job import run_shard

    init_ray()
    run_shard(cfg)
    return 0


def _cmd_train(args) -> int:
    cfg = load_experiment(args.config, args.overrides)
    from pipelines.train_job import preflight, run_train
    from pipelines.tracking import check_reachable, tracking_uri

    preflight(cfg)  # data and resume checks first: a refused config touches neither MLflow nor Ray
    check_reachable(tracking_uri(cfg.mlflow.tracking_uri, args.workdir))
    from pipelines.cluster import init_ray

    init_ray()
    if args.fit:
        from pipelines.cluster import fit_to_cluster

        cfg, changes = fit_to_cluster(cfg)
        print(f"[restoray] --fit: {', '.join(changes) if changes else 'the config fits this cluster as it is'}",
              flush=True)
    out = run_train(cfg, config_file=args.config, workdir=args.workdir, register=not args.no_register)
    print(json.dumps({
        "run_name": out.run_name, "mlflow_run_id": out.mlflow_run_id, "tracking_uri": redact_text(out.tracking_uri),
        "checkpoint": out.checkpoint_dir, "registered_version": out.registered_version,
        "metrics": {k: v for k, v in out.metrics.items() if isinstance(v, (int, float))},
    }, indent=1))
    return 0


def _cmd_tune(args) -> int:
    cfg = load_experiment(args.config, args.overrides, check_paths=not args.summary)
    if cfg.tune is None:
        raise ConfigError(f"{args.config}: tune: this config has no tune section (see configs/tune/)")
    from pipelines import tune_job

    if args.summary:
        summary = tune_job.read_summary(cfg)
        print(tune_job.format_summary(summary))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(summary, indent=1))
        return 0
    from pipelines.tracking import check_reachable, tracking_uri

    check_reachable(tracking_uri(cfg.mlflow.tracking_uri, args.workdir))
    from pipelines.cluster import init_ray

    init_ray()
    out = tune_job.run_tune(cfg, config_file=args.config, workdir=args.workdir)
    return 0 if out.best_config else 1


def _cmd_retrain(args) -> int:
    cfg = load_experiment(args.config, args.overrides, check_paths=False)
    if cfg.retrain is None:
        raise ConfigError(f"{args.config}: retrain: this config has no retrain section (see configs/retrain/)")
    from pipelines.tracking import check_reachable, tracking_uri

    check_reachable(tracking_uri(cfg.mlflow.tracking_uri, args.workdir))
    from pipelines.retrain import run_retrain

    report = run_retrain(cfg, config_file=args.config, workdir=args.workdir)
    text = json.dumps(report, indent=1)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    return 0


def _cmd_eval(args) -> int:
    cfg = load_experiment(args.config, args.overrides, check_paths=() if args.shards else ("val",))
    from pipelines.evaluate import evaluate
    from pipelines.infer import load_nets
    from pipelines.tracking import tracking_uri

    nets = load_nets(cfg, args.checkpoint, tracking_uri(cfg.mlflow.tracking_uri, "."))[0] if args.checkpoint else None
    result = evaluate(cfg, nets, shards=args.shards)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    for k, v in result.items():
        if k not in ("per_sample", "directions", "by_group"):
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    for group, scores in result.get("by_group", {}).items():
        print(f"{group}: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))
    from trainers.tasks import get_task

    if getattr(get_task(cfg.task.name), "report_per_sample", False):  # video: one row per clip, then the mean
        print(_per_sample_table(result))
    return 0


def _per_sample_table(result: dict) -> str:
    rows = result["per_sample"]
    cols = [k for k in rows[0] if k not in ("key", "group")]
    width = max(len("mean"), *(len(str(r["key"])) for r in rows))
    lines = ["  ".join([f"{'sample':<{width}}", *(f"{c:>14}" for c in cols)])]
    lines += ["  ".join([f"{str(r['key']):<{width}}", *(f"{r[c]:>14.4f}" for c in cols)]) for r in rows]
    lines.append("  ".join([f"{'mean':<{width}}", *(f"{result[c]:>14.4f}" for c in cols)]))
    return "\n".join(lines)


def _cmd_inspect(args) -> int:
    cfg = _load_for_model(args)
    from pipelines.infer import inspect_model
    from pipelines.tracking import tracking_uri

    info = inspect_model(cfg, args.checkpoint, tracking_uri(cfg.mlflow.tracking_uri, "."))
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        _print_inspect(info)
    return 0 if not args.checkpoint or info["loads_strictly"] else 1


def _print_inspect(info: dict) -> None:
    for role, net in info["nets"].items():
        print(f"{role}: {net['arch']}, {net['num_params']:,} parameters, {net['num_state_dict_keys']} state-dict keys")
    if "checkpoint" not in info:
        return
    print(f"checkpoint {info['checkpoint']} holds: {', '.join(info['checkpoint_roles']) or 'no networks'}")
    for role, net in info["nets"].items():
        if not net.get("present"):
            print(f"  {role}: not in the checkpoint")
            continue
        print(f"  {role} ({net['source']}): " + ("loads strictly" if net["loads_strictly"] else "does NOT load strictly"))
        for key in net["missing"]:
            print(f"    missing     {key}")
        for key in net["unexpected"]:
            print(f"    unexpected  {key}")
        for key, want, got in net["mismatched"]:
            print(f"    mismatched  {key}: model {want}, checkpoint {got}")
    for role in info["other_roles"]:
        print(f"  {role}: in the checkpoint, not in this config")


def _load_for_model(args):
    """inspect/infer need the model section only: do not require shards to exist."""
    return load_experiment(args.config, getattr(args, "overrides", []), check_paths=False)


def _cmd_infer(args) -> int:
    overrides = list(args.overrides)
    if args.tile is not None:
        overrides.append(f"task.eval.tile={args.tile}")
    if args.tile_overlap is not None:
        overrides.append(f"task.eval.tile_overlap={args.tile_overlap}")
    size_overrides = _output_size_overrides(args.scale, args.size)
    cfg = load_experiment(args.config, overrides, check_paths=False)
    if size_overrides:
        if "infer" not in type(cfg.task).model_fields:
            raise UsageError(f"--scale/--size apply to arbitrary-scale models (liif), not {cfg.task.name}")
        cfg = load_experiment(args.config, overrides + size_overrides, check_paths=False)
    from pipelines.infer import run_infer
    from pipelines.tracking import tracking_uri

    from trainers.tasks import get_task

    if "video" in get_task(cfg.task.name).infer_inputs:
        return _infer_videos(cfg, args, tracking_uri(cfg.mlflow.tracking_uri, "."))
    if args.max_seq_len is not None or args.fps is not None:
        raise UsageError(f"--max-seq-len/--fps apply to video models, not {cfg.task.name}")

    extras = {k: v for k, v in (("trimap", args.trimap), ("mask", args.mask), ("ref", args.ref)) if v is not None}
    written, errors = run_infer(cfg, args.checkpoint, args.out, args.inputs,
                                tracking_uri(cfg.mlflow.tracking_uri, "."), extras, args.composite_on)
    print(f"[restoray] wrote {len(written)} image(s) to {args.out}" + (f", {len(errors)} failed" if errors else ""))
    return 1 if errors else 0


def _output_size_overrides(scale: str | None, size: str | None) -> list[str]:
    """``--scale`` / ``--size`` -> ``task.infer`` overrides; UsageError (exit 2) for bad values."""
    if scale is not None and size is not None:
        raise UsageError("give --scale or --size, not both")
    if scale is not None:
        try:
            value = float(scale)
        except ValueError:
            value = float("nan")
        if not value >= 1 or value == float("inf"):
            raise UsageError(f"--scale must be a real number >= 1, got {scale!r}")
        return [f"task.infer.scale={value!r}"]
    if size is not None:
        w, _, h = size.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise UsageError(f"--size must be WxH with positive integers, got {size!r}")
        return [f"task.infer.size=[{int(w)}, {int(h)}]"]
    return []


def _infer_videos(cfg, args, uri: str) -> int:
    """Each input video (file or frame folder) -> ``--out`` itself for one input with a video
    suffix, else ``--out/<name>.mp4`` (file inputs) or ``--out/<name>/`` (frame folders)."""
    from fractions import Fraction

    from pipelines.infer_video import is_video_file, restore_video

    try:
        fps = Fraction(args.fps) if args.fps is not None else None
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps: not a frame rate: {args.fps!r}") from None
    from trainers.tasks import get_task

    if getattr(get_task(cfg.task.name), "infer_kind", "restore") == "interpolate" and _all_images(args.inputs):
        return _interpolate_pair(cfg, args, uri)
    if len(args.inputs) > 1 and is_video_file(args.out):
        raise UsageError(f"--out {args.out}: several inputs need an output folder")
    failed = 0
    for source in args.inputs:
        name = Path(source.rstrip("/")).stem if is_video_file(source) else Path(source.rstrip("/")).name
        target = args.out if is_video_file(args.out) else str(Path(args.out) / (f"{name}.mp4" if is_video_file(source) else name))
        try:
            r = restore_video(cfg, args.checkpoint, source, target, max_seq_len=args.max_seq_len, fps=fps, uri=uri)
        except (ValueError, FileNotFoundError) as exc:
            print(f"[restoray] skip {exc}", file=sys.stderr, flush=True)
            failed += 1
            continue
        kind = f"{r.codec} video" if r.codec else "PNG frames"
        if getattr(get_task(cfg.task.name), "infer_kind", "restore") == "interpolate":
            done = f"{r.chunks} synthesised"
        else:
            done = f"{r.chunks} chunk{'s' * (r.chunks > 1)}"
        print(f"[restoray] wrote {r.out}: {r.frames} frames {r.size[1]}x{r.size[0]} at {r.fps} fps ({kind}, "
              f"{done}, {r.seconds:.1f} s)", flush=True)
    return 1 if failed else 0


def _all_images(paths: list[str]) -> bool:
    from pipelines.image_io import IMAGE_SUFFIXES

    return all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)


def _interpolate_pair(cfg, args, uri: str) -> int:
    """Two images -> their middle frame: ``--out`` itself when it is an image file name, else
    ``--out/<first>_<second>.png``."""
    from pipelines.image_io import IMAGE_SUFFIXES
    from pipelines.infer_video import interpolate_pair

    if len(args.inputs) != 2:
        raise UsageError(f"an interpolation model takes a video, a frame folder or two images, "
                         f"got {len(args.inputs)} image(s)")
    if args.max_seq_len is not None or args.fps is not None:
        raise UsageError("--max-seq-len/--fps apply to videos, not to a pair of images")
    first, second = args.inputs
    out = Path(args.out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        out = out / f"{Path(first).stem}_{Path(second).stem}.png"
    interpolate_pair(cfg, args.checkpoint, first, second, str(out), uri=uri)
    print(f"[restoray] wrote {out}: the frame between {first} and {second}", flush=True)
    return 0


def _cmd_preview(args) -> int:
    from pipelines.preview import write_preview

    path = write_preview(args.preset, args.out, n=args.n, seed=args.seed)
    print(f"[restoray] wrote {path} ({args.n} samples of preset {args.preset})")
    return 0


def _cmd_bench(args) -> int:
    if args.what == "liif":
        from pipelines.bench_liif import write_bench_liif

        write_bench_liif(args.json_out, quick=args.quick)
        return 0
    if args.what == "restore":
        from pipelines.bench_restore import format_table, write_bench_restore

        print(format_table(write_bench_restore(args.json_out, quick=args.quick)))
    elif args.what == "train":
        from pipelines.bench_train import format_table, write_bench_train

        print(format_table(write_bench_train(args.json_out, quick=args.quick)))
    elif args.what == "matting":
        from pipelines.bench_matting import write_bench_matting

        write_bench_matting(args.json_out, quick=args.quick)
    elif args.what == "ingest":
        from pipelines.bench_ingest import write_bench_ingest

        write_bench_ingest(args.json_out, quick=args.quick)
    elif args.what == "clips":
        from pipelines.bench_clips import write_bench_clips

        write_bench_clips(args.json_out, quick=args.quick)
    elif args.what == "inpainting":
        from pipelines.bench_inpainting import write_bench_inpainting

        write_bench_inpainting(args.json_out, quick=args.quick)
    elif args.what == "deform":
        from pipelines.bench_deform import write_bench_deform

        write_bench_deform(args.json_out, quick=args.quick)
    elif args.what == "video":
        from pipelines.bench_video import write_bench_video

        write_bench_video(args.json_out, quick=args.quick)
    elif args.what == "frames":
        from pipelines.bench_frames import write_bench_frames

        write_bench_frames(args.json_out, quick=args.quick)
    elif args.what == "glean":
        from pipelines.bench_glean import write_bench_glean

        write_bench_glean(args.json_out, quick=args.quick)
    else:
        from pipelines.bench import write_bench

        write_bench(args.json_out, quick=args.quick)
    print(f"[restoray] wrote {args.json_out}")
    return 0


def _cmd_demo(args) -> int:
    from pipelines.demo import run_demo

    run_demo(args.workdir, args.overrides)
    return 0


COMMANDS = {
    "shard": _cmd_shard, "train": _cmd_train, "tune": _cmd_tune, "retrain": _cmd_retrain, "eval": _cmd_eval,
    "inspect": _cmd_inspect, "infer": _cmd_infer, "demo": _cmd_demo,
    "preview": _cmd_preview, "bench": _cmd_bench, "restore": _cmd_restore,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line, accepting ``a.b=value`` overrides after options as well as before them
    (``restoray eval CFG --checkpoint X data.val=...``): argparse alone stops collecting a
    positional list at the first option and refuses what follows."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    late = [a for a in rest if "=" in a and not a.startswith("-")]
    unknown = [a for a in rest if a not in late]
    if late and not hasattr(args, "overrides"):
        unknown = rest
    if unknown:
        parser.parse_args(argv)  # argparse's own one-line "unrecognized arguments" error, exit 2
    if late:
        args.overrides = list(args.overrides or []) + late
    return args


def _quiet_libraries() -> None:
    """Keep library chatter off the terminal: MLflow's INFO lines (database set-up, "View run
    at"), Ray's token-auth notice and one Ray Data deprecation that Ray raises inside its own
    ``DataConfig``. Ray's INFO lines from its workers are handled in ``pipelines.cluster``."""
    import logging
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow sets its loggers' level at import
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*ExecutionOptions.exclude_resources.*")


def ray_failure_line(exc: BaseException) -> str | None:
    """The root cause of an error raised inside Ray (a worker's exception, a failed task), as
    one line, or None for an exception that did not come from Ray."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        failures = getattr(seen, "worker_failures", None)  # Ray Train's WorkerGroupError: rank -> error
        seen = next(iter(failures.values())) if failures else (seen.__cause__ or seen.__context__)
    if not any(type(e).__module__.startswith("ray.") for e in chain):
        return None
    root = chain[-1]
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.split(":", 1)[0].split(".")[-1].endswith(("Error", "Exception", "Interrupt"))]
    text = errors[-1] if errors else (lines[-1] if lines else type(root).__name__)
    return text if ":" in text else f"{type(root).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    install_redaction()
    args = parse_args(argv)
    _quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(redact_text(f"restoray: config error: {exc}"), file=sys.stderr)
        return 2
    except UsageError as exc:
        if os.environ.get("RESTORAY_DEBUG"):
            raise
        print(redact_text(f"restoray: error: {str(exc).strip().splitlines()[0]}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("restoray: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from pipelines.train_job import TrainingFailed, TrainingStopped

        if isinstance(exc, (TrainingFailed, TrainingStopped)):
            again = shlex.join(["restoray", *(argv if argv is not None else sys.argv[1:])])
            kind = "stopped" if isinstance(exc, TrainingStopped) else "error"
            print(redact_text(f"restoray: {kind}: {exc}; resume with the same command: {again}"), file=sys.stderr)
            return 143 if isinstance(exc, TrainingStopped) else 1
        line = ray_failure_line(exc)
        if line is None and not isinstance(exc, (ValueError, FileNotFoundError, ConnectionError, PermissionError)):
            raise
        if os.environ.get("RESTORAY_DEBUG"):
            raise
        if line is not None:  # the worker's own traceback is above; close with what went wrong
            print(redact_text(f"restoray: error: {args.command} failed inside Ray: {line} (RESTORAY_DEBUG=1 "
                              "re-raises; Ray's logs: /tmp/ray/session_latest/logs)"), file=sys.stderr)
            return 1
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(redact_text(f"restoray: error: {msg}"), file=sys.stderr)
        return 1


def install_redaction() -> None:
    """Secrets out of what this process prints that restoray does not format itself.

    Every log record (MLflow's, Ray's, urllib3's: the record factory covers all loggers), an
    uncaught exception's traceback and -- when they are the process's own streams, not a test's
    capture -- everything written to stdout/stderr (MLflow's prints, worker lines Ray forwards)
    pass through :func:`preprocessing.redact.redact_text`. Idempotent.
    """
    import logging
    import traceback

    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_restoray_redacts", False):
        def _record(*args, **kwargs):
            record = factory(*args, **kwargs)
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
                return record
            clean = redact_text(text)
            if clean != text:
                record.msg, record.args = clean, None
            return record

        _record._restoray_redacts = True
        logging.setLogRecordFactory(_record)

    def _hook(kind, value, tb):
        sys.__stderr__.write(redact_text("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = _hook
    if sys.stdout is sys.__stdout__:
        sys.stdout = _RedactingStream(sys.stdout)
    if sys.stderr is sys.__stderr__:
        sys.stderr = _RedactingStream(sys.stderr)


class _RedactingStream:
    """A text stream whose writes go through :func:`redact_text` (everything else is the stream's)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


if __name__ == "__main__":
    sys.exit(main())

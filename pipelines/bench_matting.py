"""``restoray bench matting``: samples/s per core of the matting training sampler, one record per case.

What is timed is :meth:`trainers.samplers.matting.MattingSampler.train` as a Ray Data actor
runs it: PNG decode of the shard members (fg, alpha), the background drawn from a background
shard set (decode included; its bytes come from the bank's per-actor cache once warm, so
storage latency is not in the figure), composition, then the pipeline's augmentation
(GCA: second foreground p 0.5, affine, trimap, crop 512, jitter, merge; DIM/IndexNet: crop
around unknown, flip, resize 320, trimap).

Inputs are synthetic and Comp-1k-like: foregrounds of ``fg_size`` (noise-textured, with edges;
their PNGs are as large as photos' and decode as slowly), soft-rimmed alpha mattes with a
fuzzy rim, 640x480 backgrounds (COCO's typical size), stored in real shard sets (PNG
compression 3, as every restoray shard) in a temporary folder. Figures are per core: OpenCV and the BLAS pools are limited to one
thread and the clock is this process's CPU time (``time.process_time``), so a machine shared
with other work still gives the one-core figure; the best of ``repeats`` runs is reported.
Records: ``{"pipeline", "fg_size", "fg_png_compression", "out_size", "value", "unit", "machine"}``.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from degradations.bench import synthetic_gt
from pipelines.bench import machine, sampler_rate, save_records
from preprocessing.schema import encode_png, encode_png_grey
from preprocessing.shard_index import ShardSet
from preprocessing.shards import build_shard, commit_manifest, plan_job
from trainers.samplers.matting import MattingDataConfig, MattingSampler

CASES = (("gca", False), ("dim", False), ("indexnet", False))


def _alpha(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A matte with an opaque body, a fuzzy rim a few dozen px wide (hair-like noise), zero outside."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - h * 0.55) / (0.38 * h)) ** 2 + ((xx - w * 0.5) / (0.3 * w)) ** 2)
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3) - 0.5
    return (np.clip((1.1 - r + 0.3 * noise) / 0.15, 0, 1) * 255).astype(np.uint8)


def _image(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    side = max(h, w)
    return (synthetic_gt(side, rng)[:h, :w] * 255).round().astype(np.uint8)


def _shard(source: Path, dest: Path, adapter: str, params: dict) -> None:
    plan = plan_job(str(source), str(dest), adapter, params, items_per_shard=64)
    results = [build_shard(s, plan.source_uri, plan.dest_uri, plan.adapter, plan.params) for s in plan.shards]
    commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params, source_uri=plan.source_uri,
                    source_fingerprint=plan.fingerprint, expected_shards=len(plan.shards), version=plan.version)


def make_data(root: Path, fg_size: tuple[int, int], n_fg: int = 4, n_bg: int = 8, seed: int = 0,
              png_compression: int = 3) -> tuple[list[dict[str, Any]], str, str]:
    """(training members as the stream hands them, background shard URI, foreground shard URI) under ``root``.

    ``png_compression`` is the foreground shards' PNG level (the backgrounds are an
    ``image_folder`` set: level 3).
    """
    rng = np.random.default_rng(seed)
    (root / "raw_fg/fg").mkdir(parents=True, exist_ok=True)
    (root / "raw_fg/alpha").mkdir(parents=True, exist_ok=True)
    for i in range(n_fg):
        (root / f"raw_fg/fg/f{i}.png").write_bytes(encode_png(_image(*fg_size, rng)))
        (root / f"raw_fg/alpha/f{i}.png").write_bytes(encode_png_grey(_alpha(*fg_size, rng)))
    (root / "raw_bg").mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        (root / f"raw_bg/b{i}.png").write_bytes(encode_png(_image(480, 640, rng)))
    _shard(root / "raw_bg", root / "bg", "image_folder", {"crop": False})
    _shard(root / "raw_fg", root / "fg", "matting_folder", {"png_compression": png_compression})
    shard_set = ShardSet(str(root / "fg"))
    members = []
    for i in range(len(shard_set)):
        key, data = shard_set.read(i)
        members.append({**data, "__key__": key})
    return members, str(root / "bg"), str(root / "fg")


def bench_matting_sampler(pipeline: str, dimaug: bool = False, fg_size: tuple[int, int] = (512, 512), n: int = 40,
                          repeats: int = 3, seed: int = 0, data: tuple | None = None, warmup: int = 12) -> float:
    """Training samples per second of one pipeline on one core (CPU time).

    Args:
        pipeline, dimaug: as ``MattingDataConfig``.
        fg_size: ``(h, w)`` of the synthetic foregrounds (when ``data`` is None).
        n: samples per timed run.
        warmup: untimed samples first (they open the banks and fill their caches).
        repeats: timed runs; the best is reported.
        seed: seeds the data and the per-sample generators.
        data: ``make_data``'s result, to share one data set between pipelines.
    """
    with ExitStack() as stack:
        if data is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restoray-bench-matting-")))
            data = make_data(root, fg_size, seed=seed)
        members, bg, fg = data
        sampler = MattingSampler(MattingDataConfig(pipeline=pipeline, dimaug=dimaug, backgrounds=bg, foregrounds=fg))
        return sampler_rate(sampler, members, n, repeats, warmup, seed)


def bench_matting(quick: bool = False) -> list[dict[str, Any]]:
    """Samples/s/core of the GCA, DIM and IndexNet training samplers.

    Foreground sizes: 512x512 (the headline: GCA's crop size, no rescaling) and 1024x1024
    (Comp-1k-like: GCA rotates from 1024 px on, and decoding grows with the area), with the
    foreground shards at PNG level 3 (the default); 512x512 also at level 0 (the adapters'
    ``png_compression: 0``, decoding about twice as fast). Quick mode runs 512 at level 3
    only, a few samples (a smoke test: the figures are noisy).
    """
    n, repeats, warmup = (4, 1, 4) if quick else (40, 3, 12)
    cases = (((512, 512), 3),) if quick else (((512, 512), 3), ((512, 512), 0), ((1024, 1024), 3))
    where = machine()
    records = []
    for size, level in cases:
        with tempfile.TemporaryDirectory(prefix="restoray-bench-matting-") as tmp:
            data = make_data(Path(tmp), size, png_compression=level)
            for pipeline, dimaug in CASES:
                value = bench_matting_sampler(pipeline, dimaug, n=n, repeats=repeats, data=data, warmup=warmup)
                out = 512 if pipeline == "gca" and not dimaug else 320
                records.append({"pipeline": pipeline + ("_dimaug" if dimaug else ""), "fg_size": list(size),
                                "fg_png_compression": level, "out_size": out, "value": round(value, 2),
                                "unit": "samples/s/core", "machine": where})
                print(f"[restoray] matting {records[-1]['pipeline']} fg {size[0]}x{size[1]} (PNG level {level}) -> "
                      f"{out}px: {value:.1f} samples/s/core", flush=True)
    return records


def bench_gca_inference(size: int = 1000, repeats: int = 2) -> dict[str, Any]:
    """Seconds for one GCA prediction on a ``size`` x ``size`` composite, as ``restoray infer``
    and evaluation run it (reflect-padded to the multiple of 32, attention at 1/8 scale,
    cropped back), and the peak memory (:func:`pipelines.bench.time_prediction`). Weights
    are random: the cost does not depend on them."""
    from pipelines.bench import time_prediction
    from trainers.archs import build_arch
    from trainers.tasks.matting import MattingConfig, MattingTask

    task = MattingTask(MattingConfig(data={"pipeline": "gca", "backgrounds": "unused", "composite_fg_prob": 0},
                                     trimap_input="onehot", output="tanh"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    solid = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(np.uint8) * 255
    alpha = cv2.GaussianBlur(solid, (0, 0), 8)
    trimap = np.full(alpha.shape, 128, np.uint8)
    trimap[alpha == 0], trimap[alpha == 255] = 0, 255
    inputs = {"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "trimap": trimap}
    record = {"case": "gca_inference", "size": [size, size]} | time_prediction(
        task, {"backbone": build_arch("gca")}, inputs, repeats)
    print(f"[restoray] matting gca inference {size}x{size} on {record['device']}: {record['value']:.2f} s/image, "
          f"peak {record['peak_mib']} MiB", flush=True)
    return record


def write_bench_matting(out: str, quick: bool = False) -> list[dict[str, Any]]:
    records = bench_matting(quick=quick)
    records.append(bench_gca_inference(size=256 if quick else 1000, repeats=1 if quick else 2))
    return save_records(out, records)

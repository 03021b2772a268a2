"""``restoray bench inpainting``: samples/s per core of the inpainting training sampler, one record per mask type.

What is timed is :meth:`trainers.samplers.inpainting.InpaintingSampler.train` as a Ray Data
actor runs it for the 256 px zoo configs: PNG decode of the shard's ``gt.png``, the mask
(``bbox``, ``irregular`` with its area-ratio redraws, ``brush``, or ``set``: a mask drawn from
a ``mask_folder`` shard set -- its bytes from the bank's per-actor cache once warm, so storage
latency is not in the figure -- decoded, resized and rotated 0-45 degrees), Crop 384 and
bilinear Resize to 256.

Inputs are synthetic, Places365-``data_large``-like: ``img_size`` images (default 512x680;
noise-textured with edges, so their PNGs decode as slowly as photos'), stored as a real
``places365``-style whole-image shard set at PNG level 3 (every restoray shard's default)
and, in the full run, also at level 0 (the inpainting adapters' ``png_compression: 0``:
about twice the bytes, decoding 1.8-3x faster; PNG decoding is most of a sample's time);
set masks are 512x512 irregular masks sharded with ``mask_folder``. Figures are per core: OpenCV and the
BLAS pools are limited to one thread and the clock is this process's CPU time
(``time.process_time``), so a machine shared with other work still gives the one-core
figure; the best of ``repeats`` runs is reported. Records:
``{"mask", "img_size", "png_compression", "out_size", "value", "unit", "machine"}``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from degradations.bench import synthetic_gt
from degradations.masks import irregular_mask
from pipelines.bench import machine, sampler_rate, save_records
from preprocessing.schema import encode_png, encode_png_grey
from preprocessing.shard_index import ShardSet
from preprocessing.shards import build_shard, commit_manifest, plan_job
from trainers.samplers.inpainting import InpaintingDataConfig, InpaintingSampler

MASKS = ("bbox", "irregular", "brush", "set")


def _shard(source: Path, dest: Path, adapter: str, params: dict) -> None:
    plan = plan_job(str(source), str(dest), adapter, params, items_per_shard=64)
    results = [build_shard(s, plan.source_uri, plan.dest_uri, plan.adapter, plan.params) for s in plan.shards]
    commit_manifest(plan.dest_uri, results, adapter=plan.adapter, params=plan.params, source_uri=plan.source_uri,
                    source_fingerprint=plan.fingerprint, expected_shards=len(plan.shards), version=plan.version)


def make_data(root: Path, img_size: tuple[int, int] = (512, 680), n_img: int = 6, n_mask: int = 16,
              seed: int = 0, png_compression: int = 3) -> tuple[list[dict[str, Any]], str]:
    """(image members as the stream hands them, mask-set shard URI) under ``root``."""
    rng = np.random.default_rng(seed)
    (root / "raw_img").mkdir(parents=True, exist_ok=True)
    (root / "raw_mask").mkdir(parents=True, exist_ok=True)
    h, w = img_size
    for i in range(n_img):
        img = (synthetic_gt(max(h, w), rng)[:h, :w] * 255).round().astype(np.uint8)
        (root / f"raw_img/data_large/i{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (root / f"raw_img/data_large/i{i}.png").write_bytes(encode_png(img))
    for i in range(n_mask):
        (root / f"raw_mask/m{i}.png").write_bytes(encode_png_grey(irregular_mask((512, 512), rng=rng) * 255))
    _shard(root / "raw_img", root / "img", "places365", {"png_compression": png_compression})
    _shard(root / "raw_mask", root / "masks", "mask_folder", {})
    shard_set = ShardSet(str(root / "img"))
    members = []
    for i in range(len(shard_set)):
        key, data = shard_set.read(i)
        members.append({**data, "__key__": key})
    return members, str(root / "masks")


def bench_inpainting_sampler(mask: str, members: list[dict], masks_uri: str, n: int = 100, repeats: int = 3,
                             warmup: int = 20, seed: int = 0) -> float:
    """Training samples per second of one mask type on one core (CPU time)."""
    mask_cfg = {"type": "set", "set": masks_uri, "rotation": (0.0, 45.0)} if mask == "set" else {"type": mask}
    sampler = InpaintingSampler(InpaintingDataConfig(mask=mask_cfg))
    return sampler_rate(sampler, members, n, repeats, warmup, seed)


def bench_inpainting(quick: bool = False, img_size: tuple[int, int] = (512, 680)) -> list[dict[str, Any]]:
    """Samples/s/core of the sampler at 256 px for each mask type, shards at PNG level 3 and 0
    (quick: level 3 only, a few samples; the figures are noisy)."""
    n, repeats, warmup = (6, 1, 3) if quick else (100, 3, 20)
    where = machine()
    records = []
    for level in (3,) if quick else (3, 0):
        with tempfile.TemporaryDirectory(prefix="restoray-bench-inpainting-") as tmp:
            members, masks_uri = make_data(Path(tmp), img_size, n_img=2 if quick else 6, n_mask=4 if quick else 16,
                                           png_compression=level)
            for mask in MASKS:
                value = bench_inpainting_sampler(mask, members, masks_uri, n=n, repeats=repeats, warmup=warmup)
                records.append({"mask": mask, "img_size": list(img_size), "png_compression": level, "out_size": 256,
                                "value": round(value, 1), "unit": "samples/s/core", "machine": where})
                print(f"[restoray] inpainting {mask} mask, image {img_size[0]}x{img_size[1]} (PNG level {level}) "
                      f"-> crop 384 -> 256px: {value:.1f} samples/s/core", flush=True)
    return records


def bench_deepfill_v2_inference(size: int = 512, repeats: int = 2) -> dict[str, Any]:
    """Seconds for one DeepFill v2 prediction (the zoo network, random weights) on a ``size`` px
    image with a free-form hole, and the peak memory (:func:`pipelines.bench.time_prediction`)."""
    from degradations.masks import irregular_mask
    from pipelines.bench import time_prediction
    from trainers.archs import build_arch
    from trainers.tasks.inpainting import InpaintingConfig, InpaintingTask

    task = InpaintingTask(InpaintingConfig(inpaintor="deepfill_v2", data={"mask": {"type": "irregular"}},
                                           gan={"weight": 0.1}))
    rng = np.random.default_rng(0)
    mask = irregular_mask((size, size), rng=rng).reshape(size, size) * 255
    inputs = {"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "mask": mask.astype(np.uint8)}
    record = {"case": "deepfill_v2_inference", "size": [size, size]} | time_prediction(
        task, {"generator": build_arch("deepfill_v2")}, inputs, repeats)
    print(f"[restoray] inpainting deepfill_v2 inference {size}x{size} on {record['device']}: "
          f"{record['value']:.2f} s/image, peak {record['peak_mib']} MiB", flush=True)
    return record


def write_bench_inpainting(out: str, quick: bool = False) -> list[dict[str, Any]]:
    records = bench_inpainting(quick=quick)
    records.append(bench_deepfill_v2_inference(size=128 if quick else 512, repeats=1 if quick else 2))
    return save_records(out, records)

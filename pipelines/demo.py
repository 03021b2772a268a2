"""``restoray demo``: the whole pipeline on photos that scikit-image ships (no download).

1. write the bundled photos to ``<workdir>/raw/{train,val}`` (two held out),
2. shard both with the Ray Data job (sub-images for training, whole images for val),
3. train a small EDSR x4 with 2 Ray Train workers, logging to MLflow,
4. evaluate the final (EMA) model against MATLAB-bicubic upscaling on the held-out photos,
5. write ``<workdir>/summary.json`` and say how to open the MLflow UI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from pipelines.config import load_experiment
from pipelines.schema import ShardConfig
from preprocessing.redact import redact_text

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo" / "edsr_x4c32b4_demo.yaml"

# Colour and grey photos bundled in skimage/data (files in the wheel, not pooch downloads).
TRAIN_PHOTOS = ["astronaut", "rocket", "hubble_deep_field", "immunohistochemistry",
                "retina", "camera", "brick", "grass", "gravel", "coins", "moon"]
VAL_PHOTOS = ["chelsea", "coffee"]


def write_sample_photos(raw: Path) -> dict[str, list[str]]:
    from skimage import data as skdata

    written: dict[str, list[str]] = {"train": [], "val": []}
    for split, names in (("train", TRAIN_PHOTOS), ("val", VAL_PHOTOS)):
        folder = raw / split
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if not target.exists():
                img = getattr(skdata, name)()
                if img.ndim == 2:
                    img = np.stack([img] * 3, axis=-1)
                img = img[..., :3].astype(np.uint8)
                cv2.imwrite(str(target), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            written[split].append(str(target))
    return written


def run_demo(workdir: str, overrides: list[str] = ()) -> dict:
    from pipelines.cluster import init_ray
    from pipelines.evaluate import evaluate
    from pipelines.shard_job import run_shard
    from pipelines.train_job import load_final_nets, run_train

    t0 = time.time()
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    raw, shards = work / "raw", work / "shards"
    cfg = load_experiment(DEMO_CONFIG, [
        f"data.train={shards / 'train'}", f"data.val={shards / 'val'}",
        f"run.storage_path={work / 'runs'}", *overrides,
    ], check_paths=False)
    print(f"[restoray] demo: writing sample photos to {raw}", flush=True)
    write_sample_photos(raw)
    init_ray()
    # Training sub-images are crop 192 / step 96 (the DIV2K tool's 480/240, scaled to small photos).
    run_shard(ShardConfig(source=str(raw / "train"), dest=str(shards / "train"), adapter="image_folder",
                          params={"crop_size": 192, "step": 96}, items_per_shard=2))
    run_shard(ShardConfig(source=str(raw / "val"), dest=str(shards / "val"), adapter="image_folder",
                          params={"crop": False}, items_per_shard=2))
    out = run_train(cfg, config_file=str(DEMO_CONFIG), workdir=work)
    from ray.train import Checkpoint

    nets = load_final_nets(Checkpoint(out.checkpoint_dir, _resolve_fs(cfg.run.storage_path)), cfg)
    result = evaluate(cfg, nets)
    summary = {
        "psnr_model": result["model_psnr"], "psnr_bicubic": result["bicubic_psnr"],
        "ssim_model": result["model_ssim"], "ssim_bicubic": result["bicubic_ssim"],
        "psnr_gain_db": result["model_psnr"] - result["bicubic_psnr"],
        "eval_convention": f"RGB, crop_border={cfg.task.eval.crop_border}, mean over {result['num_samples']} held-out photos",
        "per_sample": result["per_sample"],
        "mlflow_run_id": out.mlflow_run_id, "tracking_uri": redact_text(out.tracking_uri),
        "registered_model": f"{cfg.mlflow.register_as or cfg.name} v{out.registered_version}",
        "checkpoint": out.checkpoint_dir, "train_seconds": round(out.seconds, 1),
        "total_seconds": round(time.time() - t0, 1), "config": str(DEMO_CONFIG),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary, work)
    return summary


def _resolve_fs(storage_path: str):
    from pipelines.train_job import storage_location

    return storage_location(storage_path)[1]


def print_summary(s: dict, work: Path) -> None:
    verdict = "beats" if s["psnr_gain_db"] > 0 else "does NOT beat"
    print("\n" + "=" * 72)
    print(f"restoray demo finished in {s['total_seconds']:.0f}s (training {s['train_seconds']:.0f}s)")
    print(f"  held-out PSNR  model {s['psnr_model']:.2f} dB | bicubic {s['psnr_bicubic']:.2f} dB "
          f"-> the model {verdict} bicubic by {s['psnr_gain_db']:+.2f} dB")
    print(f"  held-out SSIM  model {s['ssim_model']:.4f} | bicubic {s['ssim_bicubic']:.4f}")
    print(f"  MLflow run {s['mlflow_run_id']}, registered model {s['registered_model']}")
    print(f"  summary: {work / 'summary.json'}")
    print("  open the MLflow UI (metrics, LQ|output|GT grids, registered model):")
    print(f"    .venv/bin/mlflow ui --backend-store-uri {s['tracking_uri']} --port 5000")
    print("=" * 72)

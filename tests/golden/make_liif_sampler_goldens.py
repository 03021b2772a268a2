"""Goldens for the LIIF sampler, made by MMEditing 0.16.1's own pipeline objects.

Run with the interpreter that has mmedit (see ``mmedit_shim``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_liif_sampler_goldens.py

Writes ``tests/data/golden/liif_sampler.npz``, read by tests/trainers/test_liif_sampler.py:

* ``image``: a textured uint8 RGB image (blurred noise on a gradient), 203 x 181.
* ``train<i>/...`` for three seeds: the zoo config's train pipeline (``RandomDownSampling`` 1-4 with
  a 48 px LQ patch, ``RescaleToZeroOne``, ``Flip`` horizontal and vertical, ``RandomTransposeHW``,
  ``ImageToTensor``, ``GenerateCoordinateAndCell(sample_quantity=2304)``) run after
  ``np.random.seed(i)``; its outputs ``lq`` (``[3, 48, 48]``, as uint8: exact, the pipeline
  divides uint8 values by 255), ``gt`` (``[2304, 3]``, uint8 likewise), ``coord``, ``cell``;
  and the draws it made, replayed from the same seed in the pipeline's order (``scale``, ``top``,
  ``left``, ``flips`` h/v/transpose, ``queries``).
* ``val_x<s>/lq`` and ``val_x<s>/gt_shape`` for the evaluation scales 2, 3, 4, 6, 18, 30: the
  config's valid pipeline (``RandomDownSampling(scale_min=s, scale_max=s)``, no patch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
from mmedit.datasets.pipelines import Compose  # noqa: E402

OUT = ROOT / "tests/data/golden/liif_sampler.npz"
TRAIN = [
    dict(type="RandomDownSampling", scale_min=1, scale_max=4, patch_size=48),
    dict(type="RescaleToZeroOne", keys=["lq", "gt"]),
    dict(type="Flip", keys=["lq", "gt"], flip_ratio=0.5, direction="horizontal"),
    dict(type="Flip", keys=["lq", "gt"], flip_ratio=0.5, direction="vertical"),
    dict(type="RandomTransposeHW", keys=["lq", "gt"], transpose_ratio=0.5),
    dict(type="ImageToTensor", keys=["lq", "gt"]),
    dict(type="GenerateCoordinateAndCell", sample_quantity=2304),
]
SCALES = (2, 3, 4, 6, 18, 30)


def _image() -> np.ndarray:
    rng = np.random.default_rng(7)
    noise = cv2.GaussianBlur(rng.random((203, 181, 3)).astype(np.float32), (0, 0), 2.0)
    ramp = np.linspace(0, 1, 181, dtype=np.float32)[None, :, None]
    return np.clip((0.5 * ramp + 2.0 * (noise - 0.5) + 0.25) * 255, 0, 255).round().astype(np.uint8)


def _u8(x) -> np.ndarray:
    return np.round(np.asarray(x) * 255).astype(np.uint8)


def _replayed_draws(seed: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    np.random.seed(seed)
    scale = np.random.uniform(1, 4)
    size = round(48 * scale)
    top, left = np.random.randint(0, shape[0] - size), np.random.randint(0, shape[1] - size)
    flips = [np.random.random() < 0.5 for _ in range(3)]
    queries = np.random.choice(size * size, 2304, replace=False)
    return {"scale": np.float64(scale), "top": top, "left": left, "flips": np.array(flips), "queries": queries}


def main() -> None:
    img = _image()
    arrays: dict[str, object] = {"image": img}
    train = Compose(TRAIN)
    for seed in range(3):
        np.random.seed(seed)
        r = train({"gt": img.copy()})
        for k in ("lq", "gt"):
            arrays[f"train{seed}/{k}"] = _u8(r[k])
        arrays[f"train{seed}/coord"], arrays[f"train{seed}/cell"] = r["coord"], r["cell"]
        arrays |= {f"train{seed}/draw/{k}": v for k, v in _replayed_draws(seed, img.shape[:2]).items()}
        assert abs(float(arrays[f"train{seed}/draw/scale"]) - r["scale"]) == 0
    for s in SCALES:
        val = Compose([dict(type="RandomDownSampling", scale_min=s, scale_max=s)])
        r = val({"gt": img.copy()})
        arrays[f"val_x{s}/lq"], arrays[f"val_x{s}/gt_shape"] = r["lq"], np.array(r["gt"].shape)
    mmedit_shim.save_golden(str(OUT), **arrays)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

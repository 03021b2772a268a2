"""Goldens for the DIC sampler, computed by MMEditing 0.16.1's pipeline objects.

Run with the interpreter that has mmedit, from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_dic_sampler_goldens.py

Writes ``tests/data/golden/dic_sampler.npz``: a smooth 256 x 256 face-sized RGB image
(``image``), 68 landmarks (``landmarks``, x/y pixels, off-grid), and what the zoo's training
pipeline (``dic_x8c48b6_g4_150k_CelebAHQ``: ``Resize`` to 128 PIL bicubic, ``Resize`` 1/8
keep-ratio PIL bicubic, ``GenerateHeatmap`` ori_size 256 -> 32, sigma 1) makes of them before its
``Normalize``: ``gt`` (uint8 128x128x3), ``lq`` (uint8 16x16x3) and ``heatmap`` (float32,
stored for landmarks 0-7 only, ``[32, 32, 8]`` as mmedit's HxWxN layout, to keep the file small).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.datasets.pipelines import GenerateHeatmap, Resize  # noqa: E402

OUT = ROOT / "tests/data/golden/dic_sampler.npz"


def main() -> None:
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx + 2 * yy), 0.5 + 0.4 * np.cos(5 * yy - xx), xx * yy], -1)
    image = np.clip(image * 255 + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    landmarks = (rng.uniform(10, 246, (68, 2))).astype(np.float32)
    results = {"gt": image.copy(), "landmark": landmarks.copy()}
    for step in (Resize(keys=["gt"], scale=(128, 128), interpolation="bicubic", backend="pillow"),
                 Resize(keys=["gt"], output_keys=["lq"], scale=1 / 8, keep_ratio=True, interpolation="bicubic",
                        backend="pillow"),
                 GenerateHeatmap(keypoint="landmark", ori_size=256, target_size=32, sigma=1.0)):
        results = step(results)
    assert results["gt"].dtype == np.uint8 and results["lq"].shape == (16, 16, 3), results["lq"].shape
    mmedit_shim.save_golden(str(OUT), image=image, landmarks=landmarks, gt=results["gt"], lq=results["lq"],
                            heatmap=results["heatmap"][..., :8].astype(np.float32))
    print(f"{OUT.relative_to(ROOT)}: heatmap {results['heatmap'].shape} {results['heatmap'].dtype}, "
          f"{OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

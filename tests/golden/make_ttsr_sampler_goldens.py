"""Goldens for the TTSR sampler (``trainers/samplers/ttsr.py``) from MMEditing 0.16.1's own pipeline
objects: the zoo config's ``CropLike`` and two pillow-bicubic ``Resize`` steps (x1/4, then x4 of
``lq`` and ``ref_down``), on random 8-bit images with a reference larger in one axis and smaller in
the other than the GT (so ``CropLike`` both cuts and pads).

Run from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_ttsr_sampler_goldens.py

Writes ``tests/data/golden/ttsr_sampler.npz``: per case ``<c>/gt``, ``<c>/ref`` (inputs) and
``<c>/<key>`` for ``lq``, ``lq_up``, ``ref`` (after ``CropLike``; stored as ``ref_out``) and
``ref_downup``, all uint8 before the config's ``Normalize``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "golden"), str(ROOT)]
import mmedit_shim  # noqa: E402

mmedit_shim.install()

from mmedit.datasets.pipelines import Compose  # noqa: E402

OUT = ROOT / "tests/data/golden/ttsr_sampler.npz"
SCALE = 4
PIPELINE = [
    dict(type="CropLike", target_key="ref", reference_key="gt"),
    dict(type="Resize", scale=1 / SCALE, keep_ratio=True, keys=["gt", "ref"], output_keys=["lq", "ref_down"],
         interpolation="bicubic", backend="pillow"),
    dict(type="Resize", scale=float(SCALE), keep_ratio=True, keys=["lq", "ref_down"],
         output_keys=["lq_up", "ref_downup"], interpolation="bicubic", backend="pillow"),
]
CASES = {"gt44x52_ref50x40": ((44, 52), (50, 40)), "gt40x32_ref31x70": ((40, 32), (31, 70))}


def _image(rng, h, w):
    """Smooth content plus noise (bicubic overshoot and clipping both occur)."""
    base = rng.random((h // 4 + 2, w // 4 + 2, 3))
    big = np.kron(base, np.ones((4, 4, 1)))[:h, :w]
    return np.clip(big * 255 + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(5)
    pipeline = Compose(PIPELINE)
    arrays = {}
    for case, (gt_hw, ref_hw) in CASES.items():
        gt, ref = _image(rng, *gt_hw), _image(rng, *ref_hw)
        out = pipeline(dict(gt=gt.copy(), ref=ref.copy()))
        arrays |= {f"{case}/gt": gt, f"{case}/ref": ref, f"{case}/lq": out["lq"], f"{case}/lq_up": out["lq_up"],
                   f"{case}/ref_out": out["ref"], f"{case}/ref_downup": out["ref_downup"]}
        print(case, {k: out[k].shape for k in ("lq", "lq_up", "ref", "ref_downup")})
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

"""Goldens for the clip sampler: mmedit 0.16.1's video training pipelines on a tiny clip.

Run from the repo root with the reference interpreter (see ``mmedit_shim``)::

    /work/mmedit-venv/bin/python tests/golden/make_vsr_sampler_goldens.py

Writes ``tests/data/golden/vsr_sampler.npz``: the input clip (``clip/gt``, ``clip/lq``: random
frames, GT 24x32, LQ x4) and, per case and seed, what mmedit's pipeline returns after seeding
the global ``np.random`` with that seed (``<case>/<seed>/gt``, ``lq``, ``indices``). Cases:

* ``paired``: REDS-style (GenerateSegmentIndices interval_list [1, 2], TemporalReverse p 0.5
  on both path lists, load, PairedRandomCrop 16, Flip h, Flip v, RandomTransposeHW,
  MirrorSequence), 4 of 10 frames.
* ``gt_only``: RealBasicVSR-style before degradation (GenerateSegmentIndices [1], load GT,
  FixedCrop 16 at a random position, flips, transpose, MirrorSequence), 4 of 10 frames.

``tests/trainers/test_vsr_sampler.py`` replays the same seeds through ``VSRSampler`` with a
``RandomState``-backed generator and expects identical frames.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
from mmedit.datasets.pipelines import Compose  # noqa: E402

T, H, W, SCALE, N, PATCH = 10, 24, 32, 4, 4, 16
SEEDS = (0, 1, 2, 3, 5, 8, 13, 21)
OUT = "tests/data/golden/vsr_sampler.npz"


def _load(key: str) -> dict:
    return dict(type="LoadImageFromFileList", io_backend="disk", key=key, channel_order="rgb")


def _aug(keys: list[str]) -> list[dict]:
    return [
        dict(type="Flip", keys=keys, flip_ratio=0.5, direction="horizontal"),
        dict(type="Flip", keys=keys, flip_ratio=0.5, direction="vertical"),
        dict(type="RandomTransposeHW", keys=keys, transpose_ratio=0.5),
        dict(type="MirrorSequence", keys=keys),
    ]


PIPELINES = {
    "paired": [
        dict(type="GenerateSegmentIndices", interval_list=[1, 2]),
        dict(type="TemporalReverse", keys=["lq_path", "gt_path"], reverse_ratio=0.5),
        _load("lq"),
        _load("gt"),
        dict(type="PairedRandomCrop", gt_patch_size=PATCH),
        *_aug(["lq", "gt"]),
    ],
    "gt_only": [
        dict(type="GenerateSegmentIndices", interval_list=[1]),
        _load("gt"),
        dict(type="FixedCrop", keys=["gt"], crop_size=(PATCH, PATCH)),
        *_aug(["gt"]),
    ],
}


def main() -> None:
    rng = np.random.default_rng(2024)
    gt = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    lq = rng.integers(0, 256, (T, H // SCALE, W // SCALE, 3), dtype=np.uint8)
    out = {"clip/gt": gt, "clip/lq": lq}
    with tempfile.TemporaryDirectory() as root:
        for kind, frames in (("gt", gt), ("lq", lq)):
            os.makedirs(f"{root}/{kind}/clip")
            for t, f in enumerate(frames):
                cv2.imwrite(f"{root}/{kind}/clip/{t:08d}.png", f[..., ::-1])
        for case, steps in PIPELINES.items():
            pipeline = Compose(steps)
            for seed in SEEDS:
                np.random.seed(seed)
                res = pipeline(dict(lq_path=f"{root}/lq", gt_path=f"{root}/gt", key="clip", sequence_length=T,
                                    num_input_frames=N, scale=SCALE))
                paths = res["gt_path"]
                out[f"{case}/{seed}/indices"] = np.array([int(os.path.basename(p)[:8]) for p in paths])
                out[f"{case}/{seed}/gt"] = np.stack(res["gt"])
                if case == "paired":
                    out[f"{case}/{seed}/lq"] = np.stack(res["lq"])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()

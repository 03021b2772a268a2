"""Goldens for the frame-interpolation sampler: mmedit 0.16.1's CAIN / FLAVR training pipelines
(FixedCrop, Flip h, Flip v, ColorJitter, TemporalReverse on the inputs) on tiny clips.

Run from the repo root with the reference interpreter (see ``mmedit_shim``)::

    /work/mmedit-venv/bin/python tests/golden/make_vfi_sampler_goldens.py

mmedit's ColorJitter draws its seed with Python's ``random.randint(0, 2 ** 32)``; here that call
is routed to the global ``np.random`` (``randint(0, 2 ** 32 + 1)``, the same range), so every draw
of the pipeline comes from ``np.random.seed(seed)`` and ``VFISampler`` can replay it draw for
draw with a ``RandomState``-backed generator. The jitter itself is torchvision's on PIL images.

Writes ``tests/data/golden/vfi_sampler.npz``: per case the clip (``<case>/clip``) and per seed
the pipeline's ``inputs`` and ``target`` (``<case>/<seed>/inputs``, ``.../target``). Cases:

* ``triplet``: CAIN (im1, im3 -> im2), crop 16 of 24x32, jitter 0.05 x 4 (the zoo's).
* ``septuplet``: FLAVR (im1, 3, 5, 7 -> im4), crop 16, jitter 0.05 x 4.
* ``strong``: the triplet with jitter (0.6, 0.6, 0.6, 0.4), so blends extrapolate and clip.
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
import mmedit.datasets.pipelines.augmentation as augmentation  # noqa: E402
from mmedit.datasets.pipelines import Compose  # noqa: E402

H, W, PATCH = 24, 32, 16
SEEDS = (0, 1, 2, 3, 5, 8)
OUT = "tests/data/golden/vfi_sampler.npz"
CASES = {  # frames, input frames (1-based file names), target, jitter
    "triplet": (3, [1, 3], [2], 0.05, 0.05),
    "septuplet": (7, [1, 3, 5, 7], [4], 0.05, 0.05),
    "strong": (3, [1, 3], [2], 0.6, 0.4),
}


class _NumpyRandom:
    """Stands in for the ``random`` module inside mmedit's augmentation pipelines."""

    @staticmethod
    def randint(a, b):
        return int(np.random.randint(a, b + 1))


def pipeline(jitter: float, hue: float) -> Compose:
    keys = ["inputs", "target"]
    return Compose([
        dict(type="LoadImageFromFileList", io_backend="disk", key="inputs", channel_order="rgb", backend="pillow"),
        dict(type="LoadImageFromFileList", io_backend="disk", key="target", channel_order="rgb", backend="pillow"),
        dict(type="FixedCrop", keys=keys, crop_size=(PATCH, PATCH)),
        dict(type="Flip", keys=keys, flip_ratio=0.5, direction="horizontal"),
        dict(type="Flip", keys=keys, flip_ratio=0.5, direction="vertical"),
        dict(type="ColorJitter", keys=keys, channel_order="rgb", brightness=jitter, contrast=jitter,
             saturation=jitter, hue=hue),
        dict(type="TemporalReverse", keys=["inputs"], reverse_ratio=0.5),
    ])


def main() -> None:
    augmentation.random = _NumpyRandom
    rng = np.random.default_rng(2026)
    out = {}
    with tempfile.TemporaryDirectory() as root:
        for case, (n, inputs, target, jitter, hue) in CASES.items():
            # smooth colour ramps plus noise: saturated, grey and mid-tone pixels all occur
            yy, xx = np.mgrid[:H, :W]
            base = np.stack([xx * 8, yy * 10, (xx + yy) * 4], -1)
            clip = np.stack([np.clip(base + 9 * t + rng.integers(-40, 40, (H, W, 3)), 0, 255) for t in range(n)])
            clip = clip.astype(np.uint8)
            clip[:, :3, :3] = 128  # grey: hue and saturation leave it alone
            out[f"{case}/clip"] = clip
            os.makedirs(f"{root}/{case}")
            for t, f in enumerate(clip):
                cv2.imwrite(f"{root}/{case}/im{t + 1}.png", f[..., ::-1])
            pipe = pipeline(jitter, hue)
            for seed in SEEDS:
                np.random.seed(seed)
                res = pipe(dict(inputs_path=[f"{root}/{case}/im{i}.png" for i in inputs],
                                target_path=[f"{root}/{case}/im{i}.png" for i in target], key=case))
                out[f"{case}/{seed}/inputs"] = np.stack(res["inputs"])
                out[f"{case}/{seed}/target"] = np.stack(res["target"])[0]
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()

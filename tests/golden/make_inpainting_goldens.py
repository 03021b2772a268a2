"""Write ``tests/data/golden/inpainting.npz``: MMEditing 0.16.1's 256 px inpainting train pipelines.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_inpainting_goldens.py

What runs: ``deepfillv1_256x256_8x2_places``'s ``train_pipeline`` (the same steps as DeepFill
v1 CelebA and both Global&Local configs, and their ``test_pipeline``) and
``deepfillv2_256x256_8x2_places``'s (as DeepFill v2 CelebA and the four PConv configs) up to
``Resize``: ``LoadImageFromFile`` (BGR), ``LoadMask`` bbox (128, delta 40, margin 20, 256) or
irregular (vertices [4, 10), angle 6, length [20, 128), width [10, 45), ratio (0.15, 0.65)),
``Crop`` 384 random, ``Resize`` 256 -- with ``np.random.randint`` replaced by ``default_rng(seed).integers``
(as ``make_matting_goldens.py``). restoray's sampler makes the same draws in the same order, so
given ``default_rng(seed)`` it must give the same ``gt`` (RGB here), ``mask`` and (bbox) ``mask_bbox``;
``tests/trainers/test_inpainting_golden.py`` checks it. One input is smaller than the crop on
one axis (the reference then crops that axis whole).
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from make_matting_goldens import png, smooth, use_generator, write  # noqa: E402
from mmcv import Config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "golden", "inpainting.npz")
CONFIGS = os.path.join(os.path.dirname(__import__("mmedit").__file__), ".mim", "configs", "inpainting")
PIPELINES = {"bbox": os.path.join(CONFIGS, "deepfillv1", "deepfillv1_256x256_8x2_places.py"),
             "irregular": os.path.join(CONFIGS, "deepfillv2", "deepfillv2_256x256_8x2_places.py")}
IMAGES = {"im0": (420, 520), "im1": (300, 450), "im2": (512, 512)}
SEEDS = (0, 1, 2)


def pipeline(cfg_path: str):
    from mmedit.datasets.pipelines import Compose

    cfg = Config.fromfile(cfg_path)
    steps = []
    for step in copy.deepcopy(cfg.train_pipeline):
        steps.append(step)
        if step["type"] == "Resize":
            break
    return Compose(steps)


def main() -> None:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i, (name, (h, w)) in enumerate(IMAGES.items()):
            data = png(smooth(h, w, 40 + i))
            out[f"input/{name}"] = np.frombuffer(data, np.uint8)
            paths[name] = write(os.path.join(tmp, f"{name}.png"), data)
        for mask, cfg_path in PIPELINES.items():
            pipe = pipeline(cfg_path)
            for name, path in paths.items():
                for seed in SEEDS:
                    use_generator(np.random.default_rng(seed))
                    r = pipe({"gt_img_path": path})
                    gt = np.clip(np.round(r["gt_img"]), 0, 255).astype(np.uint8)  # BGR, as loaded
                    out[f"{mask}/{name}/{seed}/gt"] = np.frombuffer(cv2.imencode(".png", gt)[1].tobytes(), np.uint8)
                    out[f"{mask}/{name}/{seed}/mask"] = np.asarray(r["mask"], np.uint8)[:, :, 0]
                    if "mask_bbox" in r:
                        out[f"{mask}/{name}/{seed}/mask_bbox"] = np.asarray(r["mask_bbox"], np.int32)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays, {os.path.getsize(OUT) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""Write ``tests/data/golden/inpainting.npz``: MMEditing 0.16.1's 256 px inpainting train pipelines.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /work/mmedit-venv/bin/python tests/golden/make_inpainting_goldens.py

What runs: ``deepfillv1_256x256_8x2_places``'s ``train_pipeline`` (the same steps as DeepFill
v1 CelebA and both Global&Local configs, and their ``test_pipeline``) and
``deepfillv2_256x256_8x2_places``'s (as DeepFill v2 CelebA and the four PConv configs) up to
``Resize``: ``LoadImageFromFile`` (BGR), ``LoadMask`` bbox (128, delta 40, margin 20, 256) or
irregular (vertices [4, 10), angle 6, length [20, 128), width [10, 45), ratio (0.15, 0.65)),
``Crop`` 384 random, ``Resize`` 256; and ``AOT-GAN_512x512_4x12_places``'s up to
``RandomRotation`` (``LoadMask`` set, ``RandomResizedCrop`` 512, ``Flip``, mask ``Resize``
nearest, ``RandomRotation`` 0-45; its ``ColorJitter`` runs torchvision, not checked here) --
with ``np.random.randint`` replaced by ``default_rng(seed).integers``
(as ``make_matting_goldens.py``) and Python's ``random.uniform`` / ``random.randint`` by
``uniform`` / ``integers(a, b + 1)`` of the same generator. restoray's sampler makes the same draws in the same order, so
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
AOT = os.path.join(CONFIGS, "AOT-GAN", "AOT-GAN_512x512_4x12_places.py")
MASKS = {"m0": (400, 400), "m1": (512, 512), "m2": (300, 360)}


def use_python_random(gen: np.random.Generator) -> None:
    import random

    random.uniform = lambda a, b: float(gen.uniform(a, b))
    random.randint = lambda a, b: int(gen.integers(a, b + 1))


def aot_pipeline(tmp: str):
    """AOT's train pipeline up to RandomRotation, its mask list pointed at generated masks."""
    from mmedit.datasets.pipelines import Compose

    cfg = Config.fromfile(AOT)
    with open(os.path.join(tmp, "mask_list.txt"), "w") as f:
        f.write("".join(f"{name}.png\n" for name in sorted(MASKS)))
    steps = []
    for step in copy.deepcopy(cfg.train_pipeline):
        if step["type"] == "LoadMask":
            step["mask_config"].update(mask_list_file=os.path.join(tmp, "mask_list.txt"), prefix=os.path.join(tmp, "masks"))
        steps.append(step)
        if step["type"] == "RandomRotation":
            break
    return Compose(steps)


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
        for i, (name, (h, w)) in enumerate(MASKS.items()):
            m = (smooth(h, w, 60 + i)[:, :, 0] > 128).astype(np.uint8) * 255  # blobs, 0/255
            out[f"mask_input/{name}"] = np.frombuffer(png(m), np.uint8)
            write(os.path.join(tmp, "masks", f"{name}.png"), png(m))
        aot = aot_pipeline(tmp)
        for name in ("im0", "im1"):  # 512 px outputs: two images, two seeds keep the golden small
            path = paths[name]
            for seed in SEEDS[:2]:
                gen = np.random.default_rng(seed)
                use_generator(gen)
                use_python_random(gen)
                r = aot({"gt_img_path": path})
                out[f"aot/{name}/{seed}/gt"] = np.frombuffer(cv2.imencode(".png", r["gt_img"][:, :, ::-1])[1].tobytes(),
                                                             np.uint8)  # RGB as loaded; stored BGR like the others
                out[f"aot/{name}/{seed}/mask"] = np.asarray(r["mask"], np.uint8)[:, :, 0]
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays, {os.path.getsize(OUT) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""Write ``tests/data/golden/metrics.npz``: MMEditing 0.16.1's PSNR, SSIM and NIQE figures.

Run with the reference interpreter (see ``mmedit_shim.py``), from the repository root::

    /tmp/mmedit-venv/bin/python tests/golden/make_metric_goldens.py

Images are scikit-image's bundled photos cut small, with seeded noise, stored as RGB
uint8; mmedit gets them as it gets them from ``tensor2img``: BGR. The mmedit wheel does
not ship ``niqe_pris_params.npz``; NIQE reads restoray's copy (the same numbers).
"""

from __future__ import annotations

import os
import sys
import unittest.mock
import warnings

sys.path.insert(0, os.path.dirname(__file__))
import mmedit_shim  # noqa: E402

mmedit_shim.install()

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from mmedit.core.evaluation import metrics  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "golden", "metrics.npz")
NIQE_PARAMS = os.path.join(ROOT, "trainers", "data", "niqe_pris_params.npz")
CROPS = (0, 4)
CONVERTS = (None, "y")


def noisy(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def pairs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) RGB uint8 pairs, 48x64: three photos at three noise levels."""
    gts = [skimage.data.astronaut()[200:248, 180:244], skimage.data.chelsea()[100:148, 200:264],
           skimage.data.coffee()[150:198, 250:314]]
    return [(noisy(rng, gt, sigma), gt) for gt, sigma in zip(gts, (3.0, 10.0, 25.0))]


def niqe_images(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """RGB photos (the astronaut crop has flat white areas), a smooth gradient, gray noise,
    and a photo with one flat block (NaN features: exercises NaN-mean / complete-row cov)."""
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float64)
    wave = 128 + 90 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    flat_block = skimage.data.chelsea()[50:250, 100:396].copy()
    flat_block[:100, :100] = (90, 120, 60)
    gradient = np.stack([wave, 0.6 * wave + 0.4 * xx, 255 - wave], -1)
    return {
        "astronaut": skimage.data.astronaut()[240:440, 280:480],
        "chelsea": skimage.data.chelsea()[50:250, 100:396],
        "coffee": noisy(rng, skimage.data.coffee()[100:300, 200:400], 4.0),
        "gradient": np.clip(np.round(gradient), 0, 255).astype(np.uint8),
        "noise": rng.integers(0, 256, (200, 200), dtype=np.uint8),
        "flat_block": flat_block,
    }


def mmedit_niqe(img: np.ndarray, crop_border: int, convert_to: str) -> float:
    load = np.load

    def load_params(path, *args, **kwargs):
        if str(path).endswith("niqe_pris_params.npz"):
            path = NIQE_PARAMS
        return load(path, *args, **kwargs)

    with unittest.mock.patch.object(np, "load", load_params), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty-slice means in flat blocks
        if img.ndim == 2:
            return float(metrics.niqe(img, crop_border, input_order="HW"))
        return float(metrics.niqe(img[..., ::-1], crop_border, convert_to=convert_to))


def main() -> None:
    rng = np.random.default_rng(20240601)
    arrays: dict[str, np.ndarray] = {}
    shape = (3, len(CROPS), len(CONVERTS))
    psnr, ssim = np.zeros(shape), np.zeros(shape)
    for i, (pred, gt) in enumerate(pairs(rng)):
        arrays[f"pair{i}_pred"], arrays[f"pair{i}_gt"] = pred, gt
        for j, crop in enumerate(CROPS):
            for k, conv in enumerate(CONVERTS):
                psnr[i, j, k] = metrics.psnr(pred[..., ::-1], gt[..., ::-1], crop, convert_to=conv)
                ssim[i, j, k] = metrics.ssim(pred[..., ::-1], gt[..., ::-1], crop, convert_to=conv)
    arrays |= {"psnr": psnr, "ssim": ssim, "crop_border": np.array(CROPS),
               "convert_to": np.array(["rgb", "y"])}

    images = niqe_images(rng)
    for name, img in images.items():
        arrays[f"niqe_{name}_img"] = img
        arrays[f"niqe_{name}_y"] = np.array([mmedit_niqe(img, c, "y") for c in CROPS])
        if img.ndim == 3 and name in ("chelsea", "gradient"):
            arrays[f"niqe_{name}_gray"] = np.array([mmedit_niqe(img, c, "gray") for c in CROPS])
    arrays["niqe_names"] = np.array(list(images))
    mmedit_shim.save_golden(OUT, **arrays)
    for k, v in arrays.items():
        if v.dtype != np.uint8:
            print(k, v.tolist() if v.size < 20 else v.shape)


if __name__ == "__main__":
    main()
